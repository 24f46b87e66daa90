"""Types of pytest fixtures: ``def runner(): return CliRunner()`` makes ``runner`` a CliRunner.

Fixtures come from the test module itself and from every ``conftest.py`` between the test
file and the project root; a test parameter named like a fixture gets the fixture's class.
"""

from __future__ import annotations

import ast
from pathlib import Path

from distillation.mining.discover import module_name, parse_source, read_source
from distillation.mining.focal import TestScope
from distillation.mining.symbols import ProjectIndex, import_table
from pytest_kdassert.core.focal import Definition
from pytest_kdassert.core.source import flatten_statements


def _is_fixture(node: ast.AST) -> bool:
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return False
    for deco in node.decorator_list:
        target = deco.func if isinstance(deco, ast.Call) else deco
        if ast.unparse(target).split(".")[-1] == "fixture":
            return True
    return False


def _fixture_type(index: ProjectIndex, imports: dict[str, str],
                  node: ast.FunctionDef) -> Definition | None:
    statements = flatten_statements(node.body)
    resolver = TestScope(index, imports, statements).resolver()
    for pos in range(len(statements) - 1, -1, -1):
        stmt = statements[pos]
        value = stmt.value if isinstance(stmt, (ast.Return, ast.Expr)) else None
        if isinstance(value, (ast.Yield, ast.YieldFrom)):
            value = value.value
        elif isinstance(stmt, ast.Expr):
            continue
        if value is not None:
            return resolver.type_of(value, pos)
    return None


def module_fixture_types(index: ProjectIndex, tree: ast.Module,
                         imports: dict[str, str]) -> dict[str, Definition]:
    """Fixture name -> class, for the fixtures defined at the top of ``tree``."""
    types = {}
    for node in tree.body:
        if _is_fixture(node):
            found = _fixture_type(index, imports, node)
            if found is not None:
                types[node.name] = found
    return types


def conftest_fixture_types(index: ProjectIndex, rel: Path,
                           cache: dict[Path, dict[str, Definition]]) -> dict[str, Definition]:
    """Fixture types from the conftest.py files above test file ``rel`` (nearest wins)."""
    types: dict[str, Definition] = {}
    for parent in reversed([*rel.parents]):
        conftest = parent / "conftest.py"
        if conftest not in cache:
            cache[conftest] = _conftest_types(index, conftest)
        types.update(cache[conftest])
    return types


def _conftest_types(index: ProjectIndex, conftest: Path) -> dict[str, Definition]:
    path = index.root / conftest
    if not path.is_file():
        return {}
    text, _ = read_source(path, index.max_file_bytes)
    tree = parse_source(text, str(conftest))[0] if text is not None else None
    if tree is None:
        return {}
    imports = import_table(tree, module_name(index.root, conftest))
    return module_fixture_types(index, tree, imports)
