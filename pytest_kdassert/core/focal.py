"""Which function does an assertion check? One rule for the miner and the plugin.

The rule runs over a test's flattened statements (:func:`~.source.flatten_statements`) and
asks a *symbol table* to turn names into definitions. The miner's table resolves names
statically through a project's files (``distillation.mining.focal``); the plugin's resolves
them in the imported test module (``pytest_kdassert.focal``). Both hand back
:class:`Definition` objects and cut their source with :func:`~.source.definition_source`.

With the assertion known (training data), the order of preference is:

1. a call inside the assertion itself (``assert f(x) == 1``, ``self.assertEqual(obj.m(), 2)``);
2. the latest call that produced or changed a name the assertion reads
   (``r = f(x); assert r == 1``; ``obj.push(1); assert obj.size == 1``), followed through
   intermediate names (``r = f(x); v = r.value; assert v``);
3. the last resolvable call before the assertion;
4. none.

Without it (a site that wants an assertion) the assertion's data flow is unknown, so
:meth:`FocalResolver.focal_at_site` takes the latest resolvable call whose result is kept
in a name (rule 2's usual source), else rule 3.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Protocol

from pytest_kdassert.core.assertions import dotted_name

_MAX_TRACE = 4


@dataclass(frozen=True)
class Definition:
    """A function, method or class of the code under test."""

    qualname: str
    """``module.func``, ``module.Class`` or ``module.Class.method``."""
    node: ast.AST
    module: str

    @property
    def is_class(self) -> bool:
        return isinstance(self.node, ast.ClassDef)


@dataclass(frozen=True)
class FocalMatch:
    """The focal definition and the call in the test that invokes it."""

    definition: Definition
    call: ast.Call

    @property
    def written_name(self) -> str | None:
        """The call's name as the test writes it (``cart.total``), if it is dotted."""
        return dotted_name(self.call.func)


class Symbols(Protocol):
    """Names as a test sees them, resolved to definitions of the code under test."""

    def resolve(self, dotted: str) -> Definition | None:
        """A dotted name written in the test (``mod.func``, ``Cls``), or None."""

    def member(self, cls: Definition, attr: str) -> Definition | None:
        """Method ``attr`` of class ``cls`` (base classes included), or None."""

    def attr_type(self, name: str) -> Definition | None:
        """The class of ``self.<attr>`` (set up by fixtures or ``setUp``), or None."""

    def owner(self, method: Definition) -> Definition | None:
        """The class a method is defined in, or None."""


class FocalResolver:
    """Resolves the focal definition of each assertion (or site) of one test function."""

    def __init__(self, symbols: Symbols, statements: list[ast.stmt]):
        self.symbols = symbols
        self.statements = statements

    def resolve_call(self, call: ast.Call, upto: int) -> Definition | None:
        """The definition a call invokes, using variable types known before ``upto``."""
        func = call.func
        if isinstance(func, ast.Attribute):
            receiver = self.type_of(func.value, upto)
            if receiver is not None:
                return self.symbols.member(receiver, func.attr)
        dotted = dotted_name(func)
        return self.symbols.resolve(dotted) if dotted is not None else None

    def type_of(self, node: ast.AST, upto: int) -> Definition | None:
        """Class of an expression: ``Cls(...)``, a fluent call on one, or a name bound to one."""
        if isinstance(node, ast.Call):
            found = self.resolve_call(node, upto)
            if found is not None and not found.is_class and _returns_self(found.node):
                found = self.symbols.owner(found)
            return found if found is not None and found.is_class else None
        name = dotted_name(node)
        if name is None or not (isinstance(node, ast.Name) or _self_attr(node)):
            return None
        for pos in range(min(upto, len(self.statements)) - 1, -1, -1):
            stmt = self.statements[pos]
            if name in _bound_names(stmt):
                value = _value_of(stmt)
                return self.type_of(value, pos) if isinstance(value, ast.Call) else None
        return self.symbols.attr_type(name)

    def focal(self, position: int) -> FocalMatch | None:
        """Focal definition of the assertion at ``statements[position]``."""
        stmt = self.statements[position]
        calls = _assertion_calls(stmt)
        found = self._first_resolvable(calls, position, allow_class=False)
        if found is None:
            found = self._trace_names(_names_read(stmt), position, 0)
        if found is None:  # a constructor in the assertion: `assert r == Cls(1)` is weak
            found = self._first_resolvable(calls, position)
        if found is None:
            found = self.last_call_before(position)
        return found

    def focal_at_site(self, position: int) -> FocalMatch | None:
        """Focal definition for an assertion still to be written before ``statements[position]``.

        ``position`` may be ``len(statements)`` (after the test's last statement).
        """
        for pos in range(position - 1, -1, -1):
            stmt = self.statements[pos]
            if isinstance(stmt, (ast.Assign, ast.AnnAssign)) and isinstance(stmt.value, ast.Call):
                found = self._first_resolvable([stmt.value], pos)
                if found is not None:
                    return found
        return self.last_call_before(position)

    def last_call_before(self, position: int) -> FocalMatch | None:
        """The last resolvable call before ``statements[position]`` (the prototype's rule)."""
        for pos in range(position - 1, -1, -1):
            stmt = self.statements[pos]
            calls = [c for expr in _header_exprs(stmt) for c in calls_in(expr)]
            for call in reversed(calls):
                found = self.resolve_call(call, pos)
                if found is not None:
                    return FocalMatch(found, call)
        return None

    def _first_resolvable(self, calls: list[ast.Call], upto: int,
                          allow_class: bool = True) -> FocalMatch | None:
        for call in calls:
            found = self.resolve_call(call, upto)
            if found is not None and (allow_class or not found.is_class):
                return FocalMatch(found, call)
        return None

    def _trace_names(self, names: list[str], upto: int, depth: int) -> FocalMatch | None:
        if depth > _MAX_TRACE:
            return None
        for name in names:
            found = self._trace_name(name, upto, depth)
            if found is not None:
                return found
        return None

    def _trace_name(self, name: str, upto: int, depth: int) -> FocalMatch | None:
        for pos in range(upto - 1, -1, -1):
            stmt = self.statements[pos]
            call = _mutating_call(stmt, name)
            if call is not None:
                found = self.resolve_call(call, pos)
                if found is not None:
                    return FocalMatch(found, call)
            if name in _bound_names(stmt):
                value = _value_of(stmt)
                if value is None:
                    return None
                found = self._first_resolvable(calls_in(value), pos)
                return found or self._trace_names(_names_read(value), pos, depth + 1)
        return None


def calls_in(node: ast.AST) -> list[ast.Call]:
    """Calls under ``node``, outermost first, then left to right (breadth first)."""
    found, queue = [], [node]
    while queue:
        current = queue.pop(0)
        if isinstance(current, ast.Call):
            found.append(current)
        if isinstance(current, (ast.Lambda, ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        queue.extend(ast.iter_child_nodes(current))
    return found


def _assertion_calls(stmt: ast.stmt) -> list[ast.Call]:
    calls = calls_in(stmt)
    if isinstance(stmt, ast.Expr) and calls and calls[0] is stmt.value:
        calls = calls[1:]  # the assertion helper itself
    return calls


def _header_exprs(stmt: ast.stmt) -> list[ast.AST]:
    """The parts of a statement evaluated at that point (a compound's header, not its body)."""
    if isinstance(stmt, (ast.With, ast.AsyncWith)):
        return [item.context_expr for item in stmt.items]
    if isinstance(stmt, (ast.For, ast.AsyncFor)):
        return [stmt.iter]
    if isinstance(stmt, (ast.While, ast.If)):
        return [stmt.test]
    if isinstance(stmt, ast.Match):
        return [stmt.subject]
    return [stmt]


def _names_read(node: ast.AST) -> list[str]:
    names = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load) and sub.id not in names:
            names.append(sub.id)
        elif isinstance(sub, ast.Attribute) and _self_attr(sub) and _self_attr(sub) not in names:
            names.append(_self_attr(sub))
    return names


def _self_attr(node: ast.AST) -> str | None:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
            and node.value.id == "self":
        return f"self.{node.attr}"
    return None


def _bound_names(stmt: ast.stmt) -> list[str]:
    targets: list[ast.AST] = []
    if isinstance(stmt, ast.Assign):
        targets = stmt.targets
    elif isinstance(stmt, (ast.AnnAssign, ast.AugAssign)):
        targets = [stmt.target]
    elif isinstance(stmt, (ast.With, ast.AsyncWith)):
        targets = [item.optional_vars for item in stmt.items if item.optional_vars]
    elif isinstance(stmt, (ast.For, ast.AsyncFor)):
        targets = [stmt.target]
    names = []
    for target in targets:
        for sub in ast.walk(target):
            if isinstance(sub, ast.Name):
                names.append(sub.id)
            elif _self_attr(sub):
                names.append(_self_attr(sub))
    return names


def _value_of(stmt: ast.stmt) -> ast.AST | None:
    if isinstance(stmt, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
        return stmt.value
    if isinstance(stmt, (ast.With, ast.AsyncWith)):
        return ast.Tuple([item.context_expr for item in stmt.items], ast.Load())
    if isinstance(stmt, (ast.For, ast.AsyncFor)):
        return stmt.iter
    return None


def _mutating_call(stmt: ast.stmt, name: str) -> ast.Call | None:
    """``name.method(...)`` as a statement of its own: it changes ``name``'s state."""
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
        func = stmt.value.func
        if isinstance(func, ast.Attribute) and dotted_name(func.value) == name:
            return stmt.value
    return None


def _returns_self(node: ast.AST) -> bool:
    """A fluent method (``return self``): its call has the receiver's type."""
    return any(isinstance(sub, ast.Return) and isinstance(sub.value, ast.Name)
               and sub.value.id == "self" for sub in ast.walk(node))
