"""A site's templates, and the observed-state ones (issue 17, item 1): checks of what the
test left without a name.

At collection :func:`site_templates` offers the templates the test's source names: its
last-assigned variables, the size of the objects it acted on, the value of the call it
dropped just before the site. Besides those, a test holds objects whose state is worth
pinning: what the focal call returned and what the test acted on (``t.add_row(...)``).
Their expressions (``len(t)``, ``t.colcount``) can only be listed where the objects exist:
:func:`templates_at_site` lists them from the types' and instances' dictionaries
(:func:`~.templates.state_expressions`: no property, ``__getattr__`` or ``__len__`` runs in
the test's process), once per site, at its first instance. Each becomes a template
candidate that runs before the others (:func:`run_first`: it observes the state the test
left, before another candidate's call changes it). From there it is a candidate like any:
screened, run in the site's sandbox child (where a property's code runs, under the time
limit and the audit hook), grounded, checked, observed again by the flakiness guard's
re-run (:func:`rerun_payload` in the parent, :func:`adopt` in the child, which was forked
before the templates existed) and, at the end, scored by the model (:func:`score_discovered`).
"""

from __future__ import annotations

import logging

from pytest_kdassert.focal import is_library
from pytest_kdassert.outcomes import Origin, Outcome
from pytest_kdassert.sites import SiteState
from pytest_kdassert.templates import (
    acted_on_names,
    assigned_names,
    expression_templates,
    final_call,
    observed_objects,
    state_expressions,
    template_candidates,
)
from pytest_kdassert.verify import CandidateCheck

logger = logging.getLogger(__name__)

MAX_STATE_TEMPLATES = 6
"""Observed-state templates per site, over all its objects (each costs a check, a grounding
and a check of the grounded text in the site's child)."""

RERUN_KEY = "observed"
"""Key of the flakiness re-run's payload that carries the templates discovered at the site."""


def site_templates(node, state: SiteState, unittest_style: bool) -> list[str]:
    """Templates over the test's last-assigned variables, then over the state it left
    without a name: the size of objects it acted on, and the value of the call statement just
    before the site (it comes last: calling it again may change what later candidates see).
    Also notes the objects whose state the site observes (:func:`templates_at_site`)."""
    acted = acted_on_names(node, state.before_line, state.test_names)
    assigned = assigned_names(node, state.before_line)
    state.observed_objects = observed_objects(assigned, acted, state.focal_names)
    state.unittest_style = unittest_style
    expressions = [f"len({name})" for name in acted[:MAX_ACTED_ON]]
    state.discarded_call = final_call(node, state.before_line)
    if state.discarded_call is not None:
        expressions.append(state.discarded_call)
    templates = [*template_candidates(assigned, unittest_style),
                 *expression_templates(expressions, unittest_style)]
    if state.discarded_call is not None:
        # What the test called last and dropped is what it left unchecked: among equals its
        # check ranks first, though it runs last.
        state.ranks[templates[-1]] = -1
    return templates


MAX_ACTED_ON = 2
"""Objects the test called methods on whose size is offered as a template."""


def templates_at_site(state: SiteState, frame_locals,
                      project: frozenset[str] = frozenset()) -> list[str]:
    """The site's observed-state templates not yet among its candidates; marks the site as
    discovered (call it once, at the site, with the test's locals). Attributes are read of
    the project's objects only (``project``: its top-level packages, see
    :func:`~.focal.is_library`): a ``tmp_path``'s name or a ``caplog``'s handler is not
    what the test checks."""
    state.discovered = []
    expressions: list[str] = []
    for name in state.observed_objects:
        if name in frame_locals:
            obj = frame_locals[name]
            expressions += state_expressions(
                name, obj, attributes=not is_library(type(obj), project))
    known = {c.text for c in state.candidates}
    fresh = [t for t in expression_templates(expressions, state.unittest_style)
             if t not in known]
    return list(dict.fromkeys(fresh))[:MAX_STATE_TEMPLATES]


def run_first(state: SiteState, indices) -> None:
    """Move the screened candidates ``indices`` to the front of the site's run order."""
    first = {i: state.screened[i] for i in indices if i in state.screened}
    rest = [(i, t) for i, t in state.screened.items() if i not in first]
    state.screened.clear()
    state.screened.update(first)
    state.screened.update(rest)


def rerun_payload(states: list[SiteState], wanted: dict[str, list[int]]) -> dict:
    """``{RERUN_KEY: {pos: {index: text}}}`` for the discovered templates the re-run must
    ground (empty when none): its child does not know them."""
    out = {}
    for pos, state in enumerate(states):
        mine = sorted(set(state.discovered or ()) & set(wanted.get(str(pos), ())))
        if mine:
            out[str(pos)] = {str(i): state.candidates[i].text for i in mine}
    return {RERUN_KEY: out} if out else {}


def adopt(states: list[SiteState], payload: dict) -> None:
    """In the re-run's child: add the templates of :func:`rerun_payload` at the parent's
    indices (padding the list with inert entries), first in the run order."""
    for pos, texts in payload.items():
        state = states[int(pos)]
        added = []
        for index, text in sorted((int(i), t) for i, t in texts.items()):
            if index < len(state.candidates):
                continue  # discovered by an earlier call, before this child was forked
            while len(state.candidates) < index:
                state.candidates.append(CandidateCheck("", None, -1, outcome=Outcome.REDUNDANT))
            state.candidates.append(CandidateCheck(text, None, index, origin=Origin.TEMPLATE))
            state.screened[index] = text
            added.append(index)
        run_first(state, added)


def score_discovered(pairs: list[tuple[SiteState, object]], scorer) -> None:
    """Score with the model the discovered templates that led to a passing check, and give
    their grounded forms the same score. ``pairs``: (site, its request to the suggester)."""
    wanted = []
    for state, request in pairs:
        useful = _useful(state)
        if useful:
            wanted.append((state, request, useful))
    if not wanted:
        return
    try:
        scores = scorer.score([w[1] for w in wanted],
                              [[w[0].candidates[i].text for i in w[2]] for w in wanted])
    except Exception as exc:  # noqa: BLE001 - a custom suggester's bug stops nothing
        logger.info("kdassert: observed-state templates left unscored: %s: %s",
                    type(exc).__name__, exc)
        return
    for (state, _, useful), site_scores in zip(wanted, scores, strict=True):
        by_index = dict(zip(useful, site_scores, strict=True))
        for index, score in by_index.items():
            state.candidates[index].score = score
        for index, sources in state.grounded_sources.items():
            mine = [by_index[s] for s in sources if s in by_index]
            if mine and state.candidates[index].score is None:
                state.candidates[index].score = max(mine)


def _useful(state: SiteState) -> list[int]:
    """The discovered templates that passed, or that grounded to a text that passed."""
    passed = {i for i, c in enumerate(state.candidates) if c.outcome == Outcome.PASSED}
    sources = {s for i in passed for s in state.grounded_sources.get(i, ())}
    return [i for i in state.discovered or () if i in passed or i in sources]
