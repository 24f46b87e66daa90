"""What ``pytest --suggest-asserts`` costs on top of a plain test run, and what the plugin
costs when installed but not asked for.

    python benchmarks/plugin_overhead.py [--tests 200] [--beams 5] [--repeats 3]
                                         [--model default] [--json runs/bench/plugin_overhead.json]
                                         [--plugin-args '--kdassert-no-isolation']
                                         [--suggest-repeats 1]

Generates a suite of ``--tests`` focal tests (half with an ``assert ...`` placeholder, half
without any assertion) over a small focal module. ``--model`` names the model to time
(``default``: the bundled student); without it a random-init ``student`` preset with an 8k
vocabulary is built (random weights never emit ``</s>`` early, so every candidate runs to
the full ``--target-tokens``: a worst case). Then it times
in fresh subprocesses:
  1. ``pytest -p no:kdassert`` (plugin switched off) and plain ``pytest`` (plugin installed,
     no flag): median of ``--repeats`` runs each; target: no measurable difference;
  2. ``pytest --suggest-asserts --kdassert-model DIR``: model load, generation, verification
     and diff included; target: under 30 s more than the plain run. ``--target-tokens 24``
     approximates a trained student that stops after a typical assertion.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

FOCAL = '''
def total(prices, discount=0.0):
    """Sum of prices after a fractional discount."""
    if not 0.0 <= discount <= 1.0:
        raise ValueError("discount must be in [0, 1]")
    return round(sum(prices) * (1.0 - discount), 2)


def normalize(name):
    return " ".join(part.capitalize() for part in name.split())


class Cart:
    def __init__(self):
        self.items = []

    def add(self, name, price, qty=1):
        self.items.extend([(name, price)] * qty)
        return len(self.items)
'''

TEST_PLACEHOLDER = '''
def test_total_{i}():
    prices = [{a}, {b}, {c}]
    result = total(prices, discount=0.{d})
    assert ...
'''

TEST_NO_ASSERT = '''
def test_cart_{i}():
    cart = Cart()
    count = cart.add("item{i}", {a}, qty={d})
    label = normalize("item number {i}")
'''


@dataclass(frozen=True)
class OverheadConfig:
    """Settings of the plugin-overhead benchmark."""

    tests: int = 200
    """Focal tests in the generated suite."""
    tests_per_file: int = 10
    beams: int = 5
    """--kdassert-beams for the suggesting run."""
    repeats: int = 3
    """Runs of each plain configuration; the median is reported."""
    threads: int = 1
    """--kdassert-threads: 1 because this machine's 2 cores are shared (see the README)."""
    model: str | None = None
    """A trained model directory or ``default`` (the bundled student); None builds a random one."""
    preset: str = "student"
    vocab_size: int = 8192
    target_tokens: int = 64
    """max_target_tokens saved with the model = new tokens per candidate for random weights
    (which never stop early). 64 is the worst case; a trained student stops at ``</s>``."""
    plugin_args: tuple[str, ...] = ()
    """Extra options for the suggesting run (e.g. ``--kdassert-no-isolation``)."""
    suggest_repeats: int = 1
    """Suggesting runs; the median is reported."""

    def __post_init__(self):
        if self.target_tokens < 4:
            raise ValueError("target_tokens must be >= 4")
        if min(self.tests, self.tests_per_file, self.beams, self.repeats,
               self.suggest_repeats) < 1:
            raise ValueError("tests, tests_per_file, beams and the repeats must be >= 1")


def write_suite(root: Path, config: OverheadConfig) -> None:
    (root / "shop.py").write_text(FOCAL)
    (root / "conftest.py").write_text("")
    for start in range(0, config.tests, config.tests_per_file):
        parts = ["from shop import Cart, normalize, total\n"]
        for i in range(start, min(start + config.tests_per_file, config.tests)):
            template = TEST_PLACEHOLDER if i % 2 == 0 else TEST_NO_ASSERT
            parts.append(template.format(i=i, a=i % 7 + 1, b=i % 5 + 2, c=i % 3, d=i % 4 + 1))
        (root / f"test_suite_{start // config.tests_per_file:03d}.py").write_text("\n".join(parts))


def build_random_model(directory: Path, suite: Path, config: OverheadConfig) -> int:
    """Save a random-init model + tokenizer; returns its parameter count."""
    import torch

    from distillation.models import build_model, count_parameters
    from distillation.tokenizer import TokenizerConfig, train_tokenizer
    from pytest_kdassert.core.input_format import InputFormatConfig
    from pytest_kdassert.core.loading import save_format_config

    texts = [p.read_text() for p in sorted(suite.glob("*.py"))]
    tokenizer = train_tokenizer(texts * 20, TokenizerConfig(vocab_size=config.vocab_size,
                                                            min_frequency=1))
    torch.manual_seed(0)
    model = build_model(config.preset, tokenizer)
    model.resize_token_embeddings(config.vocab_size)  # a trained student's vocabulary size
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    save_format_config(directory, InputFormatConfig(max_target_tokens=config.target_tokens))
    return count_parameters(model)


def timed_run(suite: Path, *args: str) -> tuple[float, str]:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=suite, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    return elapsed, done.stdout


def median_run(suite: Path, repeats: int, *args: str) -> float:
    return statistics.median(timed_run(suite, *args)[0] for _ in range(repeats))


def run(config: OverheadConfig) -> dict:
    with tempfile.TemporaryDirectory(prefix="kdassert-overhead-") as tmp:
        suite, model_dir = Path(tmp) / "suite", Path(tmp) / "model"
        suite.mkdir()
        write_suite(suite, config)
        if config.model is None:
            parameters = build_random_model(model_dir, suite, config)
        else:
            model_dir, parameters = config.model, _parameters_of(config.model)
        timed_run(suite)  # warm the file cache and .pyc files
        off = median_run(suite, config.repeats, "-p", "no:kdassert")
        installed = median_run(suite, config.repeats)
        report = suite.parent / "report.json"
        runs = [timed_run(suite, "--suggest-asserts", f"--kdassert-model={model_dir}",
                          f"--kdassert-beams={config.beams}", f"--kdassert-threads={config.threads}",
                          f"--kdassert-report={report}", *config.plugin_args)
                for _ in range(config.suggest_repeats)]
        suggest, stdout = sorted(runs)[len(runs) // 2]
        data = json.loads(report.read_text())
        sites = data["sites"]
    return {
        "config": asdict(config),
        "model_parameters": parameters,
        "sites": len(sites),
        "candidates": sum(len(s["candidates"]) for s in sites),
        "suggested": sum(s["status"] == "suggested" for s in sites),
        "plain_plugin_off_s": round(off, 3),
        "plain_plugin_installed_s": round(installed, 3),
        "installed_overhead_s": round(installed - off, 3),
        "suggest_run_s": round(suggest, 3),
        "suggest_runs_s": [round(r[0], 3) for r in runs],
        "suggest_overhead_s": round(suggest - installed, 3),
        # model load + beam search as the plugin timed it; the rest: imports, checks, diffs
        "generation_s": round(data["suggest_seconds"], 3),
        "target_suggest_overhead_s": 30.0,
        "summary_line": stdout.strip().splitlines()[-1],
        "load_average_1m_after": round(os.getloadavg()[0], 2),
    }


def _parameters_of(spec: str) -> int:
    from distillation.models import count_parameters
    from pytest_kdassert.core.loading import load_seq2seq

    model, _ = load_seq2seq(spec)
    return count_parameters(model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=OverheadConfig.tests)
    parser.add_argument("--beams", type=int, default=OverheadConfig.beams)
    parser.add_argument("--repeats", type=int, default=OverheadConfig.repeats)
    parser.add_argument("--threads", type=int, default=OverheadConfig.threads)
    parser.add_argument("--target-tokens", type=int, default=OverheadConfig.target_tokens)
    parser.add_argument("--model", default=None,
                        help="trained model directory or `default`; omitted: a random-init preset")
    parser.add_argument("--plugin-args", default="",
                        help="extra options for the suggesting run, e.g. '--kdassert-no-isolation'")
    parser.add_argument("--suggest-repeats", type=int, default=OverheadConfig.suggest_repeats)
    parser.add_argument("--json", default=None, help="also write the results to this file")
    cli = parser.parse_args()
    results = run(OverheadConfig(tests=cli.tests, beams=cli.beams, repeats=cli.repeats,
                                 threads=cli.threads, target_tokens=cli.target_tokens,
                                 model=cli.model, plugin_args=tuple(shlex.split(cli.plugin_args)),
                                 suggest_repeats=cli.suggest_repeats))
    print(json.dumps(results, indent=2))
    if cli.json:
        Path(cli.json).parent.mkdir(parents=True, exist_ok=True)
        Path(cli.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
