"""End of session: write files or review them, write the JSON report, and tell the user.

:func:`finish` runs in ``pytest_sessionfinish`` (so ``-p no:terminal`` still writes) and
returns the lines to show; :func:`show` prints them with the per-site summary and the diffs
in the terminal summary.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable

from pytest_kdassert.discovery import PLACEHOLDER_MODE
from pytest_kdassert.outcomes import ORIGIN_WORDS, STATUS_WORDS, Status
from pytest_kdassert.report import site_record, write_report
from pytest_kdassert.review import review_changes


def finish(session, interrupted: bool, ask: Callable[[str], str],
           write: Callable[[str], None]) -> list[str]:
    """Decide, then apply, review or only diff, and write the report; the lines to show.

    An interrupted run (Ctrl-C) writes no test file and asks nothing.
    """
    session.decide()
    mode = session.settings.mode
    lines: list[str] = []
    if interrupted and mode != "diff":
        lines.append("kdassert: the run was interrupted; showing diffs, writing nothing")
    elif mode == "apply":
        lines += _apply(session.changeset)
    elif mode == "review":
        lines += _review(session.changeset, ask, write)
    lines += _unfilled_placeholders(session, interrupted)
    report = session.settings.report
    if report:
        states = session.sorted_states()
        records = [site_record(s, session.changeset.display_name(s.site.path)) for s in states]
        write_report(report, records, dataclasses.asdict(session.settings),
                     session.suggest_seconds, unfilled_placeholders(session))
        lines.append(f"kdassert: report written to {report}")
    return lines


def unfilled_placeholders(session) -> list[str]:
    """``file:line`` of every ``assert ...`` placeholder that got no suggestion, in file order."""
    return [f"{session.changeset.display_name(s.site.path)}:{s.site.line}"
            for s in session.sorted_states()
            if s.site.mode == PLACEHOLDER_MODE and s.chosen is None]


def _unfilled_placeholders(session, interrupted: bool) -> list[str]:
    """After writing, say which placeholders are left: ``assert ...`` passes silently."""
    if session.settings.mode == "diff" or interrupted:
        return []
    left = unfilled_placeholders(session)
    if not left:
        return []
    return [f"kdassert: {len(left)} placeholder(s) left without a suggestion; `assert ...` "
            "always passes, so fill or remove them:", *(f"  {where}" for where in left)]


def _apply(changeset) -> list[str]:
    lines = []
    for path in sorted(changeset.changes):
        result = changeset.render(path)
        if result.problem is None:
            result = changeset.write(result)
        lines.append(_written_line(changeset, path, result))
    return lines


def _review(changeset, ask, write) -> list[str]:
    pending = [c for path in sorted(changeset.changes) for c in changeset.changes[path]]
    accepted = review_changes(pending, changeset, ask, write)
    by_file: dict = {}
    for change in accepted:
        by_file.setdefault(change.path, []).append(change)
    lines = [_written_line(changeset, path, changeset.write(changeset.render(path, changes)))
             for path, changes in by_file.items()]
    lines.append(f"kdassert: accepted {len(accepted)} of {len(pending)} suggestion(s)")
    return lines


def _written_line(changeset, path, result) -> str:
    name = changeset.display_name(path)
    if result.problem is not None:
        return f"kdassert: skipped {name}: {result.problem}"
    return f"kdassert: wrote {result.count} assertion(s) to {name}"


def show(session, reporter, lines: list[str], interrupted: bool) -> None:
    """The ``kdassert suggestions`` section of the terminal summary."""
    reporter.section("kdassert suggestions")
    for message in session.messages:
        reporter.write_line(message)
    states = session.sorted_states()
    _describe_sites(states, reporter)
    if session.suggest_seconds is not None:
        candidates = sum(len(s.candidates) for s in states)
        reporter.write_line(f"kdassert: {candidates} candidate(s) generated in "
                            f"{session.suggest_seconds:.1f} s (model load included)")
    for line in lines:
        skipped = line.startswith("kdassert: skipped")
        reporter.write_line(line, yellow=skipped, green=line.startswith("kdassert: wrote"))
    if session.settings.mode == "diff" or interrupted:
        _show_diffs(session.changeset, reporter)


def _show_diffs(changeset, reporter) -> None:
    for path in sorted(changeset.changes):
        result = changeset.render(path)
        if result.problem is not None:
            reporter.write_line(f"kdassert: skipped {changeset.display_name(path)}: "
                                f"{result.problem}", yellow=True)
        else:
            reporter.write(result.diff)
    if changeset.changes:
        reporter.write_line("kdassert: nothing was written; use --suggest-asserts=apply or "
                            "=review to change the files")


def _describe_sites(states, reporter) -> None:
    chosen = [s.chosen for s in states if s.chosen is not None]
    origins = Counter(c.origin for c in chosen)
    by_origin = ", ".join(f"{n} {ORIGIN_WORDS.get(o, o)}" for o, n in sorted(origins.items()))
    reporter.write_line(f"kdassert: {len(states)} site(s) wanting an assertion, "
                        f"{len(chosen)} with a suggestion" + (f" ({by_origin})" if chosen else ""))
    verbose = reporter.verbosity > 0
    for state in states:
        name = site_name(state)
        if state.status == Status.TEST_FAILED and state.ran_mid_test():
            reporter.write_line(f"  {name}: the test failed after kdassert ran candidates at line "
                                f"{state.site.line}, no suggestion; a candidate with a side effect "
                                f"can cause that: check with -p no:kdassert", red=True)
        elif state.status == Status.TEST_FAILED:
            reporter.write_line(f"  {name}: the test fails on its own, no suggestion", red=True)
        elif state.status != Status.SUGGESTED:
            reporter.write_line(f"  {name}: {STATUS_WORDS.get(state.status, state.status)}")
        if verbose:
            _describe_candidates(state, name, reporter)


def site_name(state) -> str:
    """``file::Class::test`` for a site, parametrized instances included (one site, one name)."""
    nodeid = state.site.nodeids[0]
    return nodeid.split("[", 1)[0] if len(state.site.nodeids) > 1 or "[" in nodeid else nodeid


def _describe_candidates(state, name, reporter) -> None:
    focal = state.focal_name or "(none found)"
    reporter.write_line(f"  {name} line {state.site.line}, focal {focal}:")
    for check in state.candidates:
        mark = "*" if check is state.chosen else " "
        score = "" if check.score is None else f" [{check.score:.3f}]"
        detail = f" ({check.detail})" if check.detail else ""
        if check.grounded_from is not None:
            detail += f" (grounded from: {check.grounded_from})"
        reporter.write_line(f"   {mark} {check.outcome:<13} {check.text}{score}{detail}")
