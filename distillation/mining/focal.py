"""Data-flow focal resolution: which project function does an assertion check?

Order of preference for one assertion:

1. a call inside the assertion itself (``assert f(x) == 1``, ``self.assertEqual(obj.m(), 2)``);
2. the latest call that produced or changed a name the assertion reads
   (``r = f(x); assert r == 1``; ``obj.push(1); assert obj.size == 1``), followed through
   intermediate names (``r = f(x); v = r.value; assert v``);
3. the last resolvable call before the assertion;
4. none.

A call is resolved through the test module's imports to a definition in the project's
non-test code; ``obj = Cls(...)`` then ``obj.method()`` resolves to ``Cls.method``.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from distillation.assertions import dotted_name
from distillation.mining.symbols import Definition, ProjectIndex

_MAX_TRACE = 4


@dataclass
class TestScope:
    """What a test function can see: module imports, local variable types, statement order."""

    index: ProjectIndex
    imports: dict[str, str]
    statements: list[ast.stmt]
    """Simple statements of the test body in source order (compound bodies flattened)."""
    attr_types: dict[str, Definition] = field(default_factory=dict)
    """Class of ``self.<attr>`` assigned in ``setUp``/``setup_method``."""


def flatten_statements(body: list[ast.stmt]) -> list[ast.stmt]:
    """Simple statements in source order, descending into with/for/if/try (not nested defs)."""
    out: list[ast.stmt] = []
    for stmt in body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if isinstance(stmt, (ast.With, ast.AsyncWith)):
            out.append(stmt)  # its items may bind names (`with f() as x`)
            out.extend(flatten_statements(stmt.body))
        elif isinstance(stmt, (ast.For, ast.AsyncFor, ast.While, ast.If)):
            out.append(stmt)
            out.extend(flatten_statements(stmt.body))
            out.extend(flatten_statements(stmt.orelse))
        elif isinstance(stmt, ast.Try):
            out.extend(flatten_statements(stmt.body))
            for handler in stmt.handlers:
                out.extend(flatten_statements(handler.body))
            out.extend(flatten_statements(stmt.orelse))
            out.extend(flatten_statements(stmt.finalbody))
        else:
            out.append(stmt)
    return out


def _header_exprs(stmt: ast.stmt) -> list[ast.AST]:
    """The parts of a statement evaluated at that point (a compound's header, not its body)."""
    if isinstance(stmt, (ast.With, ast.AsyncWith)):
        return [item.context_expr for item in stmt.items]
    if isinstance(stmt, (ast.For, ast.AsyncFor)):
        return [stmt.iter]
    if isinstance(stmt, (ast.While, ast.If)):
        return [stmt.test]
    return [stmt]


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


class FocalResolver:
    """Resolves the focal definition of each assertion of one test function."""

    def __init__(self, scope: TestScope):
        self.scope = scope

    def resolve_call(self, call: ast.Call, upto: int) -> Definition | None:
        """The project definition a call invokes, using variable types known before ``upto``."""
        func = call.func
        if isinstance(func, ast.Attribute):
            receiver = self.type_of(func.value, upto)
            if receiver is not None:
                return self.scope.index.member(receiver, func.attr)
        dotted = dotted_name(func)
        if dotted is None:
            return None
        head, _, rest = dotted.partition(".")
        target = self.scope.imports.get(head)
        if target is None:
            return self._from_star(dotted)
        return self.scope.index.resolve(f"{target}.{rest}" if rest else target)

    def _from_star(self, dotted: str) -> Definition | None:
        for key, module in self.scope.imports.items():
            if key.startswith("*"):
                found = self.scope.index.resolve(f"{module}.{dotted}")
                if found is not None:
                    return found
        return None

    def type_of(self, node: ast.AST, upto: int) -> Definition | None:
        """Project class of an expression: ``Cls(...)``, or a name bound to one."""
        if isinstance(node, ast.Call):
            found = self.resolve_call(node, upto)
            if found is not None and not found.is_class and _returns_self(found.node):
                found = self.scope.index.resolve(found.qualname.rpartition(".")[0])
            return found if found is not None and found.is_class else None
        name = dotted_name(node)
        if name is None or not (isinstance(node, ast.Name) or _self_attr(node)):
            return None
        for stmt in reversed(self.scope.statements[:upto]):
            if name in _bound_names(stmt):
                value = _value_of(stmt)
                return self.type_of(value, self.scope.statements.index(stmt)) \
                    if isinstance(value, ast.Call) else None
        return self.scope.attr_types.get(name)

    def focal(self, position: int) -> Definition | None:
        """Focal definition of the assertion at ``statements[position]``."""
        stmt = self.scope.statements[position]
        calls = self._assertion_calls(stmt)
        found = self._first_resolvable(calls, position, allow_class=False)
        if found is None:
            found = self._trace_names(_names_read(stmt), position, 0)
        if found is None:  # a constructor in the assertion: `assert r == Cls(1)` is weak
            found = self._first_resolvable(calls, position)
        if found is None:
            found = self._last_call_before(position)
        return found

    def _assertion_calls(self, stmt: ast.stmt) -> list[ast.Call]:
        calls = calls_in(stmt)
        if isinstance(stmt, ast.Expr) and calls and calls[0] is stmt.value:
            calls = calls[1:]  # the assertion helper itself
        return calls

    def _first_resolvable(self, calls: list[ast.Call], upto: int,
                          allow_class: bool = True) -> Definition | None:
        for call in calls:
            found = self.resolve_call(call, upto)
            if found is not None and (allow_class or not found.is_class):
                return found
        return None

    def _trace_names(self, names: list[str], upto: int, depth: int) -> Definition | None:
        if depth > _MAX_TRACE:
            return None
        for name in names:
            found = self._trace_name(name, upto, depth)
            if found is not None:
                return found
        return None

    def _trace_name(self, name: str, upto: int, depth: int) -> Definition | None:
        for pos in range(upto - 1, -1, -1):
            stmt = self.scope.statements[pos]
            call = _mutating_call(stmt, name)
            if call is not None:
                found = self.resolve_call(call, pos)
                if found is not None:
                    return found
            if name in _bound_names(stmt):
                value = _value_of(stmt)
                if value is None:
                    return None
                found = self._first_resolvable(calls_in(value), pos)
                return found or self._trace_names(_names_read(value), pos, depth + 1)
        return None

    def _last_call_before(self, position: int) -> Definition | None:
        for pos in range(position - 1, -1, -1):
            stmt = self.scope.statements[pos]
            calls = [c for expr in _header_exprs(stmt) for c in calls_in(expr)]
            for call in reversed(calls):
                found = self.resolve_call(call, pos)
                if found is not None:
                    return found
        return None


def last_call_baseline(scope: TestScope, position: int) -> Definition | None:
    """The prototype's rule, for comparison: the last resolvable call before the assertion."""
    return FocalResolver(scope)._last_call_before(position)
