"""End of session: print diffs, write files or review them, and write the JSON report."""

from __future__ import annotations

import dataclasses
from collections import Counter

from pytest_kdassert.changes import Change
from pytest_kdassert.report import site_record, write_report
from pytest_kdassert.review import review_changes
from pytest_kdassert.session import ran_mid_test

ORIGIN_WORDS = {"model": "model text", "grounded": "model text + observed value",
                "template": "variable template", "observed": "variable + observed value"}
"""How the one-line summary names each candidate origin (see :mod:`.verify`)."""


def finish(session, reporter, interrupted: bool = False) -> None:
    """Everything ``--suggest-asserts`` prints and writes after the tests ran.

    An interrupted run (Ctrl-C) only prints diffs: it writes no file and asks nothing.
    """
    settings = session.settings
    states = sorted(session.states.values(), key=lambda s: (str(s.site.path), s.site.line))
    reporter.section("kdassert suggestions")
    for message in session.messages:
        reporter.write_line(message)
    _describe_sites(states, reporter)
    if session.suggest_seconds is not None:
        candidates = sum(len(s.candidates) for s in states)
        reporter.write_line(f"kdassert: {candidates} candidate(s) generated in "
                            f"{session.suggest_seconds:.1f} s (model load included)")
    for state in states:
        if state.chosen is not None:
            site = state.site
            session.changeset.add(Change(site.path, site.qualname, site.line, site.mode,
                                         state.chosen.text, site.nodeids[0]))
    if interrupted and settings.mode != "diff":
        reporter.write_line("kdassert: the run was interrupted; showing diffs, writing nothing")
        _diff_or_apply(session, reporter, write=False)
    elif settings.mode == "review":
        _review(session, reporter)
    else:
        _diff_or_apply(session, reporter, write=settings.mode == "apply")
    if settings.report:
        records = [site_record(s, session.changeset.display_name(s.site.path)) for s in states]
        write_report(settings.report, records, dataclasses.asdict(settings),
                     session.suggest_seconds)
        reporter.write_line(f"kdassert: report written to {settings.report}")


def _describe_sites(states, reporter) -> None:
    chosen = [s.chosen for s in states if s.chosen is not None]
    origins = Counter(c.origin for c in chosen)
    by_origin = ", ".join(f"{n} {ORIGIN_WORDS.get(o, o)}" for o, n in sorted(origins.items()))
    reporter.write_line(f"kdassert: {len(states)} site(s) wanting an assertion, "
                        f"{len(chosen)} with a suggestion" + (f" ({by_origin})" if chosen else ""))
    verbose = reporter.verbosity > 0
    for state in states:
        name = state.site.nodeids[0]
        if state.status == "test-failed" and ran_mid_test(state):
            reporter.write_line(f"  {name}: the test failed after kdassert ran candidates at line "
                                f"{state.site.line}, no suggestion; a candidate with a side effect "
                                f"can cause that: check with -p no:kdassert", red=True)
        elif state.status == "test-failed":
            reporter.write_line(f"  {name}: the test fails on its own, no suggestion", red=True)
        elif state.status != "suggested":
            reporter.write_line(f"  {name}: {state.status.replace('-', ' ')}")
        if verbose:
            focal = state.focal_name or "(none found)"
            reporter.write_line(f"  {name} line {state.site.line}, focal {focal}:")
            for check in state.candidates:
                mark = "*" if check is state.chosen else " "
                score = "" if check.score is None else f" [{check.score:.3f}]"
                detail = f" ({check.detail})" if check.detail else ""
                if check.grounded_from is not None:
                    detail += f" (grounded from: {check.grounded_from})"
                reporter.write_line(f"   {mark} {check.outcome:<13} {check.text}{score}{detail}")


def _diff_or_apply(session, reporter, write: bool) -> None:
    changeset = session.changeset
    for path in sorted(changeset.changes):
        result = changeset.render(path)
        name = changeset.display_name(path)
        if result.problem is None and write:
            result = changeset.write(result)
        if result.problem is not None:
            reporter.write_line(f"kdassert: skipped {name}: {result.problem}", yellow=True)
        elif write:
            reporter.write_line(f"kdassert: wrote {result.count} assertion(s) to {name}", green=True)
        else:
            reporter.write(result.diff)
    if changeset.changes and not write:
        reporter.write_line("kdassert: nothing was written; use --suggest-asserts=apply or "
                            "=review to change the files")


def _review(session, reporter) -> None:
    changeset = session.changeset
    capman = session.config.pluginmanager.get_plugin("capturemanager")
    if capman is not None:
        capman.suspend_global_capture(in_=True)
    pending = [c for path in sorted(changeset.changes) for c in changeset.changes[path]]
    accepted = review_changes(pending, changeset, input, reporter.write)
    by_file: dict = {}
    for change in accepted:
        by_file.setdefault(change.path, []).append(change)
    for path, changes in by_file.items():
        result = changeset.write(changeset.render(path, changes))
        name = changeset.display_name(path)
        if result.problem is not None:
            reporter.write_line(f"kdassert: skipped {name}: {result.problem}", yellow=True)
        else:
            reporter.write_line(f"kdassert: wrote {result.count} assertion(s) to {name}", green=True)
    reporter.write_line(f"kdassert: accepted {len(accepted)} of {len(pending)} suggestion(s)")
