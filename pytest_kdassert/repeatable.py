"""Whether a test call is certain to give the same values when its body runs again.

The flakiness guard (:mod:`.flakiness`) runs a test body a second time to see whether the
values it grounded change; with isolation that second run waits in a child forked before the
call, and on a big suite those forks are most of the plugin's cost (milliseconds each, more
than a small test's body). A second run can only tell something when the body can differ,
so it is skipped for a call that provably can't: a test whose arguments are immutable
constants and whose body, and every function it calls, computes from literals alone (a test
method may use its instance only to call unittest's own assertion methods).

The analysis is static and conservative, on the source of the test and of the functions its
names resolve to at call time (recursively): any construct it does not know to be
deterministic (an attribute store, a module other than a few pure ones, a class, a global
that is not an immutable constant, ``with``, ``global``, a decorated or wrapped function, a
mutable default argument, a closure over anything but constants...) makes the call "not
repeatable", and the guard runs as before.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import math
import operator
import types
import unittest
from dataclasses import dataclass

from pytest_kdassert.core.memo import run_cache
from pytest_kdassert.loaded_source import function_definition

PURE_BUILTINS = frozenset(getattr(builtins, name) for name in (
    "abs", "all", "any", "ascii", "bin", "bool", "bytes", "callable", "chr", "complex", "dict",
    "divmod", "enumerate", "filter", "float", "format", "frozenset", "hex", "int", "isinstance",
    "issubclass", "iter", "len", "list", "map", "max", "min", "next", "oct", "ord", "pow",
    "range", "repr", "reversed", "round", "set", "slice", "sorted", "str", "sum", "tuple",
    "type", "zip",
))
"""Builtins whose result depends on their arguments alone (no ``id``, ``hash``, ``open``,
``input``, ``getattr``...)."""

PURE_MODULES = frozenset({math, operator})
"""Modules whose functions depend on their arguments alone."""

_MAX_DEPTH = 4
"""How deep calls are followed; a call graph deeper than this counts as not repeatable."""

_STATEMENTS = (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Return, ast.If, ast.For, ast.While,
               ast.Break, ast.Continue, ast.Pass, ast.Expr, ast.Assert, ast.Raise, ast.Try)
_EXPRESSIONS = (ast.Constant, ast.Name, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare,
                ast.IfExp, ast.Call, ast.Attribute, ast.Subscript, ast.Slice, ast.Starred,
                ast.List, ast.Tuple, ast.Set, ast.Dict, ast.ListComp, ast.SetComp, ast.DictComp,
                ast.GeneratorExp, ast.comprehension, ast.JoinedStr, ast.FormattedValue,
                ast.Lambda, ast.arguments, ast.arg, ast.keyword, ast.NamedExpr, ast.ExceptHandler)
_CONTEXTS = (ast.Load, ast.Store, ast.Del, ast.expr_context, ast.operator, ast.unaryop,
             ast.boolop, ast.cmpop)


def repeatable_call(item) -> bool:
    """Whether running ``item``'s test body again must give the values it gave the first time.

    A test method qualifies when its body uses its instance only to call unittest's own
    assertion methods (``self.assertEqual(...)``; not overridden by the class): what setup
    stored on the instance may differ in the re-run, which builds the instance afresh.
    """
    cls = getattr(item, "cls", None)
    function = getattr(item, "obj", None)
    function = getattr(function, "__func__", function)  # a bound method's function
    if not isinstance(function, types.FunctionType):
        return False
    try:
        arguments = list(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        return False
    instance = None
    if cls is not None:
        if not arguments:
            return False
        instance, arguments = arguments[0], arguments[1:]
    values = getattr(item, "funcargs", {})  # set up by now: what the body receives
    if any(name not in values or not is_constant(values[name]) for name in arguments):
        return False  # an object from a fixture or parameter may change as the body runs
    try:
        return _Purity().function(function, depth=0, decorators_allowed=True,
                                  instance=(instance, cls) if instance else None)
    except Exception:  # noqa: BLE001 - odd user code: not provably repeatable, the guard runs
        return False


_SCALARS = frozenset({type(None), bool, int, float, complex, str, bytes})


def is_constant(value, depth: int = 0) -> bool:
    """An immutable value made of immutable values (exact builtin types: a subclass may
    bring methods of its own)."""
    if type(value) in _SCALARS:
        return True
    if type(value) in (tuple, frozenset) and depth < 4 and len(value) <= 1000:
        return all(is_constant(item, depth + 1) for item in value)
    return False


class _Purity:
    """The purity verdicts of one check, by code object: each function met is judged once."""

    def __init__(self):
        self._verdicts: dict[types.CodeType, bool] = {}

    def function(self, function: types.FunctionType, depth: int, decorators_allowed: bool = False,
                 instance: tuple[str, type] | None = None) -> bool:
        """``instance``: (parameter name, class) of a test method's own instance."""
        code = function.__code__
        if code in self._verdicts:
            return self._verdicts[code]
        # a function that calls itself is pure when the rest of its body is (assumed while checked)
        self._verdicts[code] = True
        verdict = depth <= _MAX_DEPTH and self._check(function, depth, decorators_allowed, instance)
        self._verdicts[code] = verdict
        return verdict

    def _check(self, function: types.FunctionType, depth: int, decorators_allowed: bool,
               instance: tuple[str, type] | None = None) -> bool:
        if hasattr(function, "__wrapped__") or function.__code__.co_flags & (
                inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR):
            return False
        if not all(is_constant(value) for value in (function.__defaults__ or ())) or not all(
                is_constant(value) for value in (function.__kwdefaults__ or {}).values()):
            return False  # a mutable default keeps state between calls
        if function.__closure__ and not all(_cell_constant(cell) for cell in function.__closure__):
            return False
        node = _definition(function)
        if node is None or (node.decorator_list and not decorators_allowed):
            return False
        if instance is not None and not _instance_only_asserts(node, *instance):
            return False  # else its uses are assertion calls only, and it is a parameter
        shape = _shape(node)
        return shape.plain and all(self._global(name, function, depth) for name in shape.free)

    def _global(self, name: str, function: types.FunctionType, depth: int) -> bool:
        """Whether the global (or builtin) ``name`` of ``function`` is safe to read and call."""
        if name in function.__globals__:
            value = function.__globals__[name]
        elif hasattr(builtins, name):
            value = getattr(builtins, name)
        else:
            return False  # a NameError now; a global set later would be another story
        if _is_pure_builtin(value) or is_constant(value) or (
                isinstance(value, types.ModuleType) and value in PURE_MODULES):
            return True
        if isinstance(value, type) and issubclass(value, BaseException):
            return True  # raising is deterministic
        if isinstance(value, types.FunctionType):
            return self.function(value, depth + 1)
        return False


@dataclass(frozen=True)
class _Shape:
    """What a definition's text says, whatever its globals hold at the time of a check."""

    plain: bool
    """Only allowed statements and expressions, assignments to local targets, no dunder."""
    free: tuple[str, ...]
    """Names read that are not local: globals or builtins, resolved at each check."""


@run_cache(maxsize=4096)  # every test of a module calls the same functions
def _shape(node: ast.FunctionDef) -> _Shape:
    local = _local_names(node)
    free: dict[str, None] = {}
    for child in _body_nodes(node):
        if isinstance(child, ast.Name):
            if child.id not in local:
                free[child.id] = None
        elif not _plain_node(child):
            return _Shape(False, ())
    return _Shape(True, tuple(free))


def _plain_node(node: ast.AST) -> bool:
    if isinstance(node, ast.stmt):
        if not isinstance(node, _STATEMENTS):
            return False
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            return all(_plain_target(target) for target in targets)
        return True
    if isinstance(node, ast.Attribute):
        return not node.attr.startswith("__") and isinstance(node.ctx, ast.Load)
    return isinstance(node, _EXPRESSIONS + _CONTEXTS)


def _instance_only_asserts(node: ast.FunctionDef, name: str, cls: type) -> bool:
    """Whether every use of the instance ``name`` in ``node``'s body calls one of unittest's
    own assertion methods (``self.assertEqual(a, b)``), which depend on their arguments alone."""
    allowed = set()
    for child in _body_nodes(node):
        if isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute) \
                and isinstance(child.func.value, ast.Name) and child.func.value.id == name:
            attr = child.func.attr
            if attr.startswith("assert") and _unittest_own(cls, attr):
                allowed.add(id(child.func.value))
    return all(id(child) in allowed for child in _body_nodes(node)
               if isinstance(child, ast.Name) and child.id == name)


def _unittest_own(cls: type, attr: str) -> bool:
    own = getattr(unittest.TestCase, attr, None)
    return own is not None and isinstance(cls, type) and issubclass(cls, unittest.TestCase) \
        and getattr(cls, attr, None) is own


def _is_pure_builtin(value) -> bool:
    try:
        return value in PURE_BUILTINS
    except TypeError:  # unhashable
        return False


def _cell_constant(cell) -> bool:
    try:
        return is_constant(cell.cell_contents)
    except ValueError:  # an empty cell
        return False


def _definition(function: types.FunctionType) -> ast.FunctionDef | None:
    return function_definition(function.__code__)


def _body_nodes(node: ast.FunctionDef):
    """Every node of the function's body and of its argument defaults' expressions."""
    for statement in node.body:
        yield from ast.walk(statement)


def _local_names(node: ast.FunctionDef) -> set[str]:
    """Parameters and every name the function binds (assignments, loops, comprehensions,
    lambda parameters, ``except ... as``)."""
    names = {arg.arg for arg in ast.walk(node.args) if isinstance(arg, ast.arg)}
    for child in _body_nodes(node):
        if isinstance(child, ast.Name) and isinstance(child.ctx, (ast.Store, ast.Del)):
            names.add(child.id)
        elif isinstance(child, ast.arg):
            names.add(child.arg)
        elif isinstance(child, ast.ExceptHandler) and child.name:
            names.add(child.name)
    return names


def _plain_target(target: ast.AST) -> bool:
    """An assignment target that changes local values only: names, unpacking, and items of
    containers (``values[0] = 1``); not attributes, which may belong to shared objects."""
    if isinstance(target, ast.Name):
        return True
    if isinstance(target, (ast.Tuple, ast.List)):
        return all(_plain_target(element) for element in target.elts)
    if isinstance(target, ast.Starred):
        return _plain_target(target.value)
    return isinstance(target, ast.Subscript)
