"""A site's state through a run, and the decision taken at the end: no pytest in here.

A *site* (:class:`~pytest_kdassert.discovery.Site`) is one place that wants an assertion.
:class:`SiteState` collects its candidates and what running them showed; :func:`decide`
picks the suggestion. Both are plain objects with unit tests of their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pytest_kdassert.discovery import APPEND_MODE, Site
from pytest_kdassert.grounding import rank_score
from pytest_kdassert.outcomes import Origin, Outcome, Status
from pytest_kdassert.verify import CandidateCheck

UNSCORED_TEMPLATE = -50.0
"""Rank score of a template the suggester could not score: after every model candidate."""


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
    rerun_failed: bool = False
    """The flakiness re-run of one of the site's tests raised: its grounded values are void."""
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
    if state.failed_nodeids:
        state.status = Status.TEST_FAILED
        return
    wanted = Outcome.PASSED if verified else Outcome.UNVERIFIED
    usable = [state.candidates[i] for i in state.screened
              if state.candidates[i].outcome == wanted]
    if usable:
        state.chosen = min(usable, key=lambda c: rank_key(c, state.focal_names))
        state.status = Status.SUGGESTED
    elif not state.candidates:
        state.status = Status.NO_CANDIDATES
    elif state.screened and all(state.candidates[i].outcome == Outcome.NOT_REACHED
                                for i in state.screened):
        state.status = Status.NOT_RUN
    else:
        state.status = Status.NO_VERIFIED_CANDIDATE


def rank_key(check: CandidateCheck, focal_names: set[str]) -> tuple:
    """Sort key, best first: :func:`~.grounding.rank_score` over the model's score (0 when
    the suggester gave none; templates it could not score rank last), then the model's rank,
    then the model's own text before derived ones."""
    base = check.score
    if base is None:
        base = UNSCORED_TEMPLATE if check.origin in (Origin.TEMPLATE, Origin.OBSERVED) else 0.0
    score = rank_score(check.text, base, focal_names)
    return (-score, check.rank, check.origin != Origin.MODEL)


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
