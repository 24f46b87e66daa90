"""``kdassert pack`` and ``kdassert gpu-route``: the pack's contents and checks, the clock-driven
schedule, and the route end to end at toy scale on the CPU, run the way the GPU machine runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from distillation.cli import main
from distillation.pack import PackConfig, build_pack, evenly_spaced, open_pack
from distillation.route_output import MAX_FILES, check_out_dir
from distillation.time_budget import TimeBudget
from distillation.trainer import OptimConfig
from pytest_kdassert.core.errors import ConfigError, DataError, TrainingDivergedError
from tests.train_data import make_examples, write_dataset

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def pack_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("pack")
    data = write_dataset(root / "data")
    build_pack(PackConfig(data_dir=str(data), out_dir=str(root / "pack"), vocab_size=300,
                          exemplars=2, max_source_tokens=96, bench_examples=4))
    return root / "pack"


def test_time_budget_warms_up_holds_and_decays_on_the_clock():
    now = [0.0]
    budget = TimeBudget(100.0, warmup_ratio=0.05, decay_ratio=0.1, clock=lambda: now[0])
    budget.start()
    factors = {}
    for t in (0.0, 2.5, 5.0, 50.0, 90.0, 95.0, 100.0):
        now[0] = t
        factors[t] = budget.lr_factor()
    assert factors == pytest.approx({0.0: 0.0, 2.5: 0.5, 5.0: 1.0, 50.0: 1.0, 90.0: 1.0,
                                     95.0: 0.5, 100.0: 0.0})
    now[0] = 99.0
    assert not budget.spent()
    now[0] = 100.0
    assert budget.spent()


def test_a_slow_first_step_does_not_skip_the_warmup():
    # a GPU's first step carries seconds of CUDA start-up: on the clock alone, step 2 would run
    # at the peak learning rate (the first H200 teacher diverged that way)
    now = [0.0]
    budget = TimeBudget(100.0, warmup_ratio=0.05, decay_ratio=0.1, warmup_steps=100,
                        clock=lambda: now[0])
    budget.start()
    now[0] = 14.0  # the first step is over, the clock's warm-up too
    assert budget.lr_factor(1) == pytest.approx(0.01)
    assert budget.lr_factor(50) == pytest.approx(0.5)
    assert budget.lr_factor(100) == 1.0
    now[0] = 2.5  # and where the clock is the slower of the two, the clock rules
    assert budget.lr_factor(90) == pytest.approx(0.5)
    now[0] = 95.0  # the decay is on the clock alone
    assert budget.lr_factor(10_000) == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="warmup_steps"):
        TimeBudget(10.0, warmup_steps=-1)


def test_training_that_goes_nan_stops_with_a_clear_error(pack_dir, tmp_path):
    import torch

    from distillation.stages import init_model, train_on_splits
    from distillation.trainer import FINE_TUNE

    pack = open_pack(pack_dir)
    tokenizer = pack.tokenizer()
    model = init_model("tiny", tokenizer, 0)
    with torch.no_grad():
        model.lm_head.weight[0, 0] = float("nan")  # one bad weight: every gradient turns NaN
    optim = OptimConfig(max_steps=4, batch_size=4, logging_steps=1, checkpoints=False,
                        progress_bar=False)
    with pytest.raises(TrainingDivergedError, match=r"by step 1: grad_norm is nan"):
        train_on_splits(model, tokenizer, pack.split("train", with_index=True), None, tmp_path,
                        optim, pack.input_format, distill=FINE_TUNE)
    assert not (tmp_path / "final").exists()


def test_a_time_limit_needs_the_wsd_schedule():
    with pytest.raises(ConfigError, match="wsd"):
        OptimConfig(max_seconds=10, lr_schedule="linear")
    assert OptimConfig(max_seconds=10, lr_schedule="wsd").for_split(1000).max_steps == -1


def test_pack_holds_the_ids_training_would_see(pack_dir, tmp_path):
    from distillation.token_cache import load_tokenized

    pack = open_pack(pack_dir)
    assert pack.manifest["splits"]["train"]["examples"] == 24
    assert (pack.input_format.version, pack.input_format.exemplars) == (2, 2)
    tokenizer = pack.tokenizer()
    expected = load_tokenized(pack_dir.parent / "data" / "train.jsonl", tokenizer, pack.input_format)
    train = pack.split("train", with_index=True)
    assert len(train) == len(expected) == 24
    for i in (0, 7, 23):
        assert train[i]["index"] == i
        assert np.array_equal(train[i]["input_ids"], expected[i]["input_ids"])
        assert np.array_equal(train[i]["labels"], expected[i]["labels"])
    assert "<ExemplarSep>" in tokenizer.decode(train[0]["input_ids"])
    bench = [json.loads(line) for line in pack.bench_path.read_text().splitlines()]
    assert len(bench) == pack.manifest["bench"]["examples"] == 4


def test_bench_sample_spreads_over_the_split_and_its_pool_is_the_split(pack_dir, tmp_path):
    assert [e.id for e in evenly_spaced(make_examples(9), 3)] == [
        e.id for e in make_examples(9)[::4]]
    pack = open_pack(pack_dir)
    pool = pack.bench_pool(tmp_path)
    assert pool.read_text() == (pack_dir.parent / "data" / "test.jsonl").read_text()


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "train.npz.xz").write_bytes((d / "train.npz.xz").read_bytes()[:-5]), "truncated"),
    (lambda d: _flip_last_byte(d / "valid.npz.xz"), "sha256"),
    (lambda d: (d / "manifest.json").unlink(), "not a complete pack"),
])
def test_a_damaged_pack_is_one_line_error(pack_dir, tmp_path, damage, message):
    import shutil

    copy = tmp_path / "pack"
    shutil.copytree(pack_dir, copy)
    damage(copy)
    with pytest.raises(DataError, match=message):
        open_pack(copy)
    result = CliRunner().invoke(main, ["gpu-route", "--pack", str(copy), "--out",
                                       str(tmp_path / "out"), "--scale", "toy"])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "kdassert pack" in result.output


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_pack_over_its_size_limit_is_refused(tmp_path):
    data = write_dataset(tmp_path / "data")
    with pytest.raises(DataError, match="over the 1e-06 MiB limit"):
        build_pack(PackConfig(data_dir=str(data), out_dir=str(tmp_path / "pack"), vocab_size=300,
                              exemplars=0, max_mib=1e-6))
    assert not (tmp_path / "pack").exists()


def test_full_scale_presets_meet_the_limits():
    """The issue's sizes: a teacher of at least 60M parameters, a student under 15 MiB of fp32."""
    from distillation.gpu_route import MIN_TEACHER_PARAMS
    from distillation.models import build_model, count_parameters
    from distillation.route_output import WEIGHTS_LIMIT_BYTES

    class Vocab8k:
        pad_token_id, eos_token_id = 0, 1

        def __len__(self):
            return 8192

    assert count_parameters(build_model("teacher-gpu", Vocab8k())) >= MIN_TEACHER_PARAMS
    assert 4 * count_parameters(build_model("student-gpu", Vocab8k())) < WEIGHTS_LIMIT_BYTES


def test_out_dir_rules(tmp_path):
    for i in range(MAX_FILES + 1):
        (tmp_path / f"f{i}.txt").write_text("x")
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    (tmp_path / "a" / "b" / "c" / "deep.txt").write_text("x")
    (tmp_path / "bad name.txt").write_text("x")
    problems = check_out_dir(tmp_path)
    assert any("files, at most 8" in p for p in problems)
    assert any(p.startswith("a/b/c/deep.txt") for p in problems)
    assert any(p.startswith("bad name.txt") for p in problems)


def _run_like_the_gpu_machine(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    """``PYTHONPATH=. python3 -m distillation ...`` from the repository root, with libcst and
    pytest impossible to import (the GPU machine has neither)."""
    code = ("import runpy, sys\n"
            "for name in ('libcst', 'pytest', '_pytest'):\n    sys.modules[name] = None\n"
            f"sys.argv = ['kdassert'] + {args!r}\n"
            "runpy.run_module('distillation', run_name='__main__')\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


@pytest.mark.slow
def test_toy_route_brings_back_a_loadable_student_and_a_bench(pack_dir, tmp_path):
    from pytest_kdassert.core.generate import GenerationConfig, generate_candidates
    from pytest_kdassert.core.loading import load_format_config, load_seq2seq

    out = tmp_path / "out"
    done = _run_like_the_gpu_machine(["gpu-route", "--pack", str(pack_dir), "--out", str(out),
                                      "--scale", "toy", "--minutes", "0.25",
                                      "--work-dir", str(tmp_path / "work")], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == ["bench.json", "loss.png", "route.log", "student/config.json",
                     "student/kdassert_format.json", "student/model.safetensors",
                     "student/tokenizer.json", "student/tokenizer_config.json"]
    assert check_out_dir(out) == []
    model, tokenizer = load_seq2seq(out / "student")
    assert load_format_config(out / "student").version == 2
    source = open_pack(pack_dir).bench_path.read_text().splitlines()[0]
    focal = json.loads(source)
    text = f"{focal['focal_source']}<FocalTestSep>\n{focal['test_source_masked']}"
    candidates = generate_candidates(model, tokenizer, [text], GenerationConfig(num_beams=2))
    assert candidates[0] and candidates[0][0].text.strip()
    report = json.loads((out / "bench.json").read_text())
    names = [row["name"] for row in report["rows"]]
    assert names == ["teacher", "student", "in-project retrieval", "in-project retrieval, adapted"]
    for row in report["rows"][:2]:
        assert 0.0 <= row["metrics"]["exact_match"] <= row["metrics"]["lenient_match"] <= 1.0
        assert row["speed"]["cpu_latency_1thread"]["p50_ms"] > 0
    stages = report["gpu_route"]["stages"]
    assert stages["teacher"]["steps"] > 0 and stages["student"]["steps"] > 0
    assert stages["logits"]["examples"] == 24
    assert report["gpu_route"]["seconds"] < 0.25 * 60 + 10
    assert stages["teacher"]["seconds"] < stages["teacher"]["budget_seconds"] + 5
    history = json.loads((tmp_path / "work" / "teacher" / "final" / "trainer_state.json").read_text())
    rates = [e["learning_rate"] for e in history["log_history"] if "learning_rate" in e]
    assert rates[0] < max(rates) == pytest.approx(7e-4) and rates[-1] < 0.5 * max(rates)
    log = (out / "route.log").read_text()
    assert "teacher done" in log and "student done" in log and "gpu-route summary" in log


def test_dry_run_times_a_step_of_each_model_and_trains_nothing(pack_dir, tmp_path):
    from distillation.gpu_route import RouteConfig, run_route

    out = tmp_path / "out"
    summary = run_route(RouteConfig(pack=str(pack_dir), out_dir=str(out), scale="toy", dry_run=True))
    for role in ("teacher", "student"):
        step = summary["stages"]["dry_run"][role]
        assert step["seconds_per_step"] > 0 and np.isfinite(step["loss"])
        assert step["batch"][0] == 8
    assert [p.name for p in out.iterdir()] == ["route.log"]
    assert "dry run" in (out / "route.log").read_text()


def test_route_modules_import_without_libcst():
    code = ("import sys\nsys.modules['libcst'] = None\n"
            "import distillation.__main__, distillation.gpu_route, distillation.route_stages\n"
            "import distillation.pack, distillation.bench, distillation.stages\n"
            "from distillation.cli import main\nprint('ok')\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"


def test_a_non_empty_out_dir_is_refused(pack_dir, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.txt").write_text("x")
    result = CliRunner().invoke(main, ["gpu-route", "--pack", str(pack_dir), "--out",
                                       str(tmp_path / "out"), "--scale", "toy"])
    assert result.exit_code == 1 and "not empty" in result.output


def _check_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_route_check", ROOT / "benchmarks" / "gpu_route_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_size_check_counts_tree_and_carry(tmp_path, monkeypatch):
    check = _check_script()
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text("/data/\n")
    (tmp_path / "code.py").write_bytes(b"x" * 100)
    (tmp_path / "data" / "gpu-pack").mkdir(parents=True)
    (tmp_path / "data" / "gpu-pack" / "ids.xz").write_bytes(b"y" * 1000)
    (tmp_path / "data" / "big.jsonl").write_bytes(b"z" * 5000)  # ignored and not carried
    report, problems = check.check(tmp_path, ("data/gpu-pack",))
    assert (report["tree_bytes"], report["carry_bytes"]) == (100 + len("/data/\n"), 1000)
    assert problems == []
    monkeypatch.setattr(check, "LIMIT_BYTES", 1000)
    assert any("over 1000" in p for p in check.check(tmp_path, ("data/gpu-pack",))[1])
    assert any("kdassert pack" in p for p in check.check(tmp_path, ("data/missing",))[1])
    assert len(check.COMMAND) <= check.COMMAND_LIMIT


@pytest.mark.slow
def test_launcher_script_runs_the_route(pack_dir, tmp_path):
    """benchmarks/gpu_route.sh is the device command: here, a dry run on the toy pack."""
    import shutil

    if shutil.which("bash") is None:
        pytest.skip("no bash")
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_route.sh"), "--pack", str(pack_dir),
                           "--scale", "toy", "--dry-run"], env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "device cpu" in done.stdout and "(dry run)" in done.stdout
    assert (out / "route.log").is_file()


def test_a_failed_route_says_why_in_its_log(pack_dir, tmp_path):
    """A full-scale teacher under 60M parameters is refused before training; the log says so."""
    from distillation.gpu_route import RouteConfig, run_route

    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="at least 60,000,000"):
        run_route(RouteConfig(pack=str(pack_dir), out_dir=str(out), teacher="tiny", student="tiny"))
    log = (out / "route.log").read_text()
    assert "ConfigError" in log and "at least 60,000,000" in log
    assert [p.name for p in out.iterdir()] == ["route.log"]


def test_the_full_route_refuses_to_train_without_a_gpu(pack_dir, tmp_path, monkeypatch):
    import torch

    from distillation.gpu_route import RouteConfig, run_route

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="needs a CUDA GPU"):
        run_route(RouteConfig(pack=str(pack_dir), out_dir=str(tmp_path / "out")))
    assert "needs a CUDA GPU" in (tmp_path / "out" / "route.log").read_text()


def test_a_student_too_large_for_one_returned_file_is_refused(pack_dir):
    from distillation.gpu_route import RouteConfig
    from distillation.route_stages import RouteData

    config = RouteConfig(pack=str(pack_dir), scale="toy", teacher="tiny", student="student")
    with pytest.raises(ConfigError, match="would not fit in 15 MiB"):
        RouteData.load(config).check_models(config)


@pytest.mark.slow
def test_stability_check_reports_every_variant(pack_dir, tmp_path):
    """benchmarks/gpu_stability.py (a device diagnostic) at toy scale: each variant trains, logs
    every step and is summarised; none goes non-finite on these tiny models."""
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_stability.py"), "--toy",
                           "--pack", str(pack_dir), "--steps", "4", "--warmup-steps", "2",
                           "--out", str(out)], env=env, capture_output=True, text=True,
                          timeout=300, check=False, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((out / "stability.json").read_text())
    assert len(report["variants"]) == 5
    for variant in report["variants"].values():
        assert variant["steps"] == 4 and variant["first_nonfinite_step"] is None
        assert variant["max_finite_grad_norm"] > 0
