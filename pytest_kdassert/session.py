"""The plugin object registered by ``--suggest-asserts``: it owns all per-session state.

Flow: after collection, find the sites and generate candidates for all of them in one
batched call; during each test call, verify the candidates in the test's frame; at the end,
pick the best verified candidate per site and hand the change set to :mod:`.summary`.
"""

from __future__ import annotations

import logging
import time
import unittest
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pytest_kdassert.changes import ChangeSet
from pytest_kdassert.config import SuggestConfig
from pytest_kdassert.core.errors import KdassertError
from pytest_kdassert.discovery import APPEND_MODE, Site, code_of_test, find_sites, function_info
from pytest_kdassert.focal import resolve_focal
from pytest_kdassert.grounding import focal_names, rank_score
from pytest_kdassert.suggester import (
    ModelSuggester,
    RawCandidate,
    SuggestRequest,
    as_raw_candidates,
)
from pytest_kdassert.templates import assigned_names, template_candidates
from pytest_kdassert.verify import (
    GROUNDED,
    MODEL,
    NOT_REACHED,
    OBSERVED,
    PASSED,
    TEMPLATE,
    UNSTABLE,
    UNVERIFIED,
    CandidateCheck,
    FrameTrap,
    Verifier,
)

logger = logging.getLogger(__name__)

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
    status: str = "pending"


class KdassertSession:
    """pytest hooks of an active ``--suggest-asserts`` run."""

    def __init__(self, config: pytest.Config, settings: SuggestConfig):
        self.config = config
        self.settings = settings
        self.changeset = ChangeSet(Path(str(config.rootpath)))
        self.states: dict[tuple, SiteState] = {}
        self.by_item: dict[str, tuple[object, list[SiteState]]] = {}
        self.verifier = Verifier()
        self.suggest_seconds: float | None = None
        """Wall time of candidate generation (model load included)."""
        self.messages: list[str] = []
        """One-line notices for the terminal summary (model missing, skipped files, ...)."""
        self._grounded_now = False
        """Set when the current test call produced a grounded value (it gets a re-run)."""
        self._observing = False
        """True during the flakiness re-run: values are collected, nothing is checked."""

    # -- collection ---------------------------------------------------------------------
    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, session, config, items) -> None:
        for item in items:
            if isinstance(item, pytest.Function):
                self._discover(item)

    def _discover(self, item: pytest.Function) -> None:
        code = code_of_test(item.obj)
        if code is None or Path(code.co_filename) != Path(item.path):
            return
        source = self.changeset.baseline(Path(item.path))
        info = function_info(source, code) if source is not None else None
        if info is None:
            return
        states = []
        for site in find_sites(info, Path(item.path), self.settings.all_tests):
            state = self.states.get(site.key)
            if state is None:
                state = self.states[site.key] = SiteState(site)
                self._find_focal(state, info.node, item)
                if self.settings.ground and self.settings.templates:
                    state.templates = template_candidates(
                        assigned_names(info.node, _before_line(site)), _is_unittest(item))
            state.site.nodeids.append(item.nodeid)
            states.append(state)
        if states:
            self.by_item[item.nodeid] = (code, states)

    def _find_focal(self, state: SiteState, node, item) -> None:
        func = getattr(item.obj, "__func__", item.obj)
        namespace = getattr(func, "__globals__", None) or vars(item.module)
        before = _before_line(state.site)
        focal = resolve_focal(node, before, namespace)
        if focal is not None:
            state.focal_name, state.focal_source = focal.name, focal.source
            state.focal_names = focal_names(node, focal.name, before)

    def pytest_collection_finish(self, session) -> None:
        if not self.states:
            return
        suggester = self._suggester()
        if suggester is None:
            return
        states = list(self.states.values())
        requests = [SuggestRequest(s.site.nodeids[0], s.site.qualname, s.focal_name,
                                   s.focal_source, s.site.masked_source) for s in states]
        start = time.perf_counter()
        try:
            results = suggester.suggest(requests)
        except KdassertError as exc:
            self._notice(f"kdassert: no suggestions: {exc}")
            return
        for state, raw in zip(states, results, strict=False):
            self._screen(state, as_raw_candidates(raw))
        self._add_templates(states, requests, suggester)
        self.suggest_seconds = time.perf_counter() - start

    def _suggester(self):
        stub = self.config.hook.pytest_kdassert_suggester(config=self.config)
        if stub is not None:
            return stub
        try:
            return ModelSuggester(self.settings.model, self.settings.num_beams,
                                  self.settings.batch_size, self.settings.threads)
        except KdassertError as exc:
            self._notice(f"kdassert: no suggestions: {exc}")
            return None

    def _add_templates(self, states, requests, suggester) -> None:
        """Append each site's templates the model did not already propose, scored by the model."""
        wanted = []
        for state, request in zip(states, requests, strict=True):
            texts = {c.text for c in state.candidates}
            fresh = [t for t in state.templates if t not in texts]
            if fresh:
                wanted.append((state, request, fresh))
        if not wanted:
            return
        scores = None
        if hasattr(suggester, "score"):
            try:
                scores = suggester.score([w[1] for w in wanted], [w[2] for w in wanted])
            except KdassertError as exc:
                logger.info("kdassert: templates left unscored: %s", exc)
        for i, (state, _, fresh) in enumerate(wanted):
            site_scores = scores[i] if scores is not None else [None] * len(fresh)
            start = len(state.candidates)
            self._screen(state, [RawCandidate(text, score, start + j) for j, (text, score)
                                 in enumerate(zip(fresh, site_scores, strict=True))],
                         origin=TEMPLATE)

    def _screen(self, state: SiteState, raw, origin: str = MODEL) -> None:
        for candidate in raw:
            index = len(state.candidates)
            check = CandidateCheck(candidate.text, candidate.score, candidate.rank, origin=origin)
            normalized, problem = self.verifier.screen(candidate.text)
            if problem is not None:
                check.outcome, check.detail = problem.outcome, problem.detail
            else:
                check.text = normalized
                state.screened[index] = normalized
                if not self.settings.verify:
                    check.outcome = UNVERIFIED
            state.candidates.append(check)

    def _notice(self, message: str) -> None:
        self.messages.append(message)
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(message, yellow=True)

    # -- running ------------------------------------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item):
        entry = self.by_item.get(item.nodeid)
        if entry is None or not self.settings.verify:
            return (yield)
        code, states = entry
        on_line, on_return = {}, None
        for state in states:
            if not state.screened:
                continue
            if state.site.mode == APPEND_MODE:
                on_return = self._evaluator(state)
            else:
                on_line[state.site.line] = self._evaluator(state)
        if not on_line and on_return is None:
            return (yield)
        self._grounded_now = False
        with FrameTrap(code, on_line, on_return):
            result = yield
        if self._grounded_now:
            self._rerun(item, code, on_line, on_return, states)
        return result

    def _rerun(self, item, code, on_line, on_return, states) -> None:
        """Run the test once more (same fixture values) and collect the grounded values again.

        Grounded candidates whose value differs between the runs are dropped in :meth:`decide`.
        """
        self._observing = True
        try:
            with FrameTrap(code, on_line, on_return):
                _run_again(item)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - a failing re-run voids the grounded values
            logger.info("kdassert: re-run of %s raised %s", item.nodeid, type(exc).__name__)
            for state in states:
                state.rerun_failed = True
        finally:
            self._observing = False

    def _evaluator(self, state: SiteState):
        def evaluate(frame) -> None:
            frame_globals, frame_locals = frame.f_globals, frame.f_locals
            for index, text in list(state.screened.items()):
                check = state.candidates[index]
                if not self._observing:
                    check.record(self.verifier.check(text, frame_globals, frame_locals))
                if self.settings.ground and check.origin in (MODEL, TEMPLATE):
                    grounded = self.verifier.ground(text, frame_globals, frame_locals)
                    state.ground_seen.setdefault(index, set()).add(grounded)
                    if grounded is not None and grounded != text:
                        self._grounded_now = True
                        if not self._observing:
                            self._add_grounded(state, index, grounded, frame)

        return evaluate

    def _add_grounded(self, state: SiteState, source: int, text: str, frame) -> None:
        """Add (or reuse) the grounded candidate ``text`` made from candidate ``source``."""
        existing = next((i for i, c in enumerate(state.candidates) if c.text == text), None)
        if existing is not None:
            if state.candidates[existing].origin in (GROUNDED, OBSERVED):
                state.grounded_sources[existing].add(source)
            return  # the model proposed this very text: it is checked as the model's
        model = state.candidates[source]
        origin = OBSERVED if model.origin == TEMPLATE else GROUNDED
        check = CandidateCheck(text, model.score, model.rank, origin=origin,
                               grounded_from=model.text)
        check.record(self.verifier.check(text, frame.f_globals, frame.f_locals))
        state.candidates.append(check)
        index = len(state.candidates) - 1
        state.screened[index] = text
        state.grounded_sources[index] = {source}

    def pytest_runtest_logreport(self, report) -> None:
        if report.failed and report.nodeid in self.by_item:
            for state in self.by_item[report.nodeid][1]:
                state.failed_nodeids.append(report.nodeid)

    # -- end of session -----------------------------------------------------------------
    def decide(self) -> None:
        """Pick each site's suggestion: the best-ranked candidate that passed everywhere.

        Ranking is :func:`~pytest_kdassert.grounding.rank_score`: the model's score (0 when
        the suggester gave none) plus a bonus for checking the focal result, minus a penalty
        for weak checks; ties go to the model's rank.
        """
        for state in self.states.values():
            state.chosen = None
            _drop_unstable(state)
            if state.failed_nodeids:
                state.status = "test-failed"
                continue
            wanted = (PASSED,) if self.settings.verify else (UNVERIFIED,)
            usable = [state.candidates[i] for i in state.screened
                      if state.candidates[i].outcome in wanted]
            if usable:
                state.chosen = min(usable, key=lambda c: _rank_key(c, state.focal_names))
                state.status = "suggested"
            elif not state.candidates:
                state.status = "no-candidates"
            elif state.screened and all(state.candidates[i].outcome == NOT_REACHED
                                        for i in state.screened):
                state.status = "not-run"
            else:
                state.status = "no-verified-candidate"

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter, exitstatus, config) -> None:
        from pytest_kdassert.summary import finish

        self.decide()
        finish(self, terminalreporter, interrupted=exitstatus == pytest.ExitCode.INTERRUPTED)


def _rank_key(check: CandidateCheck, names: set[str]) -> tuple:
    base = check.score
    if base is None:
        base = UNSCORED_TEMPLATE if check.origin in (TEMPLATE, OBSERVED) else 0.0
    score = rank_score(check.text, base, names)
    return (-score, check.rank, check.origin != MODEL)


def ran_mid_test(state: SiteState) -> bool:
    """Candidates were evaluated at a placeholder, so the rest of the test ran after them.

    Candidates run against the test's own objects; one with a side effect (``next(it)``,
    ``items.pop()``) can make the rest of the test fail. The summary says so.
    """
    return state.site.mode != APPEND_MODE and any(c.runs for c in state.candidates)


def _before_line(site) -> int:
    """First line after the code a site's assertion sees (its placeholder, or the test's end)."""
    return site.line + (1 if site.mode == APPEND_MODE else 0)


def _is_unittest(item) -> bool:
    cls = getattr(item, "cls", None)
    return isinstance(cls, type) and issubclass(cls, unittest.TestCase)


def _drop_unstable(state: SiteState) -> None:
    """Grounded candidates whose value was not the same in every run of the site."""
    for index, sources in state.grounded_sources.items():
        check = state.candidates[index]
        if check.outcome != PASSED:
            continue
        if state.rerun_failed:
            check.outcome, check.detail = UNSTABLE, "the test failed when run again"
        elif any(state.ground_seen.get(s, set()) != {check.text} for s in sources):
            check.outcome, check.detail = UNSTABLE, "the value differs between runs"


def _run_again(item) -> None:
    """Run a test's body once more, reusing the fixtures of the current call.

    A unittest test runs on a fresh TestCase with setUp, tearDown and cleanups, outside the
    TestCase result machinery (``item.runtest()`` would report into the item a second time);
    class-level fixtures are still set up at this point of the call.
    """
    if not _is_unittest(item):
        item.runtest()
        return
    case = item.cls(item.name)
    case.setUp()
    try:
        getattr(case, item.name)()
    finally:
        try:
            case.tearDown()
        finally:
            case.doCleanups()


class XdistNotice:
    """Under ``pytest -n``, tests run in other processes: say so once, suggest nothing."""

    def pytest_terminal_summary(self, terminalreporter) -> None:
        terminalreporter.write_line(
            "kdassert: --suggest-asserts is off under pytest-xdist (-n); run without -n "
            "(or with -n 0) to get suggestions.", yellow=True)
