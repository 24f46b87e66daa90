"""The project symbol index: dotted name -> function, class or method definition.

Only non-test modules are indexed. Modules are parsed lazily, the first time a test refers
to them, so a giant project costs only what its tests import.
"""

from __future__ import annotations

import ast
from pathlib import Path

from distillation.mining.discover import (
    in_test_dir,
    module_name,
    parse_source,
    read_source,
    walk_python_files,
)
from pytest_kdassert.core.focal import Definition
from pytest_kdassert.core.source import definition_source
from pytest_kdassert.core.testfuncs import is_test_file


def import_table(tree: ast.Module, module: str, is_package: bool = False) -> dict[str, str]:
    """Local name -> dotted target for the module-level imports of ``tree``.

    Relative imports are resolved against ``module``; ``from m import *`` is stored under
    the key ``*m``.
    """
    table: dict[str, str] = {}
    package = module if is_package else module.rpartition(".")[0]
    for node in tree.body:
        _add_imports(node, table, package)
        if isinstance(node, (ast.If, ast.Try)):  # guarded imports (try: import x / except)
            for child in [*node.body, *getattr(node, "orelse", []),
                          *[s for h in getattr(node, "handlers", []) for s in h.body]]:
                _add_imports(child, table, package)
    return table


def _add_imports(node: ast.stmt, table: dict[str, str], package: str) -> None:
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.asname:
                table[alias.asname] = alias.name
            else:
                top = alias.name.split(".")[0]
                table.setdefault(top, top)
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            parts = package.split(".") if package else []
            parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
            base = ".".join([*parts, base] if base else parts)
        for alias in node.names:
            if alias.name == "*":
                table[f"*{base}"] = base
            else:
                table[alias.asname or alias.name] = f"{base}.{alias.name}" if base else alias.name


class ProjectIndex:
    """Resolves dotted names to definitions in one project's non-test modules."""

    def __init__(self, root: Path, max_file_bytes: int = 2_000_000):
        self.root = root
        self.max_file_bytes = max_file_bytes
        self.files: dict[str, Path] = {}
        for rel in walk_python_files(root):
            if is_test_file(rel) or in_test_dir(rel) or rel.name == "conftest.py":
                continue
            self.files.setdefault(module_name(root, rel), rel)
        self._parsed: dict[str, tuple | None] = {}
        self.fixture_cache: dict[Path, dict] = {}
        """conftest.py path -> fixture types, filled by ``fixtures.conftest_fixture_types``."""

    def module(self, name: str):
        """``(tree, top-level defs, import table)`` of module ``name``, or None."""
        if name in self._parsed:
            return self._parsed[name]
        rel = self.files.get(name)
        result = None
        if rel is not None:
            text, _ = read_source(self.root / rel, self.max_file_bytes)
            tree = parse_source(text, str(rel))[0] if text is not None else None
            if tree is not None:
                defs = _top_level_defs(tree)
                result = (tree, defs, import_table(tree, name, rel.name == "__init__.py"), text)
        self._parsed[name] = result
        return result

    def resolve(self, dotted: str, depth: int = 0) -> Definition | None:
        """The definition that ``dotted`` (``pkg.mod.Class.method``) names, if in the project."""
        if depth > 4 or not dotted:
            return None
        parts = dotted.split(".")
        for cut in range(len(parts), 0, -1):
            mod = ".".join(parts[:cut])
            if mod in self.files:
                return self._resolve_in_module(mod, parts[cut:], depth) if cut < len(parts) \
                    else None
        return None

    def _resolve_in_module(self, mod: str, rest: list[str], depth: int) -> Definition | None:
        parsed = self.module(mod)
        if parsed is None:
            return None
        _, defs, imports, _ = parsed
        node = defs.get(rest[0])
        if node is None:
            target = imports.get(rest[0])
            if target is not None and target != f"{mod}.{rest[0]}":
                return self.resolve(".".join([target, *rest[1:]]), depth + 1)
            for key, star in imports.items():
                if key.startswith("*"):
                    found = self.resolve(".".join([star, *rest]), depth + 1)
                    if found is not None:
                        return found
            return None
        definition = Definition(f"{mod}.{rest[0]}", node, mod)
        for attr in rest[1:]:
            if not definition.is_class:
                return None
            definition = self.member(definition, attr, depth)
            if definition is None:
                return None
        return definition

    def member(self, cls: Definition, attr: str, depth: int = 0) -> Definition | None:
        """Method ``attr`` of class ``cls``, looked up through project base classes too."""
        for item in cls.node.body:
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) \
                    and item.name == attr:
                return Definition(f"{cls.qualname}.{attr}", item, cls.module)
        if depth > 3:
            return None
        parsed = self.module(cls.module)
        imports = parsed[2] if parsed else {}
        for base in cls.node.bases:
            base_def = self.resolve_in_scope(ast.unparse(base), cls.module, imports, depth + 1)
            if base_def is not None and base_def.is_class:
                found = self.member(base_def, attr, depth + 1)
                if found is not None:
                    return found
        return None

    def resolve_in_scope(self, dotted: str, module: str, imports: dict[str, str],
                         depth: int = 0) -> Definition | None:
        """Resolve a name as written inside ``module`` (its own defs, then its imports)."""
        head, _, rest = dotted.partition(".")
        parsed = self.module(module)
        if parsed is not None and head in parsed[1]:
            return self.resolve(f"{module}.{dotted}", depth)
        target = imports.get(head)
        if target is not None:
            return self.resolve(f"{target}.{rest}" if rest else target, depth)
        return None

    def source(self, definition: Definition) -> str:
        """Dedented source of a definition (decorators included), cut as the plugin cuts it."""
        parsed = self.module(definition.module)
        return definition_source(parsed[3].splitlines(), definition.node)


def _top_level_defs(tree: ast.Module) -> dict[str, ast.AST]:
    defs: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defs[node.name] = node
        elif isinstance(node, (ast.If, ast.Try)):
            for child in node.body:
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    defs.setdefault(child.name, child)
    return defs
