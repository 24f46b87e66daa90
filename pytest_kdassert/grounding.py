"""Grounded assertions: the model picks *what* to check, the test run supplies the value.

Small models rarely guess a literal right (the exact string or list a call returns), but
they are good at choosing the expression and the comparison. For a candidate such as
``assert total(cart) == 12`` we take the observed side (``total(cart)``), evaluate it in the
test's own context, and offer ``assert total(cart) == 15.5`` when the value has a faithful
literal form. This module is pure: evaluation is a callable handed in by the verifier.

A *faithful* literal is text that evaluates back to an equal value of the same type
(``ast.literal_eval(text) == value``; built so from builtin values). Floats go through ``pytest.approx``; sets and dicts
come out sorted when their items sort, so the text is stable from run to run.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from pytest_kdassert.core.assertions import dotted_name
from pytest_kdassert.core.memo import run_cache
from pytest_kdassert.core.source import all_nodes

MAX_LITERAL_CHARS = 240
"""Longer values make unreadable assertions; they are not grounded."""

_UNSTABLE_CALLS = frozenset({
    "id", "hash", "time", "time_ns", "monotonic", "perf_counter", "process_time", "now",
    "utcnow", "today", "random", "randint", "choice", "uniform", "uuid1", "uuid4", "getpid",
    "urandom", "token_hex", "token_bytes",
})
"""Calls whose results differ from run to run: expressions containing them are never grounded."""

_ADDRESS_RE = re.compile(r"0x[0-9a-fA-F]{6,}")
_TIMESTAMP_RE = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")

_UNITTEST_TWO_ARG = frozenset({
    "assertEqual", "assertEquals", "assertNotEqual", "assertIs", "assertIsNot", "assertIn",
    "assertNotIn", "assertAlmostEqual", "assertCountEqual", "assertListEqual", "assertDictEqual",
    "assertTupleEqual", "assertSetEqual", "assertSequenceEqual", "assertIsInstance",
    "assertGreater", "assertGreaterEqual", "assertLess", "assertLessEqual",
})
_UNITTEST_ONE_ARG = frozenset({"assertTrue", "assertFalse", "assertIsNone", "assertIsNotNone"})
_WEAK_UNITTEST = frozenset({"assertTrue", "assertIsNotNone", "assertIsInstance"})


@dataclass(frozen=True)
class GroundingSite:
    """The part of a candidate whose value the test run can supply."""

    expr: str
    """Source of the observed expression, e.g. ``len(items)``."""
    style: str
    """``assert`` for ``assert <expr> == <value>``, ``unittest`` for ``self.assertEqual(...)``."""


@dataclass(frozen=True)
class Grounded:
    """A candidate rewritten with the observed value."""

    text: str
    """The grounded assertion, e.g. ``assert len(items) == 3``."""
    expr: str
    value_literal: str


@run_cache(maxsize=1 << 16)  # asked for every candidate at every run of a site
def grounding_site(candidate: str) -> GroundingSite | None:
    """Find the observed expression in a candidate, or None when it has no groundable form.

    Groundable: a comparison with a literal on one side (``==``, ``!=``, ``is``, ``in``, the
    orderings, ``pytest.approx``), ``assert isinstance(<expr>, T)``, and the unittest forms
    (``self.assertEqual(<expr>, <literal>)``, ``self.assertIsNotNone(<expr>)``, ...).
    """
    try:
        module = ast.parse(candidate.strip())
    except (SyntaxError, ValueError, RecursionError):
        return None
    if len(module.body) != 1:
        return None
    stmt = module.body[0]
    if isinstance(stmt, ast.Assert):
        expr = _observed_in_assert(stmt.test)
        return GroundingSite(ast.unparse(expr), "assert") if expr is not None else None
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
        expr = _observed_in_unittest(stmt.value)
        return GroundingSite(ast.unparse(expr), "unittest") if expr is not None else None
    return None


def _observed_in_assert(test: ast.expr) -> ast.expr | None:
    if isinstance(test, ast.Compare) and len(test.ops) == 1:
        left, right = test.left, test.comparators[0]
        if isinstance(test.ops[0], (ast.In, ast.NotIn)):
            return right if _is_literal(left) and not _is_literal(right) else None
        if _is_literal(right) and not _is_literal(left):
            return left
        if _is_literal(left) and not _is_literal(right):
            return right
        return None
    if (isinstance(test, ast.Call) and isinstance(test.func, ast.Name)
            and test.func.id == "isinstance" and len(test.args) == 2):
        return test.args[0]
    return None


def _observed_in_unittest(call: ast.Call) -> ast.expr | None:
    func = call.func
    if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
            and func.value.id == "self"):
        return None
    args = call.args
    if func.attr in _UNITTEST_ONE_ARG and len(args) >= 1:
        return args[0]
    if func.attr in _UNITTEST_TWO_ARG and len(args) >= 2:
        first, second = args[0], args[1]
        if func.attr in ("assertIn", "assertNotIn"):
            return second if not _is_literal(second) else None
        if func.attr == "assertIsInstance":
            return first
        if _is_literal(second) and not _is_literal(first):
            return first
        if _is_literal(first) and not _is_literal(second):
            return second
    return None


def _is_literal(node: ast.expr) -> bool:
    """A constant, a container of constants, or ``pytest.approx(<literal>)``."""
    if (isinstance(node, ast.Call) and ast.unparse(node.func) in ("pytest.approx", "approx")
            and len(node.args) == 1):
        return _is_literal(node.args[0])
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError):
        return False
    return True


@run_cache(maxsize=1 << 16)
def is_unstable_expression(expr: str) -> bool:
    """True when ``expr`` calls something plainly non-deterministic (ids, clocks, randomness)."""
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError:
        return True
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in _UNSTABLE_CALLS:
                return True
    return False


def faithful_literal(value) -> str | None:
    """Source text that evaluates back to ``value`` (floats via ``pytest.approx``), or None."""
    if isinstance(value, float) or _is_float_sequence(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        exact = _exact_literal(value)
        return f"pytest.approx({exact})" if exact is not None else None
    return _exact_literal(value)


def _is_float_sequence(value) -> bool:
    return (type(value) in (list, tuple) and bool(value)
            and all(type(v) in (int, float) for v in value)
            and any(type(v) is float for v in value)
            and all(math.isfinite(v) for v in value))


def _exact_literal(value) -> str | None:
    try:
        text = _literal_text(value)
    except RecursionError:  # a container that holds itself
        return None
    if text is None or len(text) > MAX_LITERAL_CHARS:
        return None
    if _ADDRESS_RE.search(text) or _TIMESTAMP_RE.search(text):
        return None
    return text


def _literal_text(value) -> str | None:
    """Source text that evaluates to an equal value of the same type, or None.

    Exact by construction, so nothing needs evaluating back: the repr of the builtin
    scalars (a finite float's repr is the shortest text that reads back as the same
    float; ``nan`` and ``inf`` are no literals), and containers of such values, with set
    and dict items sorted when they sort (equality ignores their order).
    """
    kind = type(value)
    if kind in (float, complex) and not all(map(math.isfinite, _parts(value))):
        return None
    if kind in (bool, int, float, complex, str, bytes) or value is None:
        return repr(value)
    if kind in (list, tuple):
        items = [_literal_text(v) for v in value]
        if any(i is None for i in items):
            return None
        if kind is tuple:
            return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
        return "[" + ", ".join(items) + "]"
    if kind is set:
        if not value:
            return "set()"
        items = [_literal_text(v) for v in _stable_order(value)]
        return None if None in items else "{" + ", ".join(items) + "}"
    if kind is dict:
        keys = _stable_order(value.keys())
        pairs = [(_literal_text(k), _literal_text(value[k])) for k in keys]
        if any(k is None or v is None for k, v in pairs):
            return None
        return "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"
    return None


def _parts(number: float | complex) -> tuple[float, ...]:
    return (number.real, number.imag) if isinstance(number, complex) else (number,)


def _stable_order(items) -> list:
    items = list(items)
    try:
        return sorted(items)
    except TypeError:
        return sorted(items, key=repr)


def ground(candidate: str, evaluate: Callable[[str], object],
           why: list[str] | None = None) -> Grounded | None:
    """Rewrite ``candidate`` with the value ``evaluate(expr)`` observed in the test's context.

    ``evaluate`` raises when the expression fails; then nothing is grounded. Returns None
    for candidates without a groundable form, unstable expressions and unfaithful values;
    for a value that has no faithful literal, ``why`` (when given) gets the reason.
    """
    site = grounding_site(candidate)
    if site is None or is_unstable_expression(site.expr):
        return None
    try:
        value = evaluate(site.expr)
    except Exception:  # noqa: BLE001 - any failure of model text means "cannot ground"
        return None
    literal = faithful_literal(value)
    if literal is None:
        if why is not None:
            why.append(no_literal_reason(value))
        return None
    return Grounded(render(site, value, literal), site.expr, literal)


def no_literal_reason(value) -> str:
    """Why a value can't be written into a test, in words for the ``-v`` listing."""
    text = _literal_text(value)
    if text is None:
        return f"a {type(value).__name__} has no literal form"
    if len(text) > MAX_LITERAL_CHARS:
        return f"its literal is {len(text)} characters (over {MAX_LITERAL_CHARS})"
    if _ADDRESS_RE.search(text) or _TIMESTAMP_RE.search(text):
        return "it holds a memory address or a timestamp"
    return f"{text[:40]} does not read back as the same {type(value).__name__}"


def render(site: GroundingSite, value, literal: str) -> str:
    """The grounded statement in the candidate's own style."""
    if site.style == "unittest":
        if value is None:
            return f"self.assertIsNone({site.expr})"
        if isinstance(value, bool):
            return f"self.assertIs({site.expr}, {literal})"
        if literal.startswith("pytest.approx(") and isinstance(value, float):
            return f"self.assertAlmostEqual({site.expr}, {literal[len('pytest.approx('):-1]})"
        return f"self.assertEqual({site.expr}, {literal})"
    operand = comparison_operand(site.expr)
    if value is None or isinstance(value, bool):
        return f"assert {operand} is {literal}"
    return f"assert {operand} == {literal}"


_LOOSER_THAN_COMPARISON = (ast.BoolOp, ast.IfExp, ast.Lambda, ast.NamedExpr, ast.Compare)


@run_cache(maxsize=1 << 16)
def comparison_operand(expr: str) -> str:
    """``expr`` as the left side of ``==``/``is``: in parentheses when it binds looser than a
    comparison (``x or y``, ``not x``, ``a < b``, ``p if q else r``); ``assert x or y == 5``
    would test something else."""
    try:
        node = ast.parse(expr, mode="eval").body
    except (SyntaxError, ValueError, RecursionError):
        return f"({expr})"
    loose = isinstance(node, _LOOSER_THAN_COMPARISON) or (
        isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not))
    return f"({expr})" if loose else expr


def needs_pytest_import(text: str) -> bool:
    """Whether a grounded assertion uses ``pytest.approx`` (the test module must import pytest)."""
    return "pytest.approx(" in text


# --- ranking ------------------------------------------------------------------------------

FOCAL_BONUS = 1.0
"""Added to the model's mean log-probability when the assertion checks the focal call's result."""
INPUT_PENALTY = 0.5
"""Subtracted when the assertion checks only what went into the focal call, not what came out."""
WEAK_PENALTY = 1.0
"""Subtracted for assertions that say little: ``is not None``, ``isinstance``, bare truthiness."""


def is_weak(text: str) -> bool:
    """``is not None``, ``isinstance``, ``assertTrue(x)``-style checks that pin down little."""
    try:
        stmt = ast.parse(text.strip()).body[0]
    except (SyntaxError, IndexError, ValueError):
        return False
    if isinstance(stmt, ast.Assert):
        test = stmt.test
        if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.IsNot):
            return isinstance(test.comparators[0], ast.Constant) and test.comparators[0].value is None
        if isinstance(test, ast.Call) and isinstance(test.func, ast.Name) and test.func.id == "isinstance":
            return True
        return isinstance(test, (ast.Name, ast.Attribute))
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
        func = stmt.value.func
        return isinstance(func, ast.Attribute) and func.attr in _WEAK_UNITTEST
    return False


def mentions_any(text: str, names: set[str]) -> bool:
    """Whether the assertion uses one of ``names`` (focal function or variables assigned from it)."""
    try:
        tree = ast.parse(text.strip())
    except (SyntaxError, ValueError):
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in names:
            return True
        if isinstance(node, ast.Attribute) and node.attr in names:
            return True
    return False


def rank_score(text: str, model_score: float, focal_names: set[str],
               input_names: frozenset[str] = frozenset()) -> float:
    """Model score plus the documented heuristics; higher is better."""
    score = model_score
    if focal_names and mentions_any(text, focal_names):
        score += FOCAL_BONUS
    elif input_names and mentions_any(text, set(input_names)):
        score -= INPUT_PENALTY
    if is_weak(text):
        score -= WEAK_PENALTY
    return score


def focal_names(test_node: ast.AST, focal_name: str | None, before_line: int = 0) -> set[str]:
    """The focal function's name and the names assigned from calls to it before the site.

    ``result = cart.total()`` with focal ``cart.total`` gives ``{"total", "result"}``.
    """
    if not focal_name:
        return set()
    names = {focal_name.rsplit(".", 1)[-1]}
    for node in all_nodes(test_node):
        if not isinstance(node, (ast.Assign, ast.AnnAssign)) or not isinstance(node.value, ast.Call):
            continue
        if before_line and node.lineno >= before_line:
            continue
        if dotted_name(node.value.func) != focal_name:
            continue
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for target in targets:
            names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
    return names


def focal_inputs(test_node: ast.AST, focal_name: str | None, before_line: int = 0) -> set[str]:
    """Names passed to the focal call before the site: its inputs, not its result.

    ``out = render(data)`` with focal ``render`` gives ``{"data"}``.
    """
    if not focal_name:
        return set()
    names = set()
    for node in all_nodes(test_node):
        if not isinstance(node, ast.Call) or dotted_name(node.func) != focal_name:
            continue
        if before_line and node.lineno >= before_line:
            continue
        for arg in [*node.args, *(k.value for k in node.keywords)]:
            if isinstance(arg, ast.Name):
                names.add(arg.id)
    return names
