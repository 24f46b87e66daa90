"""Template candidates: ``assert <variable> == <observed value>`` for the test's own variables.

A small model often picks the wrong names (it has seen ``result`` and ``expected`` far more
often than this test's ``n``), yet the test already holds the values worth pinning down: the
variables it assigned just before the site. For each of the last few, we offer a template
whose literal is a stand-in; grounding (:mod:`.grounding`) replaces it with the value the run
observes, verification keeps only what passes, and the model's own likelihood of each
template decides between them and its beam candidates. Pure: no pytest, no torch.
"""

from __future__ import annotations

import ast
import functools
import keyword
import types

from pytest_kdassert.core.memo import run_cache

MAX_TEMPLATES = 4
"""Variables offered per site, most recently assigned first."""

STAND_IN = "0"
"""The literal a template starts with; grounding swaps in the observed value."""


def assigned_names(test_node: ast.AST, before_line: int) -> list[str]:
    """Names the test binds before ``before_line``, most recent binding first, no repeats.

    Covers ``x = ...``, ``x: T = ...``, ``x += ...``, tuple unpacking and ``with ... as x``;
    names bound in nested functions or classes, and ``_``-prefixed names, are left out.
    """
    return list(_assigned_names(test_node, before_line))


@run_cache(maxsize=4096)  # asked twice per site: focal context and templates
def _assigned_names(test_node: ast.AST, before_line: int) -> tuple[str, ...]:
    bindings: list[tuple[int, int, str]] = []
    for node in _walk_own_body(test_node):
        for target in _targets(node):
            for name in ast.walk(target):
                if (isinstance(name, ast.Name) and name.lineno < before_line
                        and not name.id.startswith("_")):
                    bindings.append((name.lineno, name.col_offset, name.id))
    ordered, seen = [], set()
    for _, _, name in sorted(bindings, reverse=True):
        if name not in seen:
            seen.add(name)
            ordered.append(name)
    return tuple(ordered)


@run_cache(maxsize=4096)  # asked for bindings and for calls at each site
def _walk_own_body(test_node: ast.AST) -> tuple[ast.AST, ...]:
    """Every node of the test's body, without descending into nested defs, lambdas or classes."""
    nested_scopes = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
    stack = list(getattr(test_node, "body", []))
    found = []
    while stack:
        node = stack.pop()
        if isinstance(node, nested_scopes):
            continue
        found.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return tuple(found)


def _targets(node: ast.AST) -> list[ast.expr]:
    if isinstance(node, ast.Assign):
        return list(node.targets)
    if isinstance(node, (ast.AnnAssign, ast.AugAssign)) and node.value is not None:
        return [node.target]
    if isinstance(node, ast.withitem) and node.optional_vars is not None:
        return [node.optional_vars]
    if isinstance(node, ast.NamedExpr):
        return [node.target]
    return []


def template_candidates(names: list[str], unittest_style: bool, limit: int = MAX_TEMPLATES) -> list[str]:
    """One groundable assertion per name, in the test's own style."""
    if unittest_style:
        return [f"self.assertEqual({name}, {STAND_IN})" for name in names[:limit]]
    return [f"assert {name} == {STAND_IN}" for name in names[:limit]]


# -- observed state: what the test acted on, not only what it assigned ---------------------
MAX_ATTRIBUTES = 4
"""Public data attributes offered per object."""


def acted_on_names(test_node: ast.AST, before_line: int, bound: frozenset[str]) -> list[str]:
    """Names of the test's own objects that it acted on before the site, most recent first:
    a method call as a statement, its result discarded (``cart.add(...)`` gives ``cart``;
    ``n = cart.count()`` is a query). ``self`` and names the test did not bind (modules,
    classes, functions of the module) are left out."""
    calls: list[tuple[int, int, str]] = []
    for stmt in _walk_own_body(test_node):
        node = stmt.value if isinstance(stmt, ast.Expr) else None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and isinstance(node.func.value, ast.Name) and node.lineno < before_line:
            name = node.func.value.id
            if name in bound and name != "self" and not name.startswith("_"):
                calls.append((node.lineno, node.col_offset, name))
    return list(dict.fromkeys(name for _, _, name in sorted(calls, reverse=True)))


def final_call(test_node: ast.AST, before_line: int) -> str | None:
    """Source of the call statement just before the site when its value is discarded
    (``cart.total()`` as a statement): checking that value is what the test left out."""
    statements = [s for s in getattr(test_node, "body", []) if s.lineno < before_line]
    if not statements:
        return None
    last = statements[-1]
    if isinstance(last, ast.Expr) and isinstance(last.value, (ast.Call, ast.Await)):
        call = last.value.value if isinstance(last.value, ast.Await) else last.value
        if isinstance(call, ast.Call) and not _is_check_call(call):
            return ast.unparse(last.value)
    return None


def _is_check_call(call: ast.Call) -> bool:
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return name.startswith(("assert", "check", "verify", "expect"))


def state_expressions(obj_name: str, obj, limit: int = MAX_ATTRIBUTES,
                      attributes: bool = True) -> list[str]:
    """Expressions over one of the test's objects worth pinning: ``len(x)`` of a sized
    container, and (with ``attributes``) up to ``limit`` public data attributes and
    properties of an instance (instance values of a literal kind, properties and slots of
    its class; no callables, no ``_names``).

    Reads the type's and the instance's dictionaries only, as :func:`inspect.getattr_static`
    does: no property, ``__getattr__``, ``__len__`` or ``__class__`` of the object runs here.
    The values are read when the templates run, in the site's sandbox child.
    """
    kind = type(obj)
    if callable(obj) or issubclass(kind, _NOT_STATE):
        return []
    class_dicts = [_type_dict(k) for k in _type_mro(kind)[:-1]]
    found = [f"len({obj_name})"] if any("__len__" in d for d in class_dicts) else []
    if not attributes:
        return found
    names = [k for k, v in _instance_dict(class_dicts, obj).items()
             if type(k) is str and type(v) in _LITERAL_KINDS]
    names += [k for d in class_dicts for k, v in d.items()
              if issubclass(type(v), _STATE_DESCRIPTORS)]
    public = [n for n in dict.fromkeys(names)
              if n.isidentifier() and not n.startswith("_") and not keyword.iskeyword(n)]
    return found + [f"{obj_name}.{n}" for n in public[:limit]]


_NOT_STATE = (type, types.ModuleType, ast.AST, str, bytes)
"""Kinds whose attributes are not a test's state (``len`` of a string is its literal's)."""
_LITERAL_KINDS = frozenset({bool, int, float, complex, str, bytes, type(None), list, tuple,
                            set, dict})
"""Instance values worth a template: grounding can write them (when short enough)."""
_STATE_DESCRIPTORS = (property, functools.cached_property, types.MemberDescriptorType)
"""Class attributes that read an instance's state: properties and ``__slots__``."""
_type_dict = type.__dict__["__dict__"].__get__
_type_mro = type.__dict__["__mro__"].__get__


def _instance_dict(class_dicts: list, obj) -> dict:
    """The instance's ``__dict__`` when the standard slot holds it (a class that defines its
    own ``__dict__`` descriptor gets nothing: reading it would run that class's code)."""
    for class_dict in class_dicts:
        if "__dict__" in class_dict:
            slot = class_dict["__dict__"]
            if type(slot) is not types.GetSetDescriptorType:
                return {}
            value = slot.__get__(obj)
            return value if type(value) is dict else {}
    return {}


def observed_objects(assigned: list[str], acted: list[str], results: set[str],
                     limit: int = 3) -> list[str]:
    """The test's objects whose state the site observes, best first: what the focal call
    returned (``results``), what the test acted on, then the variable it assigned last."""
    ordered = [n for n in assigned if n in results] + acted + assigned[:1]
    return [n for n in dict.fromkeys(ordered) if n != "self"][:limit]


def expression_templates(expressions: list[str], unittest_style: bool) -> list[str]:
    """A groundable assertion per expression, in the test's own style."""
    return template_candidates(expressions, unittest_style, limit=len(expressions))
