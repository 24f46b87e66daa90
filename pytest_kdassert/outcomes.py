"""The words a run uses for candidates and sites, defined once.

They are ``str`` enums, so they compare equal to their values and serialise as them: the JSON
report and the benchmarks that read it see the same plain strings as before.
"""

from __future__ import annotations

import enum


class _Word(str, enum.Enum):
    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


class Outcome(_Word):
    """What verification made of one candidate."""

    PASSED = "passed"
    FAILED = "failed"  # raised AssertionError
    ERROR = "error"  # raised anything else
    SYNTAX = "syntax"  # does not parse as one statement
    NOT_ASSERTION = "not-assertion"
    TRIVIAL = "trivial"  # asserts a constant: proves nothing
    NOT_REACHED = "not-reached"  # the site never executed (test skipped, failed before it, ...)
    UNVERIFIED = "unverified"  # --kdassert-no-verify
    UNSTABLE = "unstable"  # grounded value differed between runs of the site
    REDUNDANT = "redundant"  # the test already asserts it, or it restates a literal the test set
    UNSAFE = "unsafe"  # refused by the allow-list (pytest_kdassert.safety): never ran
    TIMEOUT = "timeout"  # ran past --kdassert-timeout: its child was killed
    CRASHED = "crashed"  # ended its child (os._exit, a signal) or raised KeyboardInterrupt/SystemExit


class Origin(_Word):
    """Where a candidate came from."""

    MODEL = "model"  # the model's text as-is
    GROUNDED = "grounded"  # the model's text with the observed value filled in
    TEMPLATE = "template"  # ``assert <expr> == 0`` over a test variable or an object's state
    OBSERVED = "observed"  # a template with the observed value filled in
    EXEMPLAR = "exemplar"  # another test's assertion, renamed to this test's names
    RECALLED = "recalled"  # an exemplar with the observed value filled in


ORIGIN_WORDS = {Origin.MODEL: "written by the model",
                Origin.GROUNDED: "the model's check with the value seen in the run",
                Origin.TEMPLATE: "a check of a test variable or object",
                Origin.OBSERVED: "a test variable or object with the value seen in the run",
                Origin.EXEMPLAR: "a check another test of the project makes",
                Origin.RECALLED: "another test's check with the value seen in the run"}
"""How the summary names each origin, in words a reader needs no legend for."""

GROUNDABLE = {Origin.MODEL: Origin.GROUNDED, Origin.TEMPLATE: Origin.OBSERVED,
              Origin.EXEMPLAR: Origin.RECALLED}
"""Origins whose candidates are grounded, and the origin of what grounding makes of them."""


class Status(_Word):
    """What became of a site."""

    PENDING = "pending"
    SUGGESTED = "suggested"
    TEST_FAILED = "test-failed"
    NO_CANDIDATES = "no-candidates"
    NOT_RUN = "not-run"
    NO_VERIFIED_CANDIDATE = "no-verified-candidate"


STATUS_WORDS = {
    Status.PENDING: "not decided",
    Status.NO_CANDIDATES: "no candidates (no model output, nothing to check)",
    Status.NOT_RUN: "not run: the test was skipped, deselected or stopped before this line",
    Status.NO_VERIFIED_CANDIDATE: "no verified candidate: none of them passed here (-v lists why)",
}
"""Why a site got no suggestion, as the summary says it."""
