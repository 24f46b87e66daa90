"""The plugin object registered by ``--suggest-asserts``: it owns all per-session state.

Flow: after collection, find the sites and generate candidates for all of them in one
batched call; during each test call, verify the candidates in the test's frame; at the end,
pick the best verified candidate per site and hand the change set to :mod:`.summary`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from distillation.errors import KdassertError
from pytest_kdassert.changes import ChangeSet
from pytest_kdassert.config import SuggestConfig
from pytest_kdassert.discovery import APPEND_MODE, Site, code_of_test, find_sites, function_info
from pytest_kdassert.focal import resolve_focal
from pytest_kdassert.suggester import ModelSuggester, SuggestRequest, as_raw_candidates
from pytest_kdassert.verify import (
    NOT_REACHED,
    PASSED,
    UNVERIFIED,
    CandidateCheck,
    FrameTrap,
    Verifier,
)

logger = logging.getLogger(__name__)


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
            state.site.nodeids.append(item.nodeid)
            states.append(state)
        if states:
            self.by_item[item.nodeid] = (code, states)

    def _find_focal(self, state: SiteState, node, item) -> None:
        func = getattr(item.obj, "__func__", item.obj)
        namespace = getattr(func, "__globals__", None) or vars(item.module)
        before = state.site.line + (1 if state.site.mode == APPEND_MODE else 0)
        focal = resolve_focal(node, before, namespace)
        if focal is not None:
            state.focal_name, state.focal_source = focal.name, focal.source

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
        self.suggest_seconds = time.perf_counter() - start
        for state, raw in zip(states, results, strict=False):
            self._screen(state, as_raw_candidates(raw))

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

    def _screen(self, state: SiteState, raw) -> None:
        for index, candidate in enumerate(raw):
            check = CandidateCheck(candidate.text, candidate.score, candidate.rank)
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
        with FrameTrap(code, on_line, on_return):
            return (yield)

    def _evaluator(self, state: SiteState):
        def evaluate(frame) -> None:
            frame_globals, frame_locals = frame.f_globals, frame.f_locals
            for index, text in state.screened.items():
                result = self.verifier.check(text, frame_globals, frame_locals)
                state.candidates[index].record(result)

        return evaluate

    def pytest_runtest_logreport(self, report) -> None:
        if report.failed and report.nodeid in self.by_item:
            for state in self.by_item[report.nodeid][1]:
                state.failed_nodeids.append(report.nodeid)

    # -- end of session -----------------------------------------------------------------
    def decide(self) -> None:
        """Pick each site's suggestion: the best-ranked candidate that passed everywhere."""
        for state in self.states.values():
            state.chosen = None
            if state.failed_nodeids:
                state.status = "test-failed"
                continue
            wanted = (PASSED,) if self.settings.verify else (UNVERIFIED,)
            usable = [state.candidates[i] for i in state.screened
                      if state.candidates[i].outcome in wanted]
            if usable:
                state.chosen = min(usable, key=lambda c: c.rank)
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


class XdistNotice:
    """Under ``pytest -n``, tests run in other processes: say so once, suggest nothing."""

    def pytest_terminal_summary(self, terminalreporter) -> None:
        terminalreporter.write_line(
            "kdassert: --suggest-asserts is off under pytest-xdist (-n); run without -n "
            "(or with -n 0) to get suggestions.", yellow=True)
