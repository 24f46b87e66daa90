"""The layers' arrows point one way: core <- plugin, core <- training (STYLE.md, issue 13).

Every import in the source tree is read from the AST, function-level (lazy) imports
included, so a shortcut taken inside a function is caught too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
            found.extend(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _layer(module: str) -> str | None:
    if module == "pytest_kdassert.core" or module.startswith("pytest_kdassert.core."):
        return "core"
    if module == "pytest_kdassert" or module.startswith("pytest_kdassert."):
        return "plugin"
    if module == "distillation" or module.startswith("distillation."):
        return "training"
    return None


ALLOWED = {"core": {"core"}, "plugin": {"core", "plugin"}, "training": {"core", "training"}}


@pytest.mark.parametrize("path", [*_modules("pytest_kdassert"), *_modules("distillation")],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_one_way(path):
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    own = _layer(module)
    wrong = [name for name in _imports(path)
             if _layer(name) is not None and _layer(name) not in ALLOWED[own]
             and name != "pytest_kdassert"]  # the bare package: only its docstring runs
    assert wrong == [], f"{module} ({own}) imports {wrong}"


def test_the_rule_catches_a_wrong_arrow(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from distillation.mining.extract import extract_file\n")
    assert "distillation.mining.extract" in _imports(bad)
    assert _layer("distillation.mining.extract") not in ALLOWED["plugin"]
