"""The pytest hooks of an active ``--suggest-asserts`` run: thin, over a pytest-free session.

Each hook turns pytest objects into plain values and calls :class:`~.session.SuggestSession`.
Results are written in ``pytest_sessionfinish`` (so ``-p no:terminal`` writes them too) and
shown in the terminal summary. Under ``--collect-only`` nothing is generated.
"""

from __future__ import annotations

import sys
import unittest
from pathlib import Path

import pytest

from pytest_kdassert.cache import CachedSuggester, model_fingerprint
from pytest_kdassert.config import SuggestConfig
from pytest_kdassert.core.errors import KdassertError
from pytest_kdassert.gcpause import without_gc
from pytest_kdassert.model_worker import WorkerSuggester
from pytest_kdassert.repeatable import repeatable_call
from pytest_kdassert.session import SuggestSession
from pytest_kdassert.suggester import ModelSuggester
from pytest_kdassert.summary import finish, show


class KdassertHooks:
    """Registered by ``pytest_configure`` when ``--suggest-asserts`` is given."""

    def __init__(self, config: pytest.Config, settings: SuggestConfig):
        self.config = config
        self.session = SuggestSession(settings, config.rootpath, notice=self._notice)
        self.result_lines: list[str] | None = None
        self._model = None
        """The suggester of this run (None before collection ends)."""
        self._collect_only = bool(config.getoption("collectonly", False))

    def _notice(self, message: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(message, yellow=True)

    @pytest.hookimpl(trylast=True)
    @without_gc
    def pytest_collection_modifyitems(self, session, config, items) -> None:
        if self._collect_only:
            return
        for item in items:
            if isinstance(item, pytest.Function):
                func = getattr(item.obj, "__func__", item.obj)
                namespace = getattr(func, "__globals__", None) or vars(item.module)
                self.session.discover(item.nodeid, item.path, item.obj, namespace,
                                      getattr(item, "cls", None))

    @without_gc
    def pytest_collection_finish(self, session) -> None:
        self.session.collection_done()
        if self._collect_only or not self.session.states:
            return
        suggester = self._model = self._suggester()
        try:
            self.session.generate(suggester)
        finally:
            if not self.session.scores_at_end():
                self._close_worker()
        if isinstance(suggester, CachedSuggester) and suggester.hits:
            self.session.messages.append(
                f"kdassert: {suggester.hits} of {suggester.hits + suggester.misses} model "
                "result(s) came from pytest's cache (--cache-clear regenerates them)")

    def _close_worker(self) -> None:
        """End the model's process, if it runs: after generation, or at the end of the
        run when it scores the templates found at the sites (it waits, idle, meanwhile:
        loading the model again would take seconds)."""
        model = getattr(self._model, "inner", self._model)
        if isinstance(model, WorkerSuggester):
            model.close()

    def _suggester(self):
        stub = self.config.hook.pytest_kdassert_suggester(config=self.config)
        if stub is not None:
            return stub
        settings = self.session.settings
        kind = WorkerSuggester if self.session.runner.isolated else ModelSuggester
        try:
            model = kind(settings.model, settings.num_beams, settings.batch_size,
                         settings.threads)
        except KdassertError as exc:
            self.session.notice(f"kdassert: no suggestions: {exc}")
            return None
        cache = getattr(self.config, "cache", None)  # None under -p no:cacheprovider
        if cache is None or not Path(model.path).is_dir():
            return model
        return CachedSuggester(model, model_fingerprint(model.path, settings.num_beams), cache)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item):
        trap = self.session.trap_for(item.nodeid)
        if trap is None:
            return (yield)
        repeatable = self.session.settings.ground and repeatable_call(item)  # no guard without grounding
        guard = self.session.rerun_guard(item.nodeid, lambda: _run_again(item), repeatable)
        try:
            with trap:
                result = yield
        except BaseException:
            if guard is not None:
                guard.dismiss()
            raise
        self.session.after_call(guard)
        return result

    def pytest_runtest_logreport(self, report) -> None:
        if report.failed:
            self.session.test_failed(report.nodeid)

    @pytest.hookimpl(trylast=True)
    @without_gc
    def pytest_sessionfinish(self, session, exitstatus) -> None:
        if self._collect_only:
            return
        interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
        reviewing = self.session.settings.mode == "review" and not interrupted
        capman = self.config.pluginmanager.get_plugin("capturemanager")
        if reviewing and capman is not None:
            capman.suspend_global_capture(in_=True)
        try:
            self.result_lines = finish(self.session, interrupted, input, _write_out)
        finally:
            self._close_worker()
            if reviewing and capman is not None:
                capman.resume_global_capture()

    @pytest.hookimpl(trylast=True)
    @without_gc
    def pytest_terminal_summary(self, terminalreporter, exitstatus, config) -> None:
        if self.result_lines is None:
            return
        interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
        show(self.session, terminalreporter, self.result_lines, interrupted)


    def pytest_unconfigure(self, config) -> None:
        # Before pytest's own end-of-run garbage collections, which walk every live object.
        self.session.release()
        self._close_worker()  # if the run ended before pytest_sessionfinish


def _write_out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _is_unittest(item) -> bool:
    cls = getattr(item, "cls", None)
    return isinstance(cls, type) and issubclass(cls, unittest.TestCase)


def _run_again(item) -> None:
    """Run a test's body once more, reusing the fixtures of the current call (in the flakiness
    guard's child, forked before the call, unless isolation is off).

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
