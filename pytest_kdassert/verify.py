"""Verification: screen each candidate, then run it against the test's frame at its site.

:meth:`Verifier.screen` keeps checkable assertions that pass the static allow-list
(:mod:`.safety`). During the test call a tracer scoped to the test function's frame waits
for the placeholder line (or, for a test without assertions, for the frame to return) and
hands the frame to :mod:`.isolation`, which runs :meth:`Verifier.check` and
:meth:`Verifier.ground` on a merged copy of the frame's namespace, in a forked child unless
isolation is off. The tracer chains to whatever tracer was installed before (coverage,
debuggers) and restores it.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field

from pytest_kdassert.core.assertions import (
    assertion_kind,
    is_placeholder_assert,
    normalize_assertion,
)
from pytest_kdassert.grounding import ground, needs_pytest_import
from pytest_kdassert.outcomes import Origin, Outcome
from pytest_kdassert.safety import static_refusal
from pytest_kdassert.sandbox import CODE_FILENAME

FINAL = frozenset({Outcome.FAILED, Outcome.ERROR, Outcome.TIMEOUT, Outcome.CRASHED,
                   Outcome.UNSAFE})
"""Outcomes a later run of the same candidate cannot overturn."""


@dataclass(frozen=True)
class CheckResult:
    outcome: Outcome
    detail: str = ""


@dataclass
class CandidateCheck:
    """One candidate and what verification made of it (over every run of its site)."""

    text: str
    score: float | None
    rank: int
    outcome: Outcome = Outcome.NOT_REACHED
    detail: str = ""
    runs: int = field(default=0, repr=False)
    origin: Origin = Origin.MODEL
    """``model`` (as generated), ``grounded`` (value filled in from the run), ``template``
    (a variable of the test, see :mod:`.templates`) or ``observed`` (a grounded template)."""
    grounded_from: str | None = None
    """For a grounded or observed candidate: the candidate it was made from."""
    similarity: float | None = None
    """For an in-project candidate (and what grounding made of it): its share (0..1) of the
    in-project ranker's softmax over the site (:mod:`.core.ranking`)."""

    def record(self, result: CheckResult) -> None:
        """Fold one evaluation in: a single failure anywhere makes the candidate fail."""
        self.runs += 1
        if self.outcome in FINAL:
            return
        self.outcome, self.detail = result.outcome, result.detail

    def to_dict(self) -> dict:
        return {"text": self.text, "score": self.score, "rank": self.rank,
                "outcome": self.outcome, "detail": self.detail, "origin": self.origin,
                "grounded_from": self.grounded_from, "similarity": self.similarity}


class Verifier:
    """Static screening and in-frame evaluation of candidates."""

    def __init__(self):
        self._compiled: dict[str, object] = {}
        """Candidate texts compiled as statements."""
        self._expressions: dict[str, object] = {}
        """Observed expressions compiled for ``eval``."""
        self._screened: dict[str, tuple[str | None, CheckResult | None]] = {}
        """Screening by text: the same candidates come back at many sites."""

    def forget(self) -> None:
        """Drop what was compiled and screened (at the end of the run)."""
        self._compiled.clear()
        self._expressions.clear()
        self._screened.clear()

    def screen(self, text: str) -> tuple[str | None, CheckResult | None]:
        """``(normalised text, None)`` for a checkable assertion, else ``(None, why not)``."""
        screened = self._screened.get(text)
        if screened is None:
            screened = self._screened[text] = self._screen(text)
        return screened

    def _screen(self, text: str) -> tuple[str | None, CheckResult | None]:
        normalized = normalize_assertion(text)
        if normalized is None:
            return None, CheckResult(Outcome.SYNTAX, "does not parse as one statement")
        stmt = ast.parse(normalized).body[0]
        if assertion_kind(stmt) is None or is_placeholder_assert(stmt):
            return None, CheckResult(Outcome.NOT_ASSERTION, "not an assertion")
        if isinstance(stmt, ast.Assert) and isinstance(stmt.test, ast.Constant):
            return None, CheckResult(Outcome.TRIVIAL, "asserts a constant")
        refused = static_refusal(stmt)
        if refused is not None:
            return None, CheckResult(Outcome.UNSAFE, refused)
        return normalized, None

    def check(self, candidate: str, frame_globals: dict, frame_locals: dict) -> CheckResult:
        """Run ``candidate`` against a merged copy of the frame's namespace.

        ``KeyboardInterrupt`` and ``SystemExit`` are raised on: the caller decides whether
        they are the user's (in the test's process) or the candidate's (in a child).
        """
        return self.check_in(candidate, merged_namespace(frame_globals, frame_locals))

    def check_in(self, candidate: str, namespace: dict) -> CheckResult:
        """:meth:`check` on a namespace merged by :func:`merged_namespace`, which the checks
        and groundings of one site instance share: a screened text binds no name (no
        walrus, no assignment), so copying the test module's globals again for each of
        them, thousands of names in a big test file, would only cost time."""
        code = self._compiled.get(candidate)
        if code is None:
            code = self._compiled[candidate] = compile(candidate, CODE_FILENAME, "exec")
        _lend_pytest(candidate, namespace)
        try:
            exec(code, namespace)  # noqa: S102 - screened text, on a copy of the namespace
        except (KeyboardInterrupt, SystemExit):
            raise
        except AssertionError as exc:
            return CheckResult(Outcome.FAILED, _describe(exc))
        except BaseException as exc:  # noqa: BLE001 - pytest.fail, SystemExit, anything
            return CheckResult(Outcome.ERROR, f"{type(exc).__name__}: {_describe(exc)}")
        return CheckResult(Outcome.PASSED)

    def ground(self, candidate: str, frame_globals: dict, frame_locals: dict,
               why: list[str] | None = None) -> str | None:
        """``candidate`` with its expected value observed in the frame, or None.

        The observed expression is evaluated against a merged copy of the namespace, as in
        :meth:`check`. Returns the screened grounded text; None when the candidate has no
        groundable form, the value has no faithful literal, or the text would need
        ``pytest.approx`` in a module whose name ``pytest`` is something else (a module that
        does not import pytest gets the import when the suggestion is written: see
        :mod:`~.rewrite`).
        """
        return self.ground_in(candidate, merged_namespace(frame_globals, frame_locals), why)

    def ground_in(self, candidate: str, namespace: dict, why: list[str] | None = None) -> str | None:
        """:meth:`ground` on a shared merged namespace (see :meth:`check_in`)."""
        def evaluate(expr: str):
            code = self._expressions.get(expr)
            if code is None:
                code = self._expressions[expr] = compile(expr, CODE_FILENAME, "eval")
            return eval(code, namespace)  # noqa: S307 - a part of a screened candidate

        try:
            grounded = ground(candidate, evaluate, why)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:  # noqa: BLE001 - pytest.fail, SystemExit inside model text
            return None
        if grounded is None:
            return None
        if needs_pytest_import(grounded.text) and "pytest" in namespace \
                and not _is_pytest(namespace["pytest"]):
            if why is not None:
                why.append("its value needs pytest.approx and the module's name pytest is "
                           "something else")
            return None
        normalized, problem = self.screen(grounded.text)
        return normalized if problem is None else None


def merged_namespace(frame_globals: dict, frame_locals: dict) -> dict:
    """One dict of the test's names, locals over globals (a comprehension in a candidate
    sees only its globals), copied: the test's own dicts are never written to."""
    namespace = dict(frame_globals)
    namespace.update(frame_locals)
    return namespace


def _lend_pytest(candidate: str, namespace: dict) -> None:
    """A text with ``pytest.approx`` in a module that does not import pytest: the check gets
    pytest under that name, as the module will once the suggestion is written with its
    import."""
    if "pytest" not in namespace and needs_pytest_import(candidate) and "pytest" in sys.modules:
        namespace["pytest"] = sys.modules["pytest"]


def _is_pytest(module) -> bool:
    return getattr(module, "__name__", None) == "pytest" and hasattr(module, "approx")


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


class FrameTrap:
    """Context manager: call back when the target frame reaches given lines or returns.

    ``on_line`` maps 1-based line numbers to callables taking the frame; ``on_return`` is
    called with the frame when it returns (normally or not: the test's own outcome decides
    whether the evaluation counts).
    """

    def __init__(self, code, on_line: dict | None = None, on_return=None):
        self.code = code
        self.on_line = on_line or {}
        self.on_return = on_return
        self._previous = None

    def __enter__(self) -> FrameTrap:
        self._previous = sys.gettrace()
        sys.settrace(self._global_trace)
        return self

    def __exit__(self, *exc_info) -> None:
        sys.settrace(self._previous)

    def _global_trace(self, frame, event, arg):
        previous = self._previous
        chained = previous(frame, event, arg) if previous is not None else None
        if frame.f_code is not self.code:
            return chained
        return self._local_tracer(chained)

    def _local_tracer(self, chained):
        def local(frame, event, arg):
            nonlocal chained
            if chained is not None:
                chained = chained(frame, event, arg)
            if event == "line" and frame.f_lineno in self.on_line:
                self.on_line[frame.f_lineno](frame)
            elif event == "return" and self.on_return is not None:
                self.on_return(frame)
            return local

        return local
