"""What process isolation costs per site: fork, evaluate, stream back, reap (issue 14).

    python benchmarks/sandbox_roundtrip.py [--candidates 5] [--repeats 200]
                                           [--json benchmarks/sandbox_roundtrip_results.json]

Times, in this process, the ways a site's candidates can run, median and p90 over
``--repeats`` rounds, in milliseconds:

- ``in_process``: ``--candidates`` checks and groundings in the test's process (what
  ``--kdassert-no-isolation`` does);
- ``forked``: the same in one forked child per site (:func:`~pytest_kdassert.sandbox.run_forked`),
  reaped at once; ``forked_reaper``: reaped later by a :class:`~pytest_kdassert.sandbox.Reaper`
  (as the plugin does: the child's teardown runs beside the tests);
- ``standby``: the flakiness guard's child forked before a call and dismissed after it (the
  cost every test with candidates pays when no value was grounded);
- ``standby_go``: the same child told to run a job and answer (a grounded value appeared).

Each is measured twice: bare (the plugin imported, nothing else: the test process, since the
model runs in its own interpreter, :mod:`pytest_kdassert.model_worker`) and after ``torch`` and
the bundled model are loaded in this process (what forking would cost if the model ran in the
test process: page tables are copied at fork).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass

from pytest_kdassert import sandbox
from pytest_kdassert.verify import Verifier


@dataclass(frozen=True)
class RoundtripConfig:
    """Settings of one run (written next to the figures)."""

    candidates: int = 5
    """Candidates per site (the default beam width)."""
    repeats: int = 200
    """Rounds per measurement."""
    json: str | None = None
    """Also write the results here."""

    def __post_init__(self):
        if self.candidates < 1 or self.repeats < 1:
            raise ValueError("candidates and repeats must be >= 1")


def site_work(count: int):
    """``count`` candidate checks with grounding, as one site's tasks and its work function."""
    verifier = Verifier()
    frame_globals = {"total": sum}
    frame_locals = {"cart": [5, 10, 2.5], "result": 17.5}
    texts = [f"assert total(cart) == {i}" if i % 2 else f"assert result == {i}"
             for i in range(count)]

    def work(text: str) -> dict:
        check = verifier.check(text, frame_globals, frame_locals)
        grounded = verifier.ground(text, frame_globals, frame_locals)
        return {"check": [check.outcome.value, check.detail], "grounded": grounded}

    return texts, work


def timed(action, repeats: int) -> dict:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {"median_ms": round(statistics.median(samples), 3),
            "p90_ms": round(samples[int(0.9 * (len(samples) - 1))], 3)}


def measure(config: RoundtripConfig) -> dict:
    texts, work = site_work(config.candidates)

    reaper = sandbox.Reaper()

    def standby_go():
        sandbox.Standby(lambda payload, guard: payload).go(1, timeout=10)

    results = {
        "in_process": timed(lambda: [work(t) for t in texts], config.repeats),
        "forked": timed(lambda: list(sandbox.run_forked(texts, work, timeout=10)),
                        config.repeats),
        "forked_reaper": timed(lambda: list(sandbox.run_forked(texts, work, timeout=10,
                                                                reaper=reaper)),
                               config.repeats),
        "standby": timed(lambda: sandbox.Standby(lambda payload, guard: None).dismiss(),
                         config.repeats),
        "standby_go": timed(standby_go, config.repeats),
    }
    reaper.close()
    return results


def rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return round(int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def load_model() -> None:
    from pytest_kdassert.suggester import ModelSuggester, SuggestRequest

    model = ModelSuggester("default", num_beams=5, threads=1)
    model.suggest([SuggestRequest("t::test_a", "test_a", "add", "def add(a, b):\n    return a + b\n",
                                  "def test_a():\n    x = add(1, 2)\n    <AssertPlaceHolder>\n")])
    load_model.keep = model  # stays loaded while the second round is measured


def run(config: RoundtripConfig) -> dict:
    bare = {"rss_mib": rss_mib(), **measure(config)}
    load_model()
    loaded = {"rss_mib": rss_mib(), **measure(config)}
    return {"config": asdict(config), "python": platform.python_version(),
            "cpus": os.cpu_count(), "bare": bare, "model_loaded": loaded}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=RoundtripConfig.candidates)
    parser.add_argument("--repeats", type=int, default=RoundtripConfig.repeats)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    config = RoundtripConfig(args.candidates, args.repeats, args.json)
    if not sandbox.AVAILABLE:
        raise SystemExit("no os.fork here: nothing to measure")
    result = run(config)
    for name in ("bare", "model_loaded"):
        row = result[name]
        print(f"{name:13} rss {row['rss_mib']:7.1f} MiB  " + "  ".join(
            f"{k} {row[k]['median_ms']:.2f} ms (p90 {row[k]['p90_ms']:.2f})"
            for k in ("in_process", "forked", "forked_reaper", "standby", "standby_go")))
    if config.json:
        with open(config.json, "w") as out:
            json.dump(result, out, indent=2)


if __name__ == "__main__":
    main()
