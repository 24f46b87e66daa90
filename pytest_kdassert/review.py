"""``--suggest-asserts=review``: show each suggestion as a diff and ask before writing it.

Answers: ``y`` accept, ``n`` reject (the default, also on an empty line), ``a`` accept this
and all the rest, ``q`` reject this and all the rest. End of input counts as ``q``. The
prompt reads stdin, so the plugin suspends pytest's capture first.
"""

from __future__ import annotations

from collections.abc import Callable

PROMPT = "Accept this assertion? [y]es / [N]o / [a]ll / [q]uit: "


def review_changes(changes: list, changeset, ask: Callable[[str], str],
                   write: Callable[[str], None]) -> list:
    """The changes the user accepted, in order."""
    accepted = []
    for index, change in enumerate(changes):
        result = changeset.render(change.path, [change])
        if result.problem is not None:
            write(f"kdassert: skipped {changeset.display_name(change.path)}: {result.problem}\n")
            continue
        write(f"\n[{index + 1}/{len(changes)}] {change.nodeid}\n{result.diff}")
        try:
            answer = ask(PROMPT).strip().lower()[:1]
        except EOFError:
            answer = "q"
        if answer == "y":
            accepted.append(change)
        elif answer == "a":
            accepted.extend(changes[index:])
            break
        elif answer == "q":
            break
    return accepted
