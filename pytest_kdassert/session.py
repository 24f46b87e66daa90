"""The state of one ``--suggest-asserts`` run, with no pytest in it.

Flow: :meth:`SuggestSession.discover` finds the sites of each collected test; after
collection, :meth:`~SuggestSession.generate` gets candidates for all of them in one batched
call; during each test call the trap from :meth:`~SuggestSession.trap_for` hands the test's
frame at each site to :class:`~.isolation.SiteRunner` (allow-list, then a forked child under a
time limit; at a site's first instance, templates over the state of the test's objects
join them first, see :mod:`.observed`), and :meth:`~SuggestSession.rerun_guard` checks
grounded values for stability (:mod:`.flakiness`); at the end :meth:`~SuggestSession.decide`
has the model score those templates and picks each site's suggestion.
The pytest hooks that drive it are in :mod:`pytest_kdassert.hooks`.
"""

from __future__ import annotations

import ast
import inspect
import logging
import math
import time
import unittest
from collections.abc import Callable
from pathlib import Path

from pytest_kdassert import loaded_source, observed, sandbox
from pytest_kdassert.changes import Change, ChangeSet
from pytest_kdassert.config import SuggestConfig
from pytest_kdassert.core.assertions import assertion_kind, is_placeholder_assert
from pytest_kdassert.core.errors import KdassertError
from pytest_kdassert.core.exemplars import Site
from pytest_kdassert.core.memo import clear_run_caches
from pytest_kdassert.core.ranking import PoolStats, rank_site
from pytest_kdassert.core.source import flatten_statements
from pytest_kdassert.discovery import (
    APPEND_MODE,
    FileIndex,
    body_asserts,
    code_of_test,
    find_sites,
)
from pytest_kdassert.flakiness import RerunGuard
from pytest_kdassert.focal import in_test_file, resolve_focal
from pytest_kdassert.gcpause import gc_paused
from pytest_kdassert.grounding import focal_inputs, focal_names
from pytest_kdassert.isolation import SiteRunner
from pytest_kdassert.outcomes import Origin, Outcome
from pytest_kdassert.pool import ExemplarPool, pool_files
from pytest_kdassert.project import project_packages
from pytest_kdassert.sites import (
    SiteState,
    decide,
    last_binding,
    literal_bindings,
    names_bound_by_test,
    reads_test_names,
    use_bound_name,
    why_redundant,
)
from pytest_kdassert.suggester import RawCandidate, SuggestRequest, as_raw_candidates
from pytest_kdassert.templates import assigned_names
from pytest_kdassert.verify import CandidateCheck, FrameTrap, Verifier

logger = logging.getLogger(__name__)


class SuggestSession:
    """Sites, candidates and verification of one run; pytest reaches it through the hooks."""

    def __init__(self, settings: SuggestConfig, rootpath: Path,
                 notice: Callable[[str], None] = logger.warning):
        self.settings = settings
        self.changeset = ChangeSet(Path(rootpath))
        self.states: dict[tuple, SiteState] = {}
        self.by_test: dict[str, tuple[object, list[SiteState]]] = {}
        """Test node id -> (its code object, its sites)."""
        self.verifier = Verifier()
        self.suggest_seconds: float | None = None
        """Wall time of candidate generation (model load included)."""
        self.messages: list[str] = []
        """One-line notices for the summary (model missing, ...)."""
        self._notice = notice
        self._grounded_now = False
        """Set when the current test call produced a grounded value (it gets a re-run)."""
        self._indexes: dict[Path, FileIndex | None] = {}
        self.project = project_packages(Path(rootpath))
        """Top-level packages of the project under test (found wherever they are installed)."""
        self.collected_files: set[Path] = set()
        """Every file a test was collected from: with their sibling test files, the pool of
        exemplars."""
        self.pool_size: int | None = None
        """Assertions in the exemplar pool (None: no pool was built)."""
        self._pool_stats: PoolStats | None = None
        """Assertion kinds and texts of the pool, for the in-project ranker."""
        self.scorer = None
        """The suggester, when it scores texts: it scores the templates found at the sites."""
        self._requests: dict[tuple, SuggestRequest] = {}
        self.runner = SiteRunner(self.verifier, Path(rootpath), self.project,
                                 ground=settings.ground,
                                 isolated=settings.isolation and sandbox.AVAILABLE,
                                 timeout=settings.timeout)

    # -- collection ---------------------------------------------------------------------
    def discover(self, nodeid: str, path: Path, test_obj, namespace: dict,
                 test_class: type | None = None) -> None:
        """Find the sites of one collected test (parametrized instances share them)."""
        path = Path(path)
        self.collected_files.add(path)
        code = code_of_test(test_obj)
        if code is None or code.co_filename != str(path) and Path(code.co_filename) != path:
            return
        index = self._file_index(path)
        info = index.function(code) if index is not None else None
        if info is None:
            return
        states = []
        helpers = HelperLookup(namespace, test_class)
        for site in find_sites(info, path, self.settings.all_tests, helpers.asserts):
            state = self.states.get(site.key)
            if state is None:
                state = self.states[site.key] = SiteState(site)
                self._find_focal(state, info.node, namespace)
                if self.settings.ground and self.settings.templates:
                    state.templates = observed.site_templates(info.node, state,
                                                     _is_unittest(test_class))
            state.site.nodeids.append(nodeid)
            states.append(state)
        if states:
            self.by_test[nodeid] = (code, states)

    def collection_done(self) -> None:
        """Drop the parsed test files: sites keep what they need, and a big file's AST would
        otherwise stay alive through every garbage collection of the run."""
        self._indexes.clear()

    def release(self) -> None:
        """Drop what only the end of the run needed (sites, parsed files, rendered edits),
        and wait for the last children. The session reports nothing after this."""
        self._indexes.clear()
        self.changeset.release()
        self.runner.reaper.close()
        # pytest's end-of-run collections walk every live object: the sites, their
        # candidates and the parsed source files are not needed any more
        self.states.clear()
        self.by_test.clear()
        self._requests.clear()
        self.changeset.changes.clear()
        self._pool_stats = None
        self.runner.forget_texts()
        self.verifier.forget()
        loaded_source.forget()
        clear_run_caches()

    def _file_index(self, path: Path) -> FileIndex | None:
        """The parsed test file, parsed once per run (None when unreadable or unparsable)."""
        if path not in self._indexes:
            source = self.changeset.baseline(path)
            self._indexes[path] = FileIndex.parse(source, str(path)) if source is not None else None
        return self._indexes[path]

    def _find_focal(self, state: SiteState, node, namespace: dict) -> None:
        statements = flatten_statements(node.body)
        state.existing = frozenset(existing_assertions(statements))
        state.literal_bindings = literal_bindings(statements, state.before_line)
        state.test_names = names_bound_by_test(node, assigned_names(node, state.before_line))
        state.last_binding = last_binding(statements, state.before_line)
        focal = resolve_focal(node, state.before_line, namespace, self.project)
        if focal is not None:
            state.focal_name, state.focal_source = focal.name, focal.source
            state.focal_names = focal_names(node, focal.name, state.before_line)
            state.input_names = frozenset(
                focal_inputs(node, focal.name, state.before_line) - state.focal_names)

    # -- generation ---------------------------------------------------------------------
    def generate(self, suggester) -> None:
        """Candidates for every site in one batched call, then the templates, screened."""
        if not self.states or suggester is None:
            return
        if self.settings.isolation and not sandbox.AVAILABLE and self.settings.verify:
            self.notice("kdassert: no process isolation here (os.fork is missing): only "
                        "candidates the allow-list accepts run, in the test's process, "
                        "without a time limit")
        states = list(self.states.values())
        start = time.perf_counter()
        self._retrieve_exemplars(states)
        requests = [SuggestRequest(s.site.nodeids[0], s.site.qualname, s.focal_name,
                                   s.focal_source, s.site.masked_source,
                                   tuple((e.entry.masked_test, e.entry.assertion)
                                         for e in s.exemplars)) for s in states]
        try:
            results = suggester.suggest(requests)
        except KdassertError as exc:
            self.notice(f"kdassert: no suggestions: {exc}")
            return
        except Exception as exc:  # noqa: BLE001 - a custom suggester's bug must not stop pytest
            self.notice(f"kdassert: no suggestions: the suggester raised "
                        f"{type(exc).__name__}: {exc}")
            return
        for state, raw in zip(states, results, strict=False):
            self._screen(state, as_raw_candidates(raw))
        if hasattr(suggester, "score"):
            self.scorer = suggester
            self._requests = {s.site.key: r for s, r in zip(states, requests, strict=True)}
        self._add_scored(states, requests, suggester, Origin.EXEMPLAR,
                         [self._exemplar_candidates(s) for s in states])
        self._add_scored(states, requests, suggester, Origin.TEMPLATE,
                         [{t: None for t in s.templates} for s in states])
        self.suggest_seconds = time.perf_counter() - start

    def notice(self, message: str) -> None:
        self.messages.append(message)
        self._notice(message)

    def _retrieve_exemplars(self, states: list[SiteState]) -> None:
        """Each site's most similar assertions of the project's other tests."""
        if not self.settings.exemplars:
            return
        pool = ExemplarPool(pool_files(self.collected_files), self._display,
                            k=self.settings.exemplars)
        self.pool_size = len(pool)
        self._pool_stats = PoolStats.from_entries(pool.index.entries)
        for state in states:
            site = state.site
            state.exemplars = pool.query(self._display(site.path), site.qualname,
                                         site.masked_source)

    def _display(self, path: Path) -> str:
        return self.changeset.display_name(Path(path))

    def _exemplar_candidates(self, state: SiteState) -> dict[str, float]:
        """The site's in-project candidates ranked by :mod:`.core.ranking` (its exemplars
        adapted to the test's names, and the test's own assertions renamed to its result
        variable), each with its share of the ranker's softmax over the site (0..1, where
        the similarity used to be). One that reads none of the test's names would only
        repeat the other test's check: it is left out."""
        if not state.exemplars:
            return {}
        site = state.site
        ranked = rank_site(Site(f"{self._display(site.path)}::{site.qualname}",
                                site.masked_source, state.focal_name),
                           state.focal_source or "", state.exemplars, self._pool_stats)
        top = max(item.score for item in ranked) if ranked else 0.0
        weights = [math.exp(item.score - top) for item in ranked]
        total = sum(weights) or 1.0
        found: dict[str, float] = {}
        for item, weight in zip(ranked, weights, strict=True):
            text = item.text
            if state.last_binding is not None:
                text = use_bound_name(text, *state.last_binding)
            if reads_test_names(text, state.test_names):
                found.setdefault(text, weight / total)
        return found

    def _add_scored(self, states, requests, suggester, origin: Origin,
                    proposals: list[dict[str, float | None]]) -> None:
        """Append each site's proposals (text -> similarity) the model did not already
        propose, scored by the model when it can."""
        wanted = []
        for state, request, texts in zip(states, requests, proposals, strict=True):
            known = {c.text for c in state.candidates}
            fresh = {t: sim for t, sim in texts.items() if t not in known}
            if fresh:
                wanted.append((state, request, fresh))
        if not wanted:
            return
        scores = None
        if hasattr(suggester, "score"):
            try:
                scores = suggester.score([w[1] for w in wanted], [list(w[2]) for w in wanted])
            except Exception as exc:  # noqa: BLE001 - a custom suggester's bug stops nothing
                logger.info("kdassert: %s candidates left unscored: %s: %s", origin,
                            type(exc).__name__, exc)
        for i, (state, _, fresh) in enumerate(wanted):
            site_scores = scores[i] if scores is not None else [None] * len(fresh)
            start = len(state.candidates)
            self._screen(state, [RawCandidate(text, score, state.ranks.get(text, start + j))
                                 for j, (text, score)
                                 in enumerate(zip(fresh, site_scores, strict=True))],
                         origin=origin, similarity=list(fresh.values()))

    def _screen(self, state: SiteState, raw, origin: Origin = Origin.MODEL,
                similarity: list[float | None] | None = None) -> None:
        for k, candidate in enumerate(raw):
            index = len(state.candidates)
            check = CandidateCheck(candidate.text, candidate.score, candidate.rank, origin=origin,
                                   similarity=similarity[k] if similarity else None)
            normalized, problem = self.verifier.screen(candidate.text)
            redundant = normalized and why_redundant(normalized, state.existing,
                                                     state.literal_bindings, state.discarded_call)
            if problem is not None:
                check.outcome, check.detail = problem.outcome, problem.detail
            elif redundant:
                check.text, check.outcome, check.detail = normalized, Outcome.REDUNDANT, redundant
            else:
                check.text = normalized
                state.screened[index] = normalized
                if not self.settings.verify:
                    check.outcome = Outcome.UNVERIFIED
            state.candidates.append(check)

    # -- running ------------------------------------------------------------------------
    def trap_for(self, nodeid: str, observing: bool = False,
                 only: dict[int, set[int]] | None = None) -> FrameTrap | None:
        """The tracer that verifies a test's candidates while it runs, or None.

        ``observing`` (the flakiness re-run): only ground, for the site positions and
        candidate indices in ``only`` (all when None).
        """
        entry = self.by_test.get(nodeid)
        if entry is None or not self.settings.verify:
            return None
        code, states = entry
        on_line, on_return = {}, None
        for pos, state in enumerate(states):
            if not (state.screened or self._discovers(state, observing)) \
                    or (only is not None and pos not in only):
                continue
            wanted = None if only is None else only[pos]
            if state.site.mode == APPEND_MODE:
                on_return = self._evaluator(state, observing, wanted)
            else:
                on_line[state.site.line] = self._evaluator(state, observing, wanted)
        if not on_line and on_return is None:
            return None
        self._grounded_now = False
        return FrameTrap(code, on_line, on_return)

    def rerun_guard(self, nodeid: str, run_again: Callable[[], None],
                    repeatable: bool = False) -> RerunGuard | None:
        """The flakiness guard of one test call (forks its child now), or None: also for a
        call that must give the same values again (:mod:`.repeatable`), where a re-run
        could tell nothing."""
        if not self.settings.ground:
            return None
        if repeatable:
            for state in self.by_test.get(nodeid, (None, []))[1]:
                state.rerun = "skipped: repeatable"
            return None
        return RerunGuard(self, nodeid, run_again, self.runner.isolated)

    def after_call(self, guard: RerunGuard | None) -> None:
        """Re-run a test whose call grounded a value; values that differ are dropped in
        :meth:`decide`."""
        if guard is not None:
            guard.finish(self._grounded_now)

    def test_failed(self, nodeid: str) -> None:
        for state in self.by_test.get(nodeid, (None, []))[1]:
            state.failed_nodeids.append(nodeid)

    def _discovers(self, state: SiteState, observing: bool) -> bool:
        """Whether this run of the site lists its observed-state templates (:mod:`.observed`):
        at its first instance, and only where candidates run in a sandbox child (a property's
        code runs there, never in the test's process)."""
        return state.discovered is None and bool(state.observed_objects) and not observing \
            and self.runner.isolated and self.settings.verify

    def scores_at_end(self) -> bool:
        """Whether :meth:`decide` may ask the suggester to score templates found at sites."""
        return self.scorer is not None and any(self._discovers(s, False)
                                               for s in self.states.values())

    def _discover(self, state: SiteState, frame_locals) -> None:
        try:
            texts = observed.templates_at_site(state, frame_locals, self.project)
        except Exception:  # noqa: BLE001 - an odd object costs its templates, not the site
            logger.info("kdassert: no observed state at %s", state.site.qualname, exc_info=True)
            state.discovered = []
            return
        start = len(state.candidates)
        self._screen(state, [RawCandidate(t, None, start + j) for j, t in enumerate(texts)],
                     origin=Origin.TEMPLATE)
        state.discovered = list(range(start, len(state.candidates)))
        observed.run_first(state, state.discovered)

    def _evaluator(self, state: SiteState, observing: bool, only: set[int] | None):
        def evaluate(frame) -> None:
            try:
                with gc_paused():
                    if self._discovers(state, observing):
                        self._discover(state, frame.f_locals)
                    grounded = self.runner.evaluate(state, frame.f_globals, frame.f_locals,
                                                    observing=observing, only=only)
            except Exception:  # noqa: BLE001 - a bug of kdassert must not fail the user's test
                logger.warning("kdassert: verifying %s failed", state.site.qualname,
                               exc_info=True)
                return
            self._grounded_now |= grounded

        return evaluate

    # -- end of session -----------------------------------------------------------------
    def decide(self) -> None:
        """Pick every site's suggestion and queue it in the change set."""
        if self.scorer is not None:
            observed.score_discovered([(s, self._requests[k]) for k, s in self.states.items()
                                       if s.discovered and k in self._requests], self.scorer)
        for state in self.states.values():
            decide(state, verified=self.settings.verify)
        self.changeset.changes.clear()
        for state in self.sorted_states():
            if state.chosen is not None:
                site = state.site
                self.changeset.add(Change(site.path, site.qualname, site.line, site.mode,
                                          state.chosen.text, site.nodeids[0]))

    def sorted_states(self) -> list[SiteState]:
        """Sites in file order."""
        return sorted(self.states.values(), key=lambda s: (str(s.site.path), s.site.line))




class HelperLookup:
    """Does a call in a test go to a test helper that asserts? (Then the test checks.)

    Helpers are functions of test modules and conftests (``check_results(...)``) and methods
    of the test's class (``self._check_output(...)``); project code that happens to assert
    internally does not count.
    """

    def __init__(self, namespace: dict, test_class: type | None):
        self.namespace = namespace
        self.test_class = test_class
        self._known: dict[int, bool] = {}

    def asserts(self, call: ast.Call) -> bool:
        func = self._callee(call.func)
        if not inspect.isfunction(func):
            return False
        if id(func) not in self._known:
            self._known[id(func)] = body_asserts(func)
        return self._known[id(func)]

    def _callee(self, expr: ast.expr):
        if isinstance(expr, ast.Name):
            obj = self.namespace.get(expr.id)
            return obj if inspect.isfunction(obj) and in_test_file(obj) else None
        if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name) \
                and expr.value.id == "self" and self.test_class is not None:
            obj = inspect.getattr_static(self.test_class, expr.attr, None)
            obj = getattr(obj, "__func__", obj)
            return obj if inspect.isfunction(obj) else None
        return None


def _is_unittest(test_class: type | None) -> bool:
    return isinstance(test_class, type) and issubclass(test_class, unittest.TestCase)


def existing_assertions(statements: list[ast.stmt]) -> list[str]:
    """The assertions a test already makes, in normal form (placeholders excluded)."""
    return [ast.unparse(s) for s in statements
            if assertion_kind(s) is not None and not is_placeholder_assert(s)]
