"""A site's state through a run, and the decision taken at the end: no pytest in here.

A *site* (:class:`~pytest_kdassert.discovery.Site`) is one place that wants an assertion.
:class:`SiteState` collects its candidates and what running them showed; :func:`decide`
picks the suggestion. Both are plain objects with unit tests of their own.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from pytest_kdassert.core.assertions import dotted_name
from pytest_kdassert.core.memo import run_cache
from pytest_kdassert.discovery import APPEND_MODE, Site
from pytest_kdassert.grounding import rank_score
from pytest_kdassert.outcomes import Origin, Outcome, Status
from pytest_kdassert.verify import CandidateCheck

UNSCORED_TEMPLATE = -50.0
"""Rank score of a template the suggester could not score: after every model candidate."""

EXEMPLAR_BONUS = 8.0
"""Added to an in-project candidate's rank score per unit of its share of the in-project
ranker's softmax over the site (:mod:`.core.ranking`, 0..1): the project's own way of
checking a similar test beats the model's guess unless the model is sure. On held-out
projects the most similar test's assertion is exactly right ~22% of the time, the student's
top beam under 1% (README, "In-project exemplars"). Fitted on a validation project (lark, 75
tests of ``grounding_onoff.py --data data/corpus/valid.jsonl``), when the share was still
the Jaccard similarity: 0.5 -> 13.3% exact, 2 -> 14.7%, 8 -> 18.7%, 16 -> 17.3%, 32 ->
18.7%; the smallest best kept. With the ranker's share, 8 gives 18.1% there (16.7% with
similarity)."""

FROM_EXEMPLAR = (Origin.EXEMPLAR, Origin.RECALLED)

EMPTY_ATTRIBUTE_PENALTY = 1.0
"""Subtracted from the rank score of an observed attribute at an empty value (``assert
t.title == ''``): most often the default its constructor set, not what the test did."""
_EMPTY_LITERALS = frozenset({"''", "b''", "[]", "()", "{}", "set()"})


@dataclass
class SiteState:
    """A site, its candidates, and what the run told us about them."""

    site: Site
    focal_name: str | None = None
    focal_source: str = ""
    candidates: list[CandidateCheck] = field(default_factory=list)
    screened: dict[int, str] = field(default_factory=dict)
    """Candidate index -> normalised text, for candidates that are worth running."""
    failed_nodeids: list[str] = field(default_factory=list)
    focal_names: set[str] = field(default_factory=set)
    """Focal function name and names assigned from its call: ranking's focal bonus."""
    templates: list[str] = field(default_factory=list)
    """Template candidates over the test's last-assigned variables (see :mod:`.templates`)."""
    ground_seen: dict[int, set] = field(default_factory=dict)
    """Model candidate index -> every grounded text (or None) its evaluations produced."""
    grounded_sources: dict[int, set[int]] = field(default_factory=dict)
    """Grounded candidate index -> the model candidates that grounded to it."""
    input_names: frozenset[str] = frozenset()
    """Names passed into the focal call: checking only them says little (ranking penalty)."""
    existing: frozenset[str] = frozenset()
    """The assertions the test already makes (normalised): never suggested again."""
    literal_bindings: dict[str, str] = field(default_factory=dict)
    """Name -> literal source, for names whose last binding before the site is a literal."""
    test_names: frozenset[str] = frozenset()
    """The test's parameters and the names it binds before the site."""
    ranks: dict[str, int] = field(default_factory=dict)
    """Rank of a proposed text when it is not its place in the list (see
    :func:`~.observed.site_templates`)."""
    last_binding: tuple[str, str] | None = None
    """(call source, name) when the statement just before the site is ``name = call``."""
    discarded_call: str | None = None
    """The call statement just before the site whose value the test dropped (normalised)."""
    observed_objects: list[str] = field(default_factory=list)
    """The test's objects whose state is observed at the site (:mod:`.observed`)."""
    unittest_style: bool = False
    """The test is a ``unittest.TestCase`` method: templates use ``self.assertEqual``."""
    discovered: list[int] | None = None
    """Indices of the templates discovered at the site's first instance (None: not yet)."""
    exemplars: list = field(default_factory=list)
    """The project's most similar other assertions (:class:`~.core.exemplars.Exemplar`)."""
    rerun_failed: bool = False
    """The flakiness re-run of one of the site's tests raised: its grounded values are void."""
    rerun: str | None = None
    """What the flakiness guard did at the site's last call: ``done`` (a re-run compared the
    values), ``failed`` (it raised), ``no verdict`` (refused, hung or crashed), ``skipped:
    repeatable`` (the call must repeat its values, :mod:`.repeatable`); None: nothing to check."""
    chosen: CandidateCheck | None = None
    status: Status = Status.PENDING

    @property
    def before_line(self) -> int:
        """First line after the code the site's assertion sees (its placeholder, or the end)."""
        return self.site.line + (1 if self.site.mode == APPEND_MODE else 0)

    def ran_mid_test(self) -> bool:
        """Candidates were evaluated at a placeholder, so the rest of the test ran after them.

        Candidates run against the test's own objects; one with a side effect (``next(it)``,
        ``items.pop()``) can make the rest of the test fail. The summary says so.
        """
        return self.site.mode != APPEND_MODE and any(c.runs for c in self.candidates)


def decide(state: SiteState, verified: bool = True) -> None:
    """Pick the site's suggestion: the best-ranked candidate that passed everywhere.

    Ranking is :func:`rank_key`. With ``verified`` off, unverified candidates are usable.
    Sets ``state.chosen`` and ``state.status``.
    """
    state.chosen = None
    drop_unstable(state)
    drop_unset_attributes(state)
    if state.failed_nodeids:
        state.status = Status.TEST_FAILED
        return
    wanted = Outcome.PASSED if verified else Outcome.UNVERIFIED
    usable = [state.candidates[i] for i in state.screened
              if state.candidates[i].outcome == wanted]
    usable = [c for c in usable if not _superseded(state, c)] or usable
    weaker = _weaker_sizes(usable)
    usable = [c for c in usable if id(c) not in weaker]
    if usable:
        state.chosen = min(usable, key=lambda c: rank_key(c, state.focal_names,
                                                           state.input_names))
        state.status = Status.SUGGESTED
    elif not state.candidates:
        state.status = Status.NO_CANDIDATES
    elif state.screened and all(state.candidates[i].outcome == Outcome.NOT_REACHED
                                for i in state.screened):
        state.status = Status.NOT_RUN
    else:
        state.status = Status.NO_VERIFIED_CANDIDATE


def _superseded(state: SiteState, check: CandidateCheck) -> bool:
    """A passing text whose observed value reads differently: its grounded form says it better.

    ``assert flag == 0`` passes for ``False``; grounding wrote ``assert flag is False``.
    """
    index = next(i for i, c in enumerate(state.candidates) if c is check)
    seen = state.ground_seen.get(index, set())
    return any(text is not None and text != check.text and any(
        c.text == text and c.outcome == Outcome.PASSED for c in state.candidates)
        for text in seen)


def why_redundant(text: str, existing: frozenset[str],
                  literal_bindings: dict[str, str], discarded_call: str | None = None) -> str | None:
    """Why an assertion would check nothing new here, or None.

    It is already in the test, or it compares a name with the very literal the test bound it
    to (``tup = ('a', 1)`` then ``assert tup == ('a', 1)``), or it says that the call whose
    value the test discarded (``discarded_call``, see :func:`~.templates.final_call`)
    returns None: a procedure, called for its effect.
    """
    if text in existing:
        return "the test already asserts this"
    if discarded_call is not None and text in (f"assert {discarded_call} is None",
                                               f"self.assertIsNone({discarded_call})"):
        return f"{discarded_call} returns None: it is called for its effect"
    pair = _name_and_literal(text)
    if pair is not None and literal_bindings.get(pair[0]) == pair[1]:
        return f"restates the literal the test assigned to {pair[0]}"
    return None


@run_cache(maxsize=1 << 16)  # asked of every candidate at every site
def _name_and_literal(text: str) -> tuple[str, str] | None:
    """``(name, literal source)`` of ``assert name == lit`` / ``self.assertEqual(name, lit)``
    (a dotted name too: ``t.title``)."""
    nodes = _pinned_nodes(text, unittest=("assertEqual", "assertIs"))
    if nodes is None or dotted_name(nodes[0]) is None:
        return None
    return dotted_name(nodes[0]), ast.unparse(nodes[1])


@run_cache(maxsize=1 << 16)
def pinned_value(text: str) -> tuple[str, str] | None:
    """``(expression, literal)`` of a check that pins an expression to a literal:
    ``assert E == lit`` or ``is`` (either side), ``self.assertEqual(E, lit)``,
    ``assertIs``, ``assertIsNone(E)``."""
    nodes = _pinned_nodes(text, unittest=("assertEqual", "assertIs", "assertIsNone"))
    return None if nodes is None else (ast.unparse(nodes[0]), ast.unparse(nodes[1]))


def _pinned_nodes(text: str, unittest: tuple[str, ...]) -> tuple[ast.expr, ast.expr] | None:
    try:
        stmt = ast.parse(text).body[0]
    except (SyntaxError, IndexError, ValueError, RecursionError):
        return None
    if isinstance(stmt, ast.Assert) and isinstance(stmt.test, ast.Compare) \
            and len(stmt.test.ops) == 1 and isinstance(stmt.test.ops[0], (ast.Eq, ast.Is)):
        sides = [stmt.test.left, stmt.test.comparators[0]]
    elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call) \
            and isinstance(stmt.value.func, ast.Attribute) and stmt.value.func.attr in unittest:
        sides = list(stmt.value.args)
        if stmt.value.func.attr == "assertIsNone" and len(sides) == 1:
            sides.append(ast.Constant(None))
    else:
        return None
    if len(sides) != 2:
        return None
    for expr, literal in (sides, sides[::-1]):
        if _is_plain_literal(literal) and not _is_plain_literal(expr):
            return expr, literal
    return None


def _weaker_sizes(usable: list[CandidateCheck]) -> set[int]:
    """Ids of passing ``assert len(x) == 2`` checks where ``assert x == [1, 2]`` passes too:
    the value says all its size does, and more."""
    pinned = [pinned_value(c.text) for c in usable]
    exprs = {p[0] for p in pinned if p is not None}
    return {id(c) for c, p in zip(usable, pinned, strict=True)
            if p is not None and p[0].startswith("len(") and p[0][4:-1] in exprs}


def reads_test_names(text: str, test_names: frozenset[str]) -> bool:
    """Whether an assertion reads a name the test bound (``self`` as the receiver of
    ``self.assertEqual`` does not count): one that reads none checks nothing the test did."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError):
        return False
    receivers = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Attribute)
                 and node.attr.startswith("assert")}
    return any(isinstance(node, ast.Name) and id(node) not in receivers
               and node.id in test_names for node in ast.walk(tree))


def names_bound_by_test(test_node: ast.FunctionDef | ast.AsyncFunctionDef,
                     assigned: list[str]) -> frozenset[str]:
    """The test's parameters (``self``, fixtures, parameters) and ``assigned`` names."""
    args = test_node.args
    params = [*args.posonlyargs, *args.args, *args.kwonlyargs,
              *(a for a in (args.vararg, args.kwarg) if a is not None)]
    return frozenset([*(a.arg for a in params), *assigned])


def last_binding(statements: list[ast.stmt], before_line: int) -> tuple[str, str] | None:
    """``(call source, name)`` when the last statement before the site is ``name = <call>``."""
    before = [s for s in statements if s.lineno < before_line]
    if not before:
        return None
    last = before[-1]
    if isinstance(last, ast.Assign) and len(last.targets) == 1 \
            and isinstance(last.targets[0], ast.Name) and isinstance(last.value, ast.Call):
        return ast.unparse(last.value), last.targets[0].id
    return None


def use_bound_name(text: str, call: str, name: str) -> str:
    """``text`` with ``call`` replaced by the name the test just bound it to: another test's
    ``assert cart.count() == 1`` reads ``assert n == 1`` after ``n = cart.count()`` (calling
    it again would check the same value less plainly)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError):
        return text
    original = ast.unparse(tree)

    class _Swap(ast.NodeTransformer):
        def visit_Call(self, node):
            if ast.unparse(node) == call:
                return ast.copy_location(ast.Name(id=name, ctx=ast.Load()), node)
            return self.generic_visit(node)

    new = ast.unparse(_Swap().visit(tree))
    return text if new == original else new


def literal_bindings(statements: list[ast.stmt], before_line: int) -> dict[str, str]:
    """Names and attributes (``t.title``) whose last binding before ``before_line`` is a
    plain literal, with its source. Rebinding a name forgets its attributes' literals."""
    bound: dict[str, str | None] = {}
    for stmt in statements:
        if stmt.lineno >= before_line:
            break
        targets = stmt.targets if isinstance(stmt, ast.Assign) else (
            [stmt.target] if isinstance(stmt, (ast.AnnAssign, ast.AugAssign)) else [])
        for target in targets:
            for node in ast.walk(target):
                if isinstance(node, ast.Name):
                    bound[node.id] = None
                    if isinstance(node.ctx, ast.Store):
                        bound = {k: v for k, v in bound.items()
                                 if not k.startswith(node.id + ".")}
            if dotted_name(target) is not None:
                bound[dotted_name(target)] = None
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 \
                and dotted_name(stmt.targets[0]) is not None and _is_plain_literal(stmt.value):
            bound[dotted_name(stmt.targets[0])] = ast.unparse(stmt.value)
    return {name: lit for name, lit in bound.items() if lit is not None}


def _is_plain_literal(node: ast.expr) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError):
        return False
    return True


def rank_key(check: CandidateCheck, focal_names: set[str],
             input_names: frozenset[str] = frozenset()) -> tuple:
    """Sort key, best first: :func:`~.grounding.rank_score` over the model's score (0 when
    the suggester gave none; templates it could not score rank last), then the model's rank,
    then the model's own text before derived ones."""
    base = check.score
    if base is None:
        base = UNSCORED_TEMPLATE if check.origin in (Origin.TEMPLATE, Origin.OBSERVED) else 0.0
    if check.origin in FROM_EXEMPLAR and check.similarity is not None:
        base += EXEMPLAR_BONUS * check.similarity
    score = rank_score(check.text, base, focal_names, input_names)
    if observed_attribute_value(check) in _EMPTY_LITERALS:
        score -= EMPTY_ATTRIBUTE_PENALTY
    return (-score, check.rank, check.origin != Origin.MODEL)


def observed_attribute_value(check: CandidateCheck) -> str | None:
    """The literal an observed attribute template was grounded to (``'x'`` for ``assert
    t.title == 'x'``), or None for any other candidate."""
    if check.origin != Origin.OBSERVED:
        return None
    nodes = _pinned_nodes(check.text, unittest=("assertEqual", "assertIs", "assertIsNone"))
    if nodes is None or not isinstance(nodes[0], ast.Attribute):
        return None
    return ast.unparse(nodes[1])


def drop_unset_attributes(state: SiteState) -> None:
    """An observed attribute that is None (``assert field.data_key is None``) is most often
    an option the test never set: it is not suggested."""
    for check in state.candidates:
        if check.outcome == Outcome.PASSED and observed_attribute_value(check) == "None":
            check.outcome = Outcome.REDUNDANT
            check.detail = "an attribute left None: most often an option the test never set"


def drop_unstable(state: SiteState) -> None:
    """Mark grounded candidates whose value was not the same in every run of the site."""
    for index, sources in state.grounded_sources.items():
        check = state.candidates[index]
        if check.outcome != Outcome.PASSED:
            continue
        if state.rerun_failed:
            check.outcome, check.detail = Outcome.UNSTABLE, "the test failed when run again"
        elif any(state.ground_seen.get(s, set()) != {check.text} for s in sources):
            check.outcome, check.detail = Outcome.UNSTABLE, "the value differs between runs"
