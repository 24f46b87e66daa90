"""Running a site's candidates when the test reaches it, and folding the results in.

At each site instance :meth:`SiteRunner.evaluate` first applies the allow-list's site part
(:func:`~.safety.site_refusal`: names resolved in the test's namespace), then runs every
remaining candidate once: its check, its grounding and, when grounding wrote a new text, the
grounded text's check. With isolation (the default on POSIX) all of that happens in one
forked child per site instance (:func:`~.sandbox.run_forked`) under ``--kdassert-timeout``,
so nothing a candidate does (``items.pop()``, ``setattr(math, 'pi', 3)``, a hang, an
``os._exit``) reaches the test, later tests or pytest. A candidate that touches plain data
only (:func:`~.safety.runs_only_plain_data`: ``assert result == [1, 2]`` on a list of ints)
runs no code but the interpreter's and needs no child: it runs in the test's process, and a
site whose candidates are all such forks nothing. Its grounded text is checked there too: it
adds only literals and, for a float, ``pytest.approx`` (pytest's own pure comparison). Without it, candidates run on a
copy of the namespace in the test's process. Results are plain JSON either way.
"""

from __future__ import annotations

import ast
import collections
import logging
from pathlib import Path

from pytest_kdassert.outcomes import GROUNDABLE, Outcome
from pytest_kdassert.safety import runs_only_plain_data, site_refusal
from pytest_kdassert.sandbox import Dirty, Failure, Reaper, run_forked
from pytest_kdassert.sites import SiteState, why_redundant
from pytest_kdassert.verify import CandidateCheck, CheckResult, Verifier, merged_namespace

logger = logging.getLogger(__name__)

_FAILURE_OUTCOMES = {"timeout": Outcome.TIMEOUT, "crashed": Outcome.CRASHED}


class SiteRunner:
    """Evaluates a site's screened candidates against a frame, isolated or in-process."""

    def __init__(self, verifier: Verifier, rootdir: Path | None,
                 project: frozenset[str] = frozenset(), *, ground: bool, isolated: bool,
                 timeout: float):
        self.verifier = verifier
        self.rootdir = rootdir
        self.project = project
        """Top-level packages of the project: its code, even when installed."""
        self.ground = ground
        self.isolated = isolated
        self.timeout = timeout
        self.reaper = Reaper()
        """Children of this run not yet waited for (the flakiness guard's too)."""
        self._trees: dict[str, ast.stmt] = {}
        self._read_names: dict[str, list[str]] = {}
        """Candidate text -> the names it reads, sorted."""

    def evaluate(self, state: SiteState, frame_globals: dict, frame_locals: dict, *,
                 observing: bool = False, only: set[int] | None = None) -> bool:
        """Run the site's candidates once; True when a grounded value differs from the text.

        ``observing`` (the flakiness re-run, already inside a child): ground only the
        candidates in ``only``, in-process, and record nothing but the values seen.
        """
        namespace = merged_namespace(frame_globals, frame_locals)
        self._refuse_unsafe(state, namespace)
        tasks = [i for i in state.screened if only is None or i in only]
        if observing and self.ground:
            tasks = [i for i in tasks if state.candidates[i].origin in GROUNDABLE]
        checked: dict[str, list] = {}

        def work(index: int) -> dict:
            return self._work(state, index, namespace, observing, checked)

        inline = tasks
        if self.isolated and not observing:
            inline = [i for i in tasks if runs_only_plain_data(self._tree(state.screened[i]),
                                                                  namespace)]
        results = {index: _in_process(work, index) for index in inline}
        forked = [index for index in tasks if index not in results]
        if forked:
            results.update(run_forked(forked, work, self.timeout, reaper=self.reaper))
        grounded_now = False
        for index in tasks:  # in the candidates' order, wherever each one ran
            grounded_now |= self._fold(state, index, results[index], observing)
        return grounded_now

    def _refuse_unsafe(self, state: SiteState, namespace: dict) -> None:
        for index, text in list(state.screened.items()):
            reason = site_refusal(self._tree(text), namespace, self.rootdir, self.project)
            if reason is not None:
                check = state.candidates[index]
                check.outcome, check.detail = Outcome.UNSAFE, reason
                del state.screened[index]

    def _work(self, state: SiteState, index: int, namespace: dict, observing: bool,
              checked: dict) -> dict | Dirty:
        """What one candidate does at the site, as JSON (runs in the child when isolated).

        ``namespace`` is the site instance's merged copy of the test's names
        (:func:`~.verify.merged_namespace`), shared by its candidates. A step that changed the
        test's values ends the candidate there, marked :class:`~.sandbox.Dirty`: later
        candidates start from a fresh copy.
        """
        text, check = state.screened[index], state.candidates[index]
        before = fingerprints(self._names(text), namespace)
        out: dict = {}

        def changed() -> list[str]:
            return _changed(before, fingerprints(before, namespace))

        if not observing:
            result = self.verifier.check_in(text, namespace)
            if changed():
                result = CheckResult(Outcome.ERROR, f"changes the test's {', '.join(changed())}: "
                                                    "a check must leave them as they are")
                return Dirty({"check": _pair(result)})
            out["check"] = _pair(result)
        if self.ground and check.origin in GROUNDABLE:
            why: list[str] = []
            grounded = self.verifier.ground_in(text, namespace, why)
            if changed():
                return Dirty(out)
            out["grounded"] = grounded
            if why:
                out["why_not_grounded"] = why[0]
            if grounded is not None and grounded != text and not observing \
                    and _wants_check(state, grounded):
                if grounded not in checked:
                    checked[grounded] = _pair(
                        self.verifier.check_in(grounded, namespace))
                out["grounded_check"] = checked[grounded]
                if changed():
                    return Dirty(out)
        return out

    def forget_texts(self) -> None:
        """Drop the parsed candidate texts (at the end of the run)."""
        self._trees.clear()
        self._read_names.clear()

    def _tree(self, text: str) -> ast.stmt:
        tree = self._trees.get(text)
        if tree is None:
            tree = self._trees[text] = ast.parse(text).body[0]
        return tree

    def _names(self, text: str) -> list[str]:
        names = self._read_names.get(text)
        if names is None:
            names = self._read_names[text] = sorted(
                {n.id for n in ast.walk(self._tree(text))
                 if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)})
        return names

    def _fold(self, state: SiteState, index: int, result, observing: bool) -> bool:
        check = state.candidates[index]
        if isinstance(result, Failure):
            check.record(CheckResult(_FAILURE_OUTCOMES[result.kind], result.detail))
            state.screened.pop(index, None)  # never again: it would hang or crash again
            logger.info("kdassert: %s at %s: %s", check.text, state.site.qualname, result.detail)
            return False
        if "check" in result:
            check.record(CheckResult(Outcome(result["check"][0]), result["check"][1]))
        if "grounded" not in result:
            return False
        grounded = result["grounded"]
        state.ground_seen.setdefault(index, set()).add(grounded)
        if result.get("why_not_grounded") and check.outcome == Outcome.FAILED \
                and "value not filled in" not in check.detail:
            check.detail = f"{check.detail}; value not filled in: {result['why_not_grounded']}"
        if grounded is None or grounded == check.text:
            return False
        if not observing:
            add_grounded(state, index, grounded, result.get("grounded_check"))
        return True


_CONTAINERS = (list, dict, set, bytearray, collections.deque)
MAX_FINGERPRINT_ITEMS = 10_000
"""Larger containers are compared by length only."""


def fingerprints(names, namespace: dict) -> dict:
    """Name -> a snapshot of the test's builtin containers (lists, dicts, sets, ...) by their
    items. Compared after a check, it shows candidates that consume what the rest of the test
    uses (``items.pop()``, ``d.clear()``). Other objects are left alone: their attributes
    change for harmless reasons too (a click ``Command`` caches what it computed)."""
    out = {}
    for name in names:
        value = namespace.get(name)
        if isinstance(value, _CONTAINERS):
            out[name] = _items(value)
    return out


def _items(value) -> tuple:
    if len(value) > MAX_FINGERPRINT_ITEMS:
        return type(value), len(value)
    if isinstance(value, dict):
        return type(value), tuple((id(k), id(v)) for k, v in value.items())
    return type(value), tuple(id(v) for v in value) if not isinstance(value, bytearray) \
        else bytes(value)


def _changed(before: dict, after: dict) -> list[str]:
    return [name for name in before if after.get(name) != before[name]]


def _in_process(work, index: int):
    try:
        result = work(index)
    except SystemExit:
        return Failure("crashed", "raised SystemExit")
    return result.value if isinstance(result, Dirty) else result


def _pair(result: CheckResult) -> list:
    return [result.outcome.value, result.detail]


def _wants_check(state: SiteState, text: str) -> bool:
    """A grounded text is checked unless it is already a candidate or restates the test."""
    return not any(c.text == text for c in state.candidates) \
        and why_redundant(text, state.existing, state.literal_bindings,
                                    state.discarded_call) is None


def add_grounded(state: SiteState, source: int, text: str, result: list | None) -> None:
    """Add (or reuse) the grounded candidate ``text`` made from candidate ``source``.

    ``result`` is its check (``[outcome, detail]``) from the same site instance.
    """
    existing = next((i for i, c in enumerate(state.candidates) if c.text == text), None)
    if existing is not None:
        if existing in state.grounded_sources:  # grounded before (a redundant one is not)
            state.grounded_sources[existing].add(source)
        return  # the model proposed this very text: it is checked as the model's
    model = state.candidates[source]
    check = CandidateCheck(text, model.score, model.rank, origin=GROUNDABLE[model.origin],
                           grounded_from=model.text, similarity=model.similarity)
    redundant = why_redundant(text, state.existing, state.literal_bindings,
                                    state.discarded_call)
    state.candidates.append(check)
    if redundant:
        check.outcome, check.detail = Outcome.REDUNDANT, redundant
        return
    if result is not None:
        check.record(CheckResult(Outcome(result[0]), result[1]))
    index = len(state.candidates) - 1
    state.screened[index] = text
    state.grounded_sources[index] = {source}
