"""Turn one test file into examples: mask each assertion, attach its focal function."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

from distillation.mining.discover import (
    module_name,
    parse_source,
    read_source,
)
from distillation.mining.fixtures import conftest_fixture_types, module_fixture_types
from distillation.mining.focal import TestScope, last_call_baseline
from distillation.mining.symbols import ProjectIndex, import_table
from pytest_kdassert.core.assertions import assertion_kind
from pytest_kdassert.core.focal import Definition
from pytest_kdassert.core.records import Example
from pytest_kdassert.core.source import flatten_statements
from pytest_kdassert.core.testfuncs import TestFunction, find_test_functions, masked_assertions

_SETUP_NAMES = ("setUp", "setup_method", "setUpClass", "setup_class")


@dataclass
class FileResult:
    """Examples of one test file (with their assertion kinds), or why it was skipped."""

    examples: list[tuple[Example, str]] = field(default_factory=list)
    skipped: str | None = None
    tests: int = 0
    skipped_assertions: int = 0


@dataclass(frozen=True)
class ExtractConfig:
    """Which tests yield examples."""

    min_assertions: int = 1
    max_assertions: int = 3
    max_file_bytes: int = 1_000_000
    focal_strategy: str = "dataflow"
    """``dataflow`` (see focal.py) or ``last_call``: the prototype's baseline rule."""


def extract_file(index: ProjectIndex, project: str, rel: Path,
                 config: ExtractConfig) -> FileResult:
    """All examples of test file ``rel`` (relative to ``index.root``)."""
    text, reason = read_source(index.root / rel, config.max_file_bytes)
    if text is None:
        return FileResult(skipped=reason)
    tree, reason = parse_source(text, str(rel))
    if tree is None:
        return FileResult(skipped=reason)
    lines = text.splitlines()
    module = module_name(index.root, rel)
    imports = import_table(tree, module, rel.name == "__init__.py")
    result = FileResult()
    tests = find_test_functions(tree)
    fixtures = {}
    if tests:
        fixtures = {**conftest_fixture_types(index, rel, index.fixture_cache),
                    **module_fixture_types(index, tree, imports)}
    setup_types: dict[int, dict[str, Definition]] = {}
    local_classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    for test in tests:
        result.tests += 1
        scope_imports = {**imports, **_local_imports(test.node, module)}
        args = test.node.args
        attr_types = {a.arg: fixtures[a.arg] for a in [*args.posonlyargs, *args.args]
                      if a.arg in fixtures}
        if test.class_node is not None:
            key = id(test.class_node)
            if key not in setup_types:
                setup_types[key] = _setup_types(index, imports, test.class_node, local_classes)
            attr_types.update(setup_types[key])
        scope = TestScope(index, scope_imports, flatten_statements(test.node.body), attr_types)
        _extract_test(scope, test, lines, project, rel.as_posix(), config, result)
    return result


def _local_imports(node: ast.AST, module: str) -> dict[str, str]:
    body = [n for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))]
    return import_table(ast.Module(body=body, type_ignores=[]), module) if body else {}


def _setup_types(index: ProjectIndex, imports: dict[str, str], cls: ast.ClassDef,
                 local_classes: dict[str, ast.ClassDef], depth: int = 0) -> dict[str, Definition]:
    """Classes of ``self.x``: ``x = Cls(...)`` in the class body, ``self.x = Cls(...)`` in
    setUp/setup_method; base classes defined in the same test module are included."""
    types: dict[str, Definition] = {}
    for base in cls.bases:
        if isinstance(base, ast.Name) and base.id in local_classes and depth < 3:
            types.update(_setup_types(index, imports, local_classes[base.id], local_classes,
                                      depth + 1))
    types.update(_assigned_types(index, imports, cls.body, class_body=True))
    for item in cls.body:
        if isinstance(item, ast.FunctionDef) and item.name in _SETUP_NAMES:
            types.update(_assigned_types(index, imports, item.body))
    return types


def _assigned_types(index: ProjectIndex, imports: dict[str, str], body: list[ast.stmt],
                    class_body: bool = False) -> dict[str, Definition]:
    statements = flatten_statements(body)
    resolver = TestScope(index, imports, statements).resolver()
    types = {}
    for pos, stmt in enumerate(statements):
        if not (isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Call)):
            continue
        found = resolver.type_of(stmt.value, pos)
        for target in stmt.targets:
            name = target.id if class_body and isinstance(target, ast.Name) else (
                target.attr if not class_body and isinstance(target, ast.Attribute) else None)
            if found is not None and name is not None:
                types[f"self.{name}"] = found
    return types


def _extract_test(scope: TestScope, test: TestFunction, lines: list[str], project: str,
                  test_file: str, config: ExtractConfig, result: FileResult) -> None:
    found = masked_assertions(test.node, lines, scope.statements, config.max_assertions)
    if len(found) < config.min_assertions:
        return
    resolver = scope.resolver()
    for k, assertion in enumerate(found):
        stmt, masked, pos = assertion.statement, assertion.masked, assertion.position
        if masked is None:
            result.skipped_assertions += 1
            continue
        match = resolver.focal(pos) if config.focal_strategy == "dataflow" \
            else last_call_baseline(scope, pos)
        focal = match.definition if match else None
        example = Example(
            id=f"{project}:{test_file}::{test.name}#{k}",
            project=project,
            test_file=test_file,
            test_name=test.name,
            focal_name=focal.qualname if focal else None,
            focal_source=scope.index.source(focal) if focal else "",
            test_source_masked=masked,
            assertion=ast.unparse(stmt),
        )
        result.examples.append((example, assertion_kind(stmt).value))
