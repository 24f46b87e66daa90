"""Adapting an exemplar's assertion to the site's test: its names, renamed conservatively.

An exemplar (:mod:`pytest_kdassert.core.exemplars`) checks *its* test's variables. Two names
are carried over, each only when the evidence is unambiguous:

* the **result variable**: the name the exemplar's test assigned last before its placeholder
  becomes the name the site's test assigned last before its placeholder;
* the **focal name**: the exemplar's function under test (last dotted part, as a name or an
  attribute) becomes the site's.

A name is renamed only when the assertion uses it, the site's test never mentions it (a name
both tests share keeps its meaning), and the new name is not in the assertion already. Any
source that does not parse leaves the assertion unchanged: adaptation never makes it worse
than the raw exemplar on that count.
"""

from __future__ import annotations

import ast
import copy
from dataclasses import dataclass

from pytest_kdassert.core.assertions import PLACEHOLDER, assertion_kind
from pytest_kdassert.core.memo import run_cache
from pytest_kdassert.core.source import flatten_statements

_SITE_MARK = "__kdassert_site__"
"""The placeholder becomes a call of this name so the masked test parses."""


def adapt_assertion(assertion: str, exemplar_test: str, site_test: str,
                    exemplar_focal: str | None = None, site_focal: str | None = None) -> str:
    """``assertion`` (from the test ``exemplar_test``) with its names renamed to the site's."""
    module = _parse(assertion)
    exemplar, site = _test_names(exemplar_test), _test_names(site_test)
    if module is None or exemplar is None or site is None:
        return assertion
    names, attributes = _names_in(module), _attributes_in(module)
    result = _rename(exemplar.result, site.result, names, names | attributes, site)
    focal = _rename(_last_part(exemplar_focal), _last_part(site_focal), names | attributes,
                    names | attributes, site)
    if result and focal and (result[1] == focal[1] or result[0] == focal[0]):
        return assertion  # two claims on one name: not unambiguous
    if not (result or focal):
        return assertion
    renamer = _Rename(dict(r for r in (result, focal) if r), dict([focal]) if focal else {})
    return ast.unparse(renamer.visit(module))


def result_variable(masked_test: str) -> str | None:
    """The name a masked test assigned last before its placeholder (None if unclear)."""
    names = _test_names(masked_test)
    return names.result if names is not None else None


def adapted_siblings(masked_test: str) -> list[str]:
    """The test's own assertions above its placeholder, each checking the site's result
    variable instead of its own: ``x = f(1); assert x == 2; y = f(2); <placeholder>`` gives
    ``assert y == 2``. Only an assertion that uses the name assigned last before it, when that
    differs from the site's and the site's is not in it already, is adapted."""
    module = _parse(masked_test.replace(PLACEHOLDER, f"{_SITE_MARK}()"))
    func = next((n for n in module.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)),
                None) if module else None
    site = _last_assigned(func.body) if func else None
    if site is None:
        return []
    out, result = [], None
    for stmt in flatten_statements(func.body):
        if _is_site(stmt):
            break
        if assertion_kind(stmt) is not None and result not in (None, site):
            names = _names_in(stmt)
            if result in names and site not in names | _attributes_in(stmt):
                out.append(ast.unparse(_Rename({result: site}, {}).visit(copy.deepcopy(stmt))))
        result = _single_target(stmt) or result
    return out


def _rename(old: str | None, new: str | None, used: set[str], taken: set[str],
            site: _TestNames) -> tuple[str, str] | None:
    """(old, new) when ``old`` may become ``new`` in an assertion that uses ``used``."""
    if old and new and old != new and old in used and new not in taken and old not in site.mentioned:
        return old, new
    return None


def _parse(source: str) -> ast.Module | None:
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _last_part(dotted: str | None) -> str | None:
    return dotted.rsplit(".", 1)[-1] if dotted else None


def _names_in(node: ast.AST) -> set[str]:
    return {sub.id for sub in ast.walk(node) if isinstance(sub, ast.Name)}


def _attributes_in(node: ast.AST) -> set[str]:
    return {sub.attr for sub in ast.walk(node) if isinstance(sub, ast.Attribute)}


@dataclass(frozen=True)
class _TestNames:
    """What a masked test says about its names: all it mentions, and its result variable."""

    mentioned: frozenset[str]
    result: str | None



@run_cache(maxsize=4096)
def _test_names(masked_test: str) -> _TestNames | None:
    """Parsed once per test text: a site meets k exemplars, and exemplars recur across sites."""
    module = _parse(masked_test.replace(PLACEHOLDER, f"{_SITE_MARK}()"))
    func = next((n for n in module.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)),
                None) if module else None
    if func is None:
        return None
    params = {a.arg for a in ast.walk(func.args) if isinstance(a, ast.arg)}
    mentioned = _names_in(module) | _attributes_in(module) | params
    return _TestNames(frozenset(mentioned - {_SITE_MARK}), _last_assigned(func.body))


def _last_assigned(body: list[ast.stmt]) -> str | None:
    """The single name the statement nearest above the placeholder assigned, if any."""
    result = None
    for stmt in flatten_statements(body):
        if _is_site(stmt):
            return result
        target = _single_target(stmt)
        if target is not None:
            result = target
    return None


def _is_site(stmt: ast.stmt) -> bool:
    return (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)
            and isinstance(stmt.value.func, ast.Name) and stmt.value.func.id == _SITE_MARK)


def _single_target(stmt: ast.stmt) -> str | None:
    """The one plain name a statement binds (``x = ...``, ``x: T = ...``, ``with ... as x``)."""
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
        target = stmt.targets[0]
    elif isinstance(stmt, ast.AnnAssign | ast.AugAssign):
        target = stmt.target
    elif isinstance(stmt, ast.With | ast.AsyncWith) and len(stmt.items) == 1:
        target = stmt.items[0].optional_vars
    else:
        return None
    return target.id if isinstance(target, ast.Name) else None


class _Rename(ast.NodeTransformer):
    """Renames names (``names``) and attribute names (``attributes``, the focal only)."""

    def __init__(self, names: dict[str, str], attributes: dict[str, str]):
        self.names, self.attributes = names, attributes

    def visit_Name(self, node: ast.Name) -> ast.Name:  # noqa: N802 - ast API
        if node.id in self.names:
            return ast.copy_location(ast.Name(self.names[node.id], node.ctx), node)
        return node

    def visit_Attribute(self, node: ast.Attribute) -> ast.Attribute:  # noqa: N802 - ast API
        self.generic_visit(node)
        if node.attr in self.attributes:
            node.attr = self.attributes[node.attr]
        return node
