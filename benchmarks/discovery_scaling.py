"""What ``--suggest-asserts`` costs on one big test file, generation left out.

    python benchmarks/discovery_scaling.py [--tests 3000] [--repeats 3] [--json FILE]
                                           [--suggest-args="--kdassert-no-isolation"]

Writes one test file of ``--tests`` tests (a third with an ``assert ...`` placeholder, a
third asserting nothing, a third already asserting) over a small focal module, and a
conftest whose ``pytest_kdassert_suggester`` answers every site with two fixed candidates
at once, so no model is loaded and generation costs nothing. Then it times, in fresh
subprocesses, ``pytest -p no:kdassert`` and ``pytest --suggest-asserts`` (median of
``--repeats`` each, the two interleaved). Discovery, focal resolution, verification of the candidates and the
diff are all in the second figure. The target (issue 14) is at most twice the plain run plus
generation: ``generation_s`` is the plugin's own "candidates generated in" time (the
suggester, in-project exemplar retrieval and ranking, screening), read from its report, and
``ratio_less_generation`` is (suggest - generation) / plain.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

from plugin_overhead import timed_run  # benchmarks/ is the script's own directory

FOCAL = '''
def scale(values, factor):
    return [v * factor for v in values]
'''

CONFTEST = '''
import pytest


class FixedSuggester:
    def suggest(self, requests):
        return [["assert result == [1, 2]", "assert len(result) == 3"] for _ in requests]


@pytest.hookimpl(optionalhook=True)  # unknown when the plugin is off
def pytest_kdassert_suggester(config):
    return FixedSuggester()
'''

TESTS = (
    '''
def test_placeholder_{i}():
    result = scale([{i}, 1, 2], 2)
    assert ...
''',
    '''
def test_no_assert_{i}():
    result = scale([{i}, 1, 2], 3)
''',
    '''
def test_asserting_{i}():
    result = scale([{i}], 1)
    assert result == [{i}]
''',
)


def write_suite(root: Path, tests: int) -> None:
    (root / "focal.py").write_text(FOCAL)
    (root / "conftest.py").write_text(CONFTEST)
    parts = ["from focal import scale\n"]
    parts += [TESTS[i % len(TESTS)].format(i=i) for i in range(tests)]
    (root / "test_big.py").write_text("".join(parts))


def timed(root: Path, *args: str) -> float:
    return timed_run(root, *args)[0]


def run(tests: int, repeats: int, suggest_args: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="kdassert-discovery-") as tmp:
        root = Path(tmp)
        write_suite(root, tests)
        timed(root, "-p", "no:kdassert")  # warm the file cache and .pyc files
        report = root / "report.json"
        plains, runs = [], []
        for _ in range(repeats):  # interleaved: a slower or faster spell of the machine hits both
            plains.append(timed(root, "-p", "no:kdassert"))
            seconds = timed(root, "--suggest-asserts", f"--kdassert-report={report}", *suggest_args)
            runs.append((seconds, json.loads(report.read_text())["suggest_seconds"]))
        plain = statistics.median(plains)
        suggest = statistics.median(seconds for seconds, _ in runs)
        generation = statistics.median(generation for _, generation in runs)
        sites = json.loads(report.read_text())["sites"]
    return {
        "tests": tests,
        "sites": len(sites),
        "suggested": sum(s["status"] == "suggested" for s in sites),
        "plain_s": round(plain, 3),
        "suggest_s": round(suggest, 3),
        "ratio": round(suggest / plain, 2),
        "generation_s": round(generation, 3),
        "ratio_less_generation": round((suggest - generation) / plain, 2),
        "target_ratio": 2.0,
        "suggest_args": suggest_args,
        "load_average_1m_after": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--suggest-args", default="",
                        help="extra arguments for the suggesting run, space-separated")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    cli = parser.parse_args()
    results = run(cli.tests, cli.repeats, cli.suggest_args.split())
    text = json.dumps(results, indent=2)
    print(text)
    if cli.json:
        Path(cli.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
