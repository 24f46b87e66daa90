"""Speed and memory of a model, as ``kdassert bench`` reports them: latency one example at a
time (on one CPU thread, the plugin's setting) and peak RSS measured in a fresh process."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

from distillation import metrics as m
from pytest_kdassert.core.generate import GenerationConfig, generate_candidates

logger = logging.getLogger(__name__)


def measure_latency(predict: Callable[[list[str]], object], sources: Sequence[str],
                    warmup: int = 2) -> dict:
    """p50/p95 milliseconds of ``predict([source])`` over ``sources``, one at a time."""
    for source in sources[:warmup]:
        predict([source])
    times = []
    for source in sources:
        start = time.perf_counter()
        predict([source])
        times.append((time.perf_counter() - start) * 1000)
    return {"p50_ms": m.percentile(times, 50), "p95_ms": m.percentile(times, 95), "n": len(times)}


def cpu_latency(predict, sources: Sequence[str]) -> dict:
    """:func:`measure_latency` with torch limited to one thread (restored afterwards)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return measure_latency(predict, sources)
    finally:
        torch.set_num_threads(threads)


def probe_rss(spec: str, sources: list[str], beams: int, batch_size: int) -> dict:
    """Peak RSS of this process after loading ``spec`` and generating for ``sources``."""
    import resource

    import torch  # noqa: F401 - counted in the baseline
    import transformers  # noqa: F401

    from pytest_kdassert.core.loading import load_seq2seq

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    model, tokenizer = load_seq2seq(spec)
    generate_candidates(model, tokenizer, sources, GenerationConfig(num_beams=beams, batch_size=batch_size))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"rss_after_imports_bytes": baseline, "peak_rss_bytes": peak}


def measure_rss(spec: str, sources: list[str], beams: int, batch_size: int) -> dict:
    """:func:`probe_rss` in a fresh Python process, so other rows do not inflate it."""
    code = ("import json, sys\nfrom distillation.bench_speed import probe_rss\n"
            "a = json.load(sys.stdin)\nprint(json.dumps(probe_rss(*a)))")
    payload = json.dumps([spec, sources, beams, batch_size])
    done = subprocess.run([sys.executable, "-c", code], input=payload, capture_output=True,
                          text=True, timeout=600, check=False)
    if done.returncode != 0:
        logger.warning("peak RSS probe failed for %s: %s", spec, done.stderr.strip()[-300:])
        return {}
    return json.loads(done.stdout.strip().splitlines()[-1])
