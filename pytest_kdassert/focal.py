"""The focal function at runtime: the plugin's symbol table for the shared focal rule.

The rule (:class:`pytest_kdassert.core.focal.FocalResolver`) and the source cut
(:func:`pytest_kdassert.core.source.definition_source`) are the miner's; only the way names
resolve differs. The test module is imported, so a name resolves to the object it holds and
that object to its definition in its own file. As in the miner, only code outside test files,
the standard library and installed packages counts as code under test; the project's own
packages count wherever they are installed (:mod:`pytest_kdassert.project`).
"""

from __future__ import annotations

import ast
import builtins
import functools
import inspect
import linecache
import logging
import sysconfig
from dataclasses import dataclass

from pytest_kdassert.core.focal import Definition, FocalResolver
from pytest_kdassert.core.source import definition_source, flatten_statements
from pytest_kdassert.loaded_source import definition_at

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Focal:
    """The function under test, as the model sees it."""

    name: str
    """The call as the test writes it (``cart.total``)."""
    source: str


def resolve_focal(test_node: ast.AST, before_line: int, namespace: dict,
                  project: frozenset[str] = frozenset()) -> Focal | None:
    """The focal function for the site at ``before_line`` (calls on later lines are ignored).

    ``project``: top-level packages of the project under test, code under test even when
    installed into site-packages.
    """
    statements = flatten_statements(test_node.body)
    position = sum(1 for stmt in statements if stmt.lineno < before_line)
    symbols = RuntimeSymbols(namespace, project)
    match = FocalResolver(symbols, statements).focal_at_site(position)
    if match is None:
        return None
    source = symbols.source(match.definition)
    if not source:
        return None
    return Focal(name=match.written_name or match.definition.qualname, source=source)


class RuntimeSymbols:
    """Names of an imported test module, resolved to definitions in their source files.

    Implements :class:`pytest_kdassert.core.focal.Symbols`.
    """

    def __init__(self, namespace: dict, project: frozenset[str] = frozenset()):
        self.namespace = namespace
        self.project = project
        self._objects: dict[str, object] = {}
        """Definition qualname -> the object it was made from."""
        self._files: dict[str, str] = {}
        """Definition qualname -> the file that holds it."""

    def resolve(self, dotted: str) -> Definition | None:
        head, *rest = dotted.split(".")
        if head not in self.namespace:
            return None  # builtins, locals, fixtures, self
        obj = self.namespace[head]
        if obj is getattr(builtins, head, None) and not rest:
            return None
        for attr in rest:
            try:
                obj = inspect.getattr_static(obj, attr)
            except AttributeError:
                return None
            obj = getattr(obj, "__func__", obj)  # staticmethod / classmethod
        return self._definition(obj)

    def member(self, cls: Definition, attr: str) -> Definition | None:
        owner = self._objects.get(cls.qualname)
        try:
            obj = inspect.getattr_static(owner, attr)
        except AttributeError:
            return None
        return self._definition(getattr(obj, "__func__", obj))

    def attr_type(self, name: str) -> Definition | None:
        return None  # ``self.x`` is set when the test runs, after the focal is chosen

    def owner(self, method: Definition) -> Definition | None:
        obj = self._objects.get(method.qualname)
        qualname = getattr(obj, "__qualname__", "")
        if "." not in qualname:
            return None
        owner = inspect.getmodule(obj)
        for part in qualname.split(".")[:-1]:
            owner = getattr(owner, part, None)
        return self._definition(owner)

    def source(self, definition: Definition) -> str:
        text = "".join(linecache.getlines(self._files.get(definition.qualname, "")))
        return definition_source(text.splitlines(), definition.node) if text else ""

    def _definition(self, obj) -> Definition | None:
        if not (inspect.isfunction(obj) or inspect.isclass(obj)) or is_library(obj, self.project):
            return None
        if in_test_file(obj):
            return None
        found = _locate(obj)
        if found is None:
            return None
        filename, node = found
        qualname = f"{obj.__module__}.{obj.__qualname__}"
        self._objects[qualname] = obj
        self._files[qualname] = filename
        return Definition(qualname, node, obj.__module__)


def _locate(obj) -> tuple[str, ast.AST] | None:
    """``(file, def node)`` of a function or class, from its file as linecache holds it."""
    try:
        target = inspect.unwrap(obj)  # as inspect.getsourcelines does
        filename = inspect.getsourcefile(target)
        code = getattr(target, "__code__", None)
        # a function's first line is in its code object; only a class needs inspect's search
        lineno = code.co_firstlineno if code is not None else inspect.getsourcelines(obj)[1]
    except (OSError, TypeError, ValueError):
        return None
    if not filename:
        return None
    node = definition_at(filename, obj.__name__, lineno)
    return None if node is None else (filename, node)


def is_library(obj, project: frozenset[str] = frozenset()) -> bool:
    """Standard library and installed packages are never the code under test, except the
    project's own (``project``: its top-level package names)."""
    if (getattr(obj, "__module__", None) or "").split(".")[0] in project:
        return False
    try:
        path = inspect.getsourcefile(obj) or ""
    except TypeError:
        return True
    return "site-packages" in path or path.startswith(_stdlib())


@functools.cache
def _stdlib() -> str:
    return sysconfig.get_paths()["stdlib"]  # expands config variables: ~0.4 ms a call


TEST_DIRS = frozenset({"test", "tests", "testing"})


def in_test_file(obj) -> bool:
    """Defined in a test module, a conftest or a test package: test code, not code under test."""
    module = getattr(obj, "__module__", "") or ""
    parts = module.split(".")
    leaf = parts[-1]
    if leaf.startswith("test_") or leaf.endswith("_test") or leaf == "conftest":
        return True
    return any(part in TEST_DIRS for part in parts[:-1])
