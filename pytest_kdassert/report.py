"""The ``--kdassert-report`` JSON file: one record per suggestion site."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pytest_kdassert.core.atomic import write_text_atomic
from pytest_kdassert.core.errors import ConfigError

REPORT_VERSION = 1
"""Fields added since (``origin``, ``grounded_from``, ``chosen_origin``, ``exemplars``,
``similarity``, ``rerun``) are additive."""


def site_record(state, display_path: str) -> dict:
    """One site's record: where it is, its focal function, the choice and every candidate."""
    site = state.site
    return {
        "nodeid": site.nodeids[0] if site.nodeids else None,
        "nodeids": list(site.nodeids),
        "file": display_path,
        "line": site.line,
        "function": site.qualname,
        "mode": site.mode,
        "focal": state.focal_name,
        "status": state.status,
        "chosen": state.chosen.text if state.chosen else None,
        "chosen_origin": state.chosen.origin if state.chosen else None,
        "chosen_grounded_from": state.chosen.grounded_from if state.chosen else None,
        "rerun": state.rerun,
        "exemplars": [{"test": e.entry.test_id, "assertion": e.entry.assertion,
                       "similarity": round(e.score, 4)} for e in state.exemplars],
        "candidates": [c.to_dict() for c in state.candidates],
    }


def write_report(path: str | Path, records: list[dict], settings: dict,
                 suggest_seconds: float | None = None,
                 unfilled_placeholders: list[str] | None = None) -> None:
    """Write the report atomically; ``settings`` is the resolved SuggestConfig.

    ``unfilled_placeholders`` lists ``file:line`` of the ``assert ...`` lines left without a
    suggestion (they pass silently).
    """
    payload = {"version": REPORT_VERSION, "settings": settings,
               "suggest_seconds": suggest_seconds,
               "unfilled_placeholders": list(unfilled_placeholders or []), "sites": []}
    write_text_atomic(path, _site_per_line(payload, records))


def _site_per_line(payload: dict, records: list[dict]) -> str:
    """The report with one site record per line: ``json.dumps(indent=...)`` runs the
    encoder in Python, about five times slower than the compact C encoder on a report of
    thousands of sites, and one line per site still reads (and diffs) well."""
    head = json.dumps(payload, indent=2)  # ends with '"sites": []\n}': its last key
    sites = ",\n".join("    " + json.dumps(record, separators=(", ", ": ")) for record in records)
    return head[:-len("]\n}")] + ("\n" + sites + "\n  " if records else "") + "]\n}\n"


def check_report_path(path: str | os.PathLike | None) -> None:
    """Raise ConfigError when a report could not be written at ``path``.

    Called while the plugin's settings are built, so a bad path stops pytest before any
    test runs or any test file is rewritten. Missing directories are fine (they are created).
    """
    if path is None:
        return
    target = Path(path)
    if target.is_dir():
        raise ConfigError(f"--kdassert-report {path} is a directory; name a file in it, "
                          f"e.g. {target / 'kdassert.json'}")
    parent = target.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"--kdassert-report {path}: {parent} is a file, not a directory; "
                          "choose another path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"--kdassert-report {path}: cannot create files in {parent} "
                          "(permission denied); choose a writable directory")
