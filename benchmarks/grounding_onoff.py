"""Grounding on vs off on real test suites (issue 6's benchmark).

    python benchmarks/grounding_onoff.py --model runs/.../students/<name>/final \\
        [--projects more-itertools,toml,...] [--per-project 40] [--seed 0] [--threads 0] \\
        [--out benchmarks/grounding_onoff_results.json]

For each held-out project, ``--per-project`` tests are drawn (seeded) from the test split
of the mining corpus (``--data``, one example per test: its lowest-numbered assertion ``#k``).
The project's unpacked source (``~/.cache/kdassert/sources/unpacked/<name>-<version>-*``)
is copied to a temporary directory, the k-th assertion of each drawn test (counted as
the miner counts them: ``flatten_statements`` order, placeholders skipped) is replaced by
``assert ...``, and only those tests are run in a subprocess once per mode, with the copy's package
directory first on ``PYTHONPATH``::

    python -m pytest <node ids> -p no:xdist -p no:cacheprovider -o addopts= \\
        -m "not stress and not slow" --continue-on-collection-errors \\
        --suggest-asserts=diff --kdassert-report R.json --kdassert-model MODEL \\
        --kdassert-ground --kdassert-no-templates | --kdassert-no-ground | --kdassert-ground

(the modes: "on", grounding of the model's own candidates; "off"; "templates", which adds
``assert <variable> == <observed value>`` candidates over the test's variables, ranked by the
model; and "exemplars", the plugin's default, which also adapts the assertions of the
project's most similar other tests; the first three pass ``--kdassert-exemplars=0``). Each report site is matched back to its example by file and test name. Per mode:

- **not run**: the test failed or erred (``test-failed``; this includes tests that fail
  because the removed assertion had a side effect the rest of the test relied on), its
  placeholder was never reached (``not-run``), it was not collected (a conftest import
  error, a missing test dependency), or the run timed out. Not counted below.
- **focal tests**: the other drawn tests.
- **passing %**: focal tests whose site got a verified suggestion.
- **exact %**: focal tests whose chosen suggestion equals the original assertion after
  ``normalize_assertion`` (strict, ``ast.unparse`` text).
- **value exact %**: exact % restricted to value assertions: an ``==``/``is`` comparison
  with a literal on one side (``assert f(x) == 3``, ``assert y is None``) or the unittest
  equivalents (``self.assertEqual(f(x), 3)``, ``self.assertIsNone(y)``).

Prints a markdown table and writes the resolved config, per-project counts and one row per
example (original, chosen text and origin, the model's top candidate and the candidates'
``origin:outcome`` counts, in each mode) as JSON.

The subprocesses inherit the environment, so a suggester plugin named in ``PYTEST_PLUGINS``
(implementing ``pytest_kdassert_suggester``) replaces the model: a way to check the
benchmark itself, e.g. with an oracle that proposes each original assertion with a wrong
literal (grounding on should then match almost every value assertion, off none).
The projects' own test dependencies must be importable (``pip install -r
benchmarks/requirements-grounding.txt``); a project whose conftest fails to import shows up
with all its tests "not run" and a warning.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

from distillation.mining.sources import DEFAULT_CACHE_DIR
from pytest_kdassert.core.assertions import (
    assertion_kind,
    is_placeholder_assert,
    normalize_assertion,
)
from pytest_kdassert.core.atomic import write_text_atomic
from pytest_kdassert.core.records import Example, read_examples
from pytest_kdassert.core.source import flatten_statements
from pytest_kdassert.core.testfuncs import find_test_functions
from pytest_kdassert.grounding import grounding_site

DEFAULT_PROJECTS = ("more-itertools", "toml", "validators", "marshmallow", "click",
                    "python-slugify", "ecdsa", "faker", "pyfakefs", "docutils", "dill", "black",
                    "httpx", "shapely")
"""The test split's projects (none is in the training split), but scikit-learn, whose tests
need a build of its compiled extensions."""
PLACEHOLDER_STMT = "assert ..."
NOT_RUN_STATUSES = frozenset({"test-failed", "not-run"})
MODES = (("on", ("--kdassert-ground", "--kdassert-no-templates", "--kdassert-exemplars=0")),
         ("off", ("--kdassert-no-ground", "--kdassert-exemplars=0")),
         ("templates", ("--kdassert-ground", "--kdassert-exemplars=0")),
         ("exemplars", ("--kdassert-ground",)))
"""Grounding of the model's own candidates, no grounding, grounding plus the templates over
the test's variables (see ``pytest_kdassert/templates.py``), and all that plus the adapted
assertions of the project's other tests (the plugin's default; ``pytest_kdassert/pool.py``)."""
SKIPPED_MARKERS = "not stress and not slow"
"""The projects' own ``addopts`` are dropped (they name plugins that may be missing), and with
them their deselection of stress tests (click's runs 10,000 instances): deselect those here."""
_VALUE_UNITTEST = frozenset({"assertEqual", "assertEquals", "assertAlmostEqual", "assertIs",
                             "assertIsNone", "assertListEqual", "assertTupleEqual",
                             "assertDictEqual", "assertSetEqual", "assertSequenceEqual"})
_PROJECT_MARKERS = ("pyproject.toml", "setup.py", "setup.cfg", "tox.ini")


@dataclass
class GroundingBenchConfig:
    """Settings of one benchmark run (written into the JSON result)."""

    model: str
    """Model directory for ``--kdassert-model``, or ``default``."""
    data: str = "data/corpus/test.jsonl"
    """Test split in the mining schema."""
    projects: tuple[str, ...] = DEFAULT_PROJECTS
    """Held-out projects whose suites are run."""
    per_project: int = 40
    """Tests drawn per project (one placeholder each)."""
    seed: int = 0
    """Seed of the per-project test draw."""
    threads: int = 0
    """``--kdassert-threads`` for generation; 0 leaves torch's default."""
    timeout: float = 1800.0
    """Seconds allowed for one pytest subprocess."""
    out: str = "benchmarks/grounding_onoff_results.json"
    """Where the JSON result goes."""
    cache_dir: str = str(DEFAULT_CACHE_DIR)
    """``kdassert mine``'s source cache; projects are read from its ``unpacked/``."""
    modes: tuple[str, ...] = tuple(mode for mode, _ in MODES)
    """Which of ``MODES`` to run (all of them by default)."""
    exemplars: int | None = None
    """``--kdassert-exemplars`` of the "exemplars" mode (None: the plugin's default)."""
    false_sites: bool = True
    """Also run the drawn tests' files unmodified (no model: a stub suggester) and count the
    sites the plugin finds there: tests it would call assertion-less."""

    def __post_init__(self):
        if self.per_project < 1:
            raise ValueError("per_project must be >= 1")
        if self.timeout <= 0:
            raise ValueError("timeout must be > 0")
        if not self.projects:
            raise ValueError("give at least one project")
        unknown = set(self.modes) - {mode for mode, _ in MODES}
        if unknown or not self.modes:
            raise ValueError(f"modes must be among {[m for m, _ in MODES]}, got {self.modes}")


@dataclass(frozen=True)
class MaskedSite:
    """Where a masked assertion's placeholder now stands in the rewritten file."""

    test_name: str
    line: int
    original: str


# -- selection and masking (pure) -------------------------------------------------------
def example_k(example: Example) -> int:
    """The assertion index ``k`` of an example id ``...#k``."""
    return int(example.id.rsplit("#", 1)[1])


def select_examples(examples, projects, per_project: int, seed: int) -> dict[str, list[Example]]:
    """Per project, ``per_project`` tests (seeded, independent of the other projects), each
    with its lowest-``k`` example, in file/test order."""
    first: dict[str, dict[tuple[str, str], Example]] = defaultdict(dict)
    for example in examples:
        if example.project not in projects:
            continue
        key = (example.test_file, example.test_name)
        kept = first[example.project].get(key)
        if kept is None or example_k(example) < example_k(kept):
            first[example.project][key] = example
    chosen = {}
    for project in projects:
        keys = sorted(first[project])
        rng = random.Random(f"{seed}:{project}")
        picked = rng.sample(keys, min(per_project, len(keys)))
        chosen[project] = [first[project][key] for key in sorted(picked)]
    return chosen


def kth_assertion(test_node: ast.AST, k: int) -> ast.stmt | None:
    """The k-th assertion of a test, counted as the miner counts (placeholders skipped)."""
    found = [stmt for stmt in flatten_statements(test_node.body)
             if assertion_kind(stmt) is not None and not is_placeholder_assert(stmt)]
    return found[k] if 0 <= k < len(found) else None


def _alone_on_lines(lines: list[str], stmt: ast.stmt) -> bool:
    """True when no other code shares the statement's first or last line."""
    first, last = lines[stmt.lineno - 1], lines[stmt.end_lineno - 1]
    rest = last.encode("utf-8")[stmt.end_col_offset:].decode("utf-8", errors="ignore").strip()
    return not first[: stmt.col_offset].strip() and (not rest or rest.startswith("#"))


def mask_assertions(source: str, wanted: dict[str, int]
                    ) -> tuple[str, dict[str, MaskedSite], dict[str, str]]:
    """Replace the ``k``-th assertion of each ``{test name: k}`` by ``assert ...``.

    Returns the new source, the placeholder of each masked test, and why each other test
    was left alone. Line endings and all other lines are kept.
    """
    lines = source.splitlines(keepends=True)
    plain = [line.rstrip("\r\n") for line in lines]
    tests = {test.name: test for test in find_test_functions(ast.parse(source))}
    spans, problems = [], {}
    for name, k in wanted.items():
        stmt = kth_assertion(tests[name].node, k) if name in tests else None
        if stmt is None:
            problems[name] = "test or assertion not found"
        elif not _alone_on_lines(plain, stmt):
            problems[name] = "assertion shares a line with other code"
        else:
            spans.append((stmt.lineno, stmt.end_lineno, name, ast.unparse(stmt)))
    out: list[str] = []
    sites = {}
    cursor = 1
    for start, end, name, original in sorted(spans):
        out.extend(lines[cursor - 1: start - 1])
        first, last = plain[start - 1], lines[end - 1]
        ending = last[len(last.rstrip("\r\n")):] or "\n"
        out.append(first[: len(first) - len(first.lstrip())] + PLACEHOLDER_STMT + ending)
        sites[name] = MaskedSite(name, len(out), original)
        cursor = end + 1
    out.extend(lines[cursor - 1:])
    return "".join(out), sites, problems


def is_value_assertion(text: str) -> bool:
    """An ``==``/``is`` check against a literal, or its unittest form (``assertEqual``...)."""
    if grounding_site(text) is None:
        return False
    stmt = ast.parse(text.strip()).body[0]
    if isinstance(stmt, ast.Assert):
        test = stmt.test
        return isinstance(test, ast.Compare) and isinstance(test.ops[0], (ast.Eq, ast.Is))
    func = stmt.value.func
    return isinstance(func, ast.Attribute) and func.attr in _VALUE_UNITTEST


_PIN_UNITTEST = {"assertEqual": None, "assertEquals": None, "assertIs": None,
                 "assertIsNone": "None", "assertTrue": "True", "assertFalse": "False"}


def _pinned(text: str) -> tuple[str, object] | None:
    """``(expression, value)`` when an assertion pins an expression to one literal value:
    ``assert e == lit``, ``assert e is None``, ``self.assertEqual(e, lit)``, ``assertIsNone(e)``."""
    try:
        stmt = ast.parse(text.strip()).body[0]
    except (SyntaxError, ValueError, IndexError, RecursionError):
        return None
    if isinstance(stmt, ast.Assert) and isinstance(stmt.test, ast.Compare) \
            and len(stmt.test.ops) == 1 and isinstance(stmt.test.ops[0], (ast.Eq, ast.Is)):
        pair = [stmt.test.left, stmt.test.comparators[0]]
    elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call) \
            and isinstance(stmt.value.func, ast.Attribute) \
            and stmt.value.func.attr in _PIN_UNITTEST and stmt.value.args:
        fixed = _PIN_UNITTEST[stmt.value.func.attr]
        pair = stmt.value.args[:2] if fixed is None else [stmt.value.args[0],
                                                           ast.parse(fixed).body[0].value]
    else:
        return None
    if len(pair) != 2:
        return None
    for expr, literal in (pair, pair[::-1]):
        try:
            return ast.unparse(expr), ast.literal_eval(literal)
        except (ValueError, TypeError, SyntaxError, RecursionError):
            continue
    return None


def as_strong(chosen: str | None, original: str) -> bool:
    """Whether the chosen assertion checks at least what the author's did.

    Exact (after normalising); or both pin a value (``==``/``is``, ``assertEqual``,
    ``assertIsNone``, ...) to equal literals of the same type, whatever the names (the test's
    other name for the same value, say); or the chosen one pins, by ``==``/``is``, an
    expression the author's assertion only checks loosely (``len(x) == 3`` against
    ``len(x) > 0``, ``x == 'ab'`` against ``'a' in x``).
    """
    if chosen is None:
        return False
    if normalize_assertion(chosen) == normalize_assertion(original):
        return True
    ours, theirs = _pinned(chosen), _pinned(original)
    if ours is None:
        return False
    if theirs is not None:
        return type(ours[1]) is type(theirs[1]) and ours[1] == theirs[1]
    try:
        checked = {ast.unparse(node) for node in ast.walk(ast.parse(original.strip()))
                   if isinstance(node, ast.expr)}
    except (SyntaxError, ValueError, RecursionError):
        return False
    return ours[0] in checked


def score_site(example: Example, record: dict | None) -> dict:
    """One mode's outcome for an example: ran, passing, exact, and candidate outcomes
    (``origin:outcome`` counts) with the model's top text, for reading the numbers."""
    if record is None:
        return {"status": "not-collected", "ran": False, "passing": False, "exact": False,
                "strong": False,
                "chosen": None, "origin": None, "model_top": None, "outcomes": {}}
    chosen = record.get("chosen")
    passing = record.get("status") == "suggested" and chosen is not None
    exact = passing and normalize_assertion(chosen) == normalize_assertion(example.assertion)
    candidates = record.get("candidates", [])
    outcomes: dict[str, int] = {}
    for cand in candidates:
        key = f"{cand.get('origin') or 'model'}:{cand.get('outcome')}"
        outcomes[key] = outcomes.get(key, 0) + 1
    return {"status": record.get("status"), "ran": record.get("status") not in NOT_RUN_STATUSES,
            "passing": passing, "exact": bool(exact), "chosen": chosen,
            "strong": passing and as_strong(chosen, example.assertion),
            "origin": record.get("chosen_origin"),
            "model_top": candidates[0]["text"] if candidates else None, "outcomes": outcomes}


def tally(rows: list[dict], mode: str) -> dict:
    """Counts and percentages of one mode over example rows."""
    ran = [r for r in rows if r[mode]["ran"]]
    values = [r for r in ran if r["value_assertion"]]
    counts = {"tests": len(rows), "not_run": len(rows) - len(ran), "focal": len(ran),
              "passing": sum(r[mode]["passing"] for r in ran),
              "exact": sum(r[mode]["exact"] for r in ran),
              "strong": sum(r[mode].get("strong", False) for r in ran),
              "value_focal": len(values), "value_exact": sum(r[mode]["exact"] for r in values)}
    counts["passing_pct"] = _pct(counts["passing"], counts["focal"])
    counts["exact_pct"] = _pct(counts["exact"], counts["focal"])
    counts["strong_pct"] = _pct(counts["strong"], counts["focal"])
    counts["value_exact_pct"] = _pct(counts["value_exact"], counts["value_focal"])
    return counts


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


# -- running a project ------------------------------------------------------------------
def source_tree(project: str, cache_dir: str) -> Path:
    """The unpacked source of ``project`` (the last version in name order when several)."""
    unpacked = Path(cache_dir).expanduser() / "unpacked"
    found = sorted(p for p in unpacked.glob(f"{project}-*") if p.is_dir()
                   and p.name[len(project) + 1:][:1].isdigit())
    if not found:
        raise SystemExit(f"{project}: no unpacked source under {unpacked}; "
                         f"mine it with `kdassert mine pypi:{project}==VERSION`.")
    return found[-1]


def project_dirs(tree: Path, test_file: str) -> tuple[Path, Path]:
    """``(pytest run dir, import dir)``: the directory with the project's metadata (else the
    tree itself), and its ``src/`` when there is one."""
    top = tree / Path(test_file).parts[0]
    run_dir = top if top.is_dir() and any((top / m).exists() for m in _PROJECT_MARKERS) \
        else tree
    return run_dir, (run_dir / "src" if (run_dir / "src").is_dir() else run_dir)


def prepare_copy(tree: Path, examples: list[Example]) -> tuple[dict, dict]:
    """Mask the drawn examples in ``tree`` (a copy, edited in place).

    Returns ``{example id: (path relative to tree, MaskedSite)}`` and ``{id: problem}``.
    """
    by_file: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        by_file[example.test_file].append(example)
    sites, problems = {}, {}
    for test_file, group in by_file.items():
        path = tree / test_file
        source = path.read_text(encoding="utf-8")
        new, masked, why = mask_assertions(source, {e.test_name: example_k(e) for e in group})
        for example in group:
            site = masked.get(example.test_name)
            if site is None:
                problems[example.id] = why.get(example.test_name, "not masked")
            elif site.original != example.assertion:
                problems[example.id] = f"assertion differs from the corpus: {site.original!r}"
            else:
                sites[example.id] = (test_file, site)
        path.write_bytes(new.encode("utf-8"))
    return sites, problems


def node_id(run_dir: Path, tree: Path, test_file: str, test_name: str) -> str:
    rel = (tree / test_file).relative_to(run_dir).as_posix()
    return rel + "::" + test_name.replace(".", "::")


def collectable(run_dir: Path, import_dir: Path, nodeids: list[str], config: GroundingBenchConfig,
                extra_paths: list[str] = ()) -> list[str]:
    """The node ids pytest collects. A test file that fails to import (a missing test
    dependency, a sibling module imported by plain name) would otherwise stop the whole run:
    pytest refuses a node id it found no collector for."""
    files = sorted({n.split("::", 1)[0] for n in nodeids})
    cmd = [sys.executable, "-m", "pytest", *files, "--collect-only", "-q", "-p", "no:xdist",
           "-p", "no:cacheprovider", "-p", "no:kdassert", "-o", "addopts=",
           "--continue-on-collection-errors", "--rootdir", str(run_dir)]
    paths = [str(import_dir), *extra_paths, *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    try:
        proc = subprocess.run(cmd, cwd=run_dir, env=env, capture_output=True, text=True,
                              timeout=config.timeout)
    except subprocess.TimeoutExpired:
        return nodeids
    collected = {line.split("[", 1)[0] for line in proc.stdout.splitlines() if "::" in line}
    return [n for n in nodeids if n in collected]


def run_plugin(run_dir: Path, import_dir: Path, nodeids: list[str], flags: tuple[str, ...], report: Path,
               config: GroundingBenchConfig, extra_paths: list[str] = (),
               plugins: str | None = None) -> tuple[dict | None, float, str]:
    """Run pytest with the plugin; ``(report or None, seconds, its output)``."""
    cmd = [sys.executable, "-m", "pytest", *nodeids, "-p", "no:xdist", "-p", "no:cacheprovider",
           "-o", "addopts=", "-m", SKIPPED_MARKERS, "--continue-on-collection-errors",
           "--rootdir", str(run_dir), "-q", "--suggest-asserts=diff", "--kdassert-report", str(report),
           "--kdassert-model", config.model, *flags]
    if config.threads:
        cmd += ["--kdassert-threads", str(config.threads)]
    paths = [str(import_dir), *extra_paths, *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    if plugins:
        env["PYTEST_PLUGINS"] = plugins
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=run_dir, env=env, capture_output=True, text=True,
                              timeout=config.timeout)
        output = proc.stdout + proc.stderr
    except subprocess.TimeoutExpired:
        output = f"timed out after {config.timeout:.0f} s"
    seconds = time.perf_counter() - start
    payload = json.loads(report.read_text()) if report.exists() else None
    return payload, seconds, output


def bench_project(project: str, examples: list[Example], config: GroundingBenchConfig) -> dict:
    """Mask, run in both modes, and score one project's drawn tests."""
    original = source_tree(project, config.cache_dir)
    with tempfile.TemporaryDirectory(prefix=f"kdassert-ground-{project}-") as tmp:
        tree = Path(tmp) / original.name
        shutil.copytree(original, tree, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        sites, problems = prepare_copy(tree, examples)
        run_dir, import_dir = project_dirs(tree, examples[0].test_file)
        kept = [e for e in examples if e.id in sites]
        nodeids = collectable(run_dir, import_dir,
                              [node_id(run_dir, tree, e.test_file, e.test_name) for e in kept], config)
        rows = [{"id": e.id, "original": e.assertion,
                 "value_assertion": is_value_assertion(e.assertion)} for e in kept]
        runs = {}
        for mode, flags in MODES:
            if mode not in config.modes:
                continue
            if mode == "exemplars" and config.exemplars is not None:
                flags = (*flags, f"--kdassert-exemplars={config.exemplars}")
            report = Path(tmp) / f"report-{mode}.json"
            payload, seconds, output = (
                run_plugin(run_dir, import_dir, nodeids, flags, report, config) if nodeids
                else (None, 0.0, "no drawn test could be collected"))  # no ids: pytest runs all
            records = _records_by_test(payload)
            for row, example in zip(rows, kept, strict=True):
                test_file, site = sites[example.id]
                key = ((tree / test_file).relative_to(run_dir).as_posix(), site.test_name)
                row[mode] = score_site(example, records.get(key))
            runs[mode] = {"seconds": round(seconds, 1), "report": payload is not None,
                          "kdassert_lines": _kdassert_lines(output),
                          "output_tail": output[-2000:] if payload is None else ""}
            _log(f"{project} mode {mode}: {len(kept)} tests, {seconds:.0f} s")
            _warn_if_broken(project, mode, payload, runs[mode]["kdassert_lines"], output)
    result = {"project": project, "source": original.name, "problems": problems, "runs": runs,
              **{mode: tally(rows, mode) for mode in config.modes}, "examples": rows}
    if config.false_sites:
        result["unmodified"] = false_sites(original, sorted({e.test_file for e in examples}),
                                           config)
        _log(f"{project} unmodified: {result['unmodified']['sites']} site(s) in "
             f"{result['unmodified']['tests']} tests")
    return result


STUB_SUGGESTER = '''
import pytest


class _NoCandidates:
    def suggest(self, requests):
        return [[] for _ in requests]


@pytest.hookimpl(optionalhook=True)
def pytest_kdassert_suggester(config):
    return _NoCandidates()
'''


def false_sites(original: Path, test_files: list[str], config: GroundingBenchConfig) -> dict:
    """Sites the plugin finds in unmodified test files (every one of their tests already
    checked something when its author wrote it, except tests written to check nothing)."""
    with tempfile.TemporaryDirectory(prefix="kdassert-unmodified-") as tmp:
        tree = Path(tmp) / original.name
        shutil.copytree(original, tree, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        run_dir, import_dir = project_dirs(tree, test_files[0])
        (Path(tmp) / "kdassert_bench_stub.py").write_text(STUB_SUGGESTER)
        files = [(tree / f).relative_to(run_dir).as_posix() for f in test_files]
        junit = Path(tmp) / "junit.xml"
        report = Path(tmp) / "report.json"
        env_paths = [tmp]
        payload, seconds, _ = run_plugin(run_dir, import_dir, files, (f"--junitxml={junit}",),
                                         report, config, extra_paths=env_paths,
                                         plugins="kdassert_bench_stub")
        tests = _junit_tests(junit)
    sites = payload["sites"] if payload else []
    return {"files": len(files), "tests": tests, "sites": len(sites),
            "sites_pct": _pct(len(sites), tests), "seconds": round(seconds, 1),
            "site_tests": sorted({s["function"] for s in sites})}


def _junit_tests(path: Path) -> int:
    """Test cases run (skips excluded) in a junit XML file; 0 when it is missing."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return 0
    cases = root.iter("testcase")
    return sum(1 for case in cases if case.find("skipped") is None)


def _records_by_test(payload: dict | None) -> dict:
    """Report sites keyed by (file relative to the run dir = rootdir, test qualname)."""
    if payload is None:
        return {}
    return {(Path(rec["file"]).as_posix(), rec["function"]): rec for rec in payload["sites"]}


def _kdassert_lines(output: str) -> list[str]:
    """The plugin's own summary lines (model missing, sites found, ...)."""
    return [line for line in output.splitlines() if line.startswith("kdassert:")]


def _warn_if_broken(project: str, mode: str, payload, lines: list[str], output: str) -> None:
    """Say so when a whole run produced nothing to score (conftest error, model missing)."""
    if payload is None:
        _log(f"  {project} ({mode}): no report; output ends with:\n{output[-600:]}")
    for line in lines:
        if "no suggestions" in line:
            _log(f"  {project} ({mode}): {line}")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- output -----------------------------------------------------------------------------
def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def format_table(results: list[dict], total: dict) -> str:
    """Markdown table: per project and total, one figure per mode (off / on / tpl / ex)."""
    order = [m for m in ("off", "on", "templates", "exemplars") if m in total]
    short = {"templates": "tpl", "exemplars": "ex"}
    names = " / ".join(short.get(m, m) for m in order)
    head = (f"| project | tests | not run {names.replace(' ', '')} | focal | passing % {names} "
            f"| exact % {names} | as strong % {names} | value asserts "
            f"| value exact % {names} |")
    lines = [head, "|" + "---|" * 9]
    for res in [*results, total]:
        tallies = [res[m] for m in order]
        focal = "/".join(dict.fromkeys(str(t["focal"]) for t in tallies))
        cells = {key: " / ".join(_fmt(t[key]) for t in tallies)
                 for key in ("passing_pct", "exact_pct", "strong_pct", "value_exact_pct")}
        lines.append(
            f"| {res['project']} | {tallies[0]['tests']} "
            f"| {'/'.join(str(t['not_run']) for t in tallies)} | {focal} "
            f"| {cells['passing_pct']} | {cells['exact_pct']} | {cells['strong_pct']} "
            f"| {tallies[0]['value_focal']} "
            f"| {cells['value_exact_pct']} |")
    return "\n".join(lines)


def value_gain_line(total: dict) -> str:
    if "on" not in total or "off" not in total:
        return ""
    on, off = total["on"]["value_exact_pct"], total["off"]["value_exact_pct"]
    if on is None or off is None:
        return "No value assertion among the focal tests: no grounding gain to report."
    return (f"Value-assertion exact match: {on:.1f}% with grounding, {off:.1f}% without "
            f"({on - off:+.1f} points; {total['on']['value_exact']} vs "
            f"{total['off']['value_exact']} of {total['on']['value_focal']}).")


def run_benchmark(config: GroundingBenchConfig) -> dict:
    """Every project, then totals; writes ``config.out`` and returns the result."""
    chosen = select_examples(read_examples(config.data), config.projects, config.per_project,
                             config.seed)
    start = time.perf_counter()
    results = [bench_project(p, chosen[p], config) for p in config.projects if chosen[p]]
    rows = [row for res in results for row in res["examples"]]
    total = {"project": "**total**", **{mode: tally(rows, mode) for mode in config.modes}}
    if config.false_sites:
        unmodified = [r["unmodified"] for r in results]
        tests, sites = sum(u["tests"] for u in unmodified), sum(u["sites"] for u in unmodified)
        total["unmodified"] = {"tests": tests, "sites": sites, "sites_pct": _pct(sites, tests)}
    result = {"config": asdict(config), "seconds": round(time.perf_counter() - start, 1),
              "total": total, "projects": results,
              "skipped_projects": [p for p in config.projects if not chosen[p]]}
    write_text_atomic(config.out, json.dumps(result, indent=2) + "\n")
    return result


def parse_args(argv=None) -> GroundingBenchConfig:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model directory or `default`")
    parser.add_argument("--data", default=GroundingBenchConfig.data)
    parser.add_argument("--projects", default=",".join(DEFAULT_PROJECTS),
                        help="comma-separated project names (as in the corpus)")
    parser.add_argument("--per-project", type=int, default=GroundingBenchConfig.per_project)
    parser.add_argument("--seed", type=int, default=GroundingBenchConfig.seed)
    parser.add_argument("--threads", type=int, default=GroundingBenchConfig.threads)
    parser.add_argument("--timeout", type=float, default=GroundingBenchConfig.timeout)
    parser.add_argument("--out", default=GroundingBenchConfig.out)
    parser.add_argument("--modes", default=",".join(m for m, _ in MODES),
                        help="comma-separated subset of on,off,templates")
    parser.add_argument("--exemplars", type=int, default=None,
                        help="exemplars retrieved per site in the exemplars mode (default: the plugin's)")
    parser.add_argument("--no-false-sites", action="store_true",
                        help="skip the run of the unmodified test files")
    parser.add_argument("--cache-dir", default=GroundingBenchConfig.cache_dir,
                        help="kdassert mine's source cache (holds unpacked/)")
    args = parser.parse_args(argv)
    projects = tuple(p.strip() for p in args.projects.split(",") if p.strip())
    model = args.model if args.model == "default" else str(Path(args.model).resolve())
    return GroundingBenchConfig(model=model, data=args.data, projects=projects,
                                per_project=args.per_project, seed=args.seed,
                                threads=args.threads, timeout=args.timeout, out=args.out,
                                cache_dir=args.cache_dir, false_sites=not args.no_false_sites,
                                exemplars=args.exemplars,
                                modes=tuple(m.strip() for m in args.modes.split(",") if m.strip()))


def main(argv=None) -> None:
    config = parse_args(argv)
    result = run_benchmark(config)
    print(format_table(result["projects"], result["total"]))
    print()
    print(value_gain_line(result["total"]))
    unmodified = result["total"].get("unmodified")
    if unmodified:
        print(f"Unmodified files: {unmodified['sites']} site(s) in {unmodified['tests']} tests "
              f"({_fmt(unmodified['sites_pct'])}%), a test with no check of its own counting "
              "as one.")
    print(f"{result['total'][config.modes[0]]['tests']} tests in {result['seconds']:.0f} s; "
          f"JSON: {config.out}")


if __name__ == "__main__":
    main()
