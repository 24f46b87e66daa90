"""``kdassert sweep`` (resumable grid over a fake and a real ``run_train``) and ``kdassert plot``."""

from __future__ import annotations

import json
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from distillation.cli import main
from distillation.pipeline import TrainConfig
from distillation.plots import PlotConfig, make_plots
from distillation.sweep import SweepConfig, fill_agreement, run_sweep
from distillation.trainer import DistillConfig
from pytest_kdassert.core.errors import ConfigError
from pytest_kdassert.core.input_format import InputFormatConfig
from pytest_kdassert.core.loading import save_format_config
from tests.train_data import write_dataset


@dataclass
class FakeResult:
    student_dir: Path
    teacher_dir: Path
    logits_dir: Path | None = None


@pytest.fixture
def fake_train(monkeypatch, tmp_path, tiny_model_dir):
    """``run_train`` stand-in: copies the tiny model per grid point and records the calls."""
    import distillation.pipeline

    calls = []

    def run_train(config):
        calls.append((config.distill.alpha, config.distill.temperature))
        student = Path(config.out_dir) / "students" / config.student_name() / "final"
        if not student.is_dir():
            shutil.copytree(tiny_model_dir, student)
            save_format_config(student, InputFormatConfig(max_source_tokens=64, max_target_tokens=8))
        return FakeResult(student, Path(tiny_model_dir))

    monkeypatch.setattr(distillation.pipeline, "run_train", run_train)
    return calls


def _sweep_config(tmp_path, **overrides):
    data = write_dataset(tmp_path / "data", train=8, valid=3)
    base = TrainConfig(data_dir=str(data), out_dir=str(tmp_path / "runs"), teacher="tiny",
                       student="tiny", bench_limit=0)
    settings = dict(alphas=(0.0, 0.5), temperatures=(1.0, 2.0), bench_limit=2, beams=1,
                    latency_examples=0)
    return SweepConfig(base=base, **{**settings, **overrides})


def test_sweep_trains_each_point_once_and_resumes(tmp_path, fake_train):
    config = _sweep_config(tmp_path)
    results = run_sweep(config)
    # alpha = 0 ignores T: one training run serves both of its points.
    assert fake_train == [(0.0, 1.0), (0.5, 1.0), (0.5, 2.0)]
    assert set(results["points"]) == {f"tiny-topk-k32-int8-a{a}-T{t}" for a in (0, 0.5) for t in (1, 2)}
    assert results["points"]["tiny-topk-k32-int8-a0-T2"]["shared_with"] == "tiny-topk-k32-int8-a0-T1"
    assert results["points"]["tiny-topk-k32-int8-a0-T2"]["temperature"] == 2.0
    point = results["points"]["tiny-topk-k32-int8-a0.5-T2"]
    assert point["examples"] == 2 and 0.0 <= point["metrics"]["exact_match"] <= 1.0
    assert point["model_dir"].endswith("tiny-topk-k32-int8-a0.5-T2/final")
    assert results["teacher"]["examples"] == 2 and len(results["teacher"]["top1"]) == 2
    assert all(0.0 <= p["metrics"]["agreement_with_teacher"] <= 1.0 for p in results["points"].values())
    on_disk = json.loads((tmp_path / "runs" / "sweep.json").read_text())
    assert on_disk["points"].keys() == results["points"].keys()
    # A second run finds every point done; a larger grid trains only the new points.
    run_sweep(config)
    assert len(fake_train) == 3
    run_sweep(_sweep_config(tmp_path, temperatures=(1.0, 2.0, 4.0)))
    assert fake_train[3:] == [(0.5, 4.0)]


def test_fill_agreement_scores_stored_top1_against_the_teachers():
    results = {"teacher": {"top1": ["assert x == 1", "assert (y)", "not code ("]},
               "points": {"a": {"top1": ["assert x==1", "assert y", "not code ("], "metrics": {}},
                          "b": {"top1": ["assert x == 2", "assert z", "other ("], "metrics": {}},
                          "old": {"metrics": {"agreement_with_teacher": None}}}}
    fill_agreement(results)
    assert results["points"]["a"]["metrics"]["agreement_with_teacher"] == 1.0
    assert results["points"]["b"]["metrics"]["agreement_with_teacher"] == 0.0
    assert results["points"]["old"]["metrics"]["agreement_with_teacher"] is None  # no top1 stored
    assert results["points"]["a"]["correct"]["agreement_with_teacher"] == "111"  # for paired tests
    assert "correct" not in results["points"]["old"]


def test_sweep_refuses_cached_points_from_other_settings(tmp_path, fake_train):
    run_sweep(_sweep_config(tmp_path, alphas=(0.5,), temperatures=(1.0,)))
    with pytest.raises(ConfigError, match="beams"):
        run_sweep(_sweep_config(tmp_path, alphas=(0.5,), temperatures=(1.0,), beams=2))


def test_sweep_records_its_base_as_flat_train_keys(tmp_path, fake_train):
    """Flat keys, as in a TOML file: sweep.json files written before DistillConfig still resume."""
    from distillation.pipeline import train_config_from_keys

    config = _sweep_config(tmp_path, alphas=(0.5,), temperatures=(1.0,))
    base = run_sweep(config)["config"]["base"]
    assert "distill" not in base and (base["alpha"], base["temperature"], base["topk"]) == (0.5, 2.0, 32)
    assert train_config_from_keys(base) == config.base


def test_sweep_config_validates_grid(tmp_path):
    with pytest.raises(ConfigError, match="alpha"):
        _sweep_config(tmp_path, alphas=(1.5,))
    with pytest.raises(ConfigError, match="temperature"):
        _sweep_config(tmp_path, temperatures=(0.0,))


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


def _results():
    points = {}
    for a in (0.0, 0.25, 0.5, 0.75, 1.0):
        for t in (0.5, 1.0, 2.0, 4.0):
            em = 0.30 + 0.1 * a - 0.02 * abs(t - 2) * (a > 0)
            points[f"a{a:g}-T{t:g}"] = {"alpha": a, "temperature": t, "metrics": {
                "exact_match": em, "lenient_match": em + 0.2}}
    teacher = {"metrics": {"exact_match": 0.45, "lenient_match": 0.62}}
    return {"version": 1, "points": points, "teacher": teacher}


def _report(path: Path, rows) -> str:
    path.write_text(json.dumps({"rows": [
        {"name": n, "kind": k, "size": {"parameters": p}, "metrics": {"exact_match": em}}
        for n, k, p, em in rows]}))
    return str(path)


@pytest.mark.slow
def test_plots_are_pngs_of_the_requested_size(tmp_path):
    sweep = tmp_path / "sweep.json"
    sweep.write_text(json.dumps(_results()))
    reports = (_report(tmp_path / "a.json", [("teacher", "model", 46_000_000, 0.45),
                                              ("student", "model", 9_400_000, 0.38),
                                              ("retrieval", "retrieval", None, 0.2)]),
               _report(tmp_path / "b.json", [("student-small", "model", 3_000_000, 0.31)]))
    paths = make_plots(PlotConfig(sweep=str(sweep), reports=reports, out_dir=str(tmp_path / "plots")))
    assert [p.name for p in paths] == ["metrics_vs_alpha.png", "metrics_vs_temperature.png",
                                       "size_vs_exact_match.png"]
    for path in paths:
        assert _png_size(path) == (800, 500)
        assert path.stat().st_size > 15_000  # lines, labels and a legend, not a blank canvas


def test_plot_cli_and_errors(tmp_path):
    sweep = tmp_path / "sweep.json"
    sweep.write_text(json.dumps(_results()))
    out = tmp_path / "p"
    result = CliRunner().invoke(main, ["plot", "--sweep", str(sweep), "-o", str(out),
                                       "--metric", "exact_match", "--temperature", "2"])
    assert result.exit_code == 0, result.output
    assert (out / "metrics_vs_alpha.png").is_file() and "metrics_vs_temperature.png" in result.output
    result = CliRunner().invoke(main, ["plot", "--sweep", str(sweep), "-o", str(out), "--temperature", "3"])
    assert result.exit_code == 1 and "No grid point has T=3" in result.output
    with pytest.raises(ConfigError, match="Nothing to plot"):
        PlotConfig()
    with pytest.raises(ConfigError, match="Unknown metrics"):
        PlotConfig(sweep="s.json", metrics=("accuracy",))


@pytest.mark.slow
def test_real_tiny_sweep_through_the_pipeline(tmp_path):
    """The real run_train on tiny presets: teacher shared, one student per point, plots drawn."""
    data = write_dataset(tmp_path / "data", train=16, valid=3)
    base = TrainConfig(data_dir=str(data), out_dir=str(tmp_path / "runs"), teacher="tiny",
                       student="tiny", distill=DistillConfig(topk=4), vocab_size=300, max_steps=2, teacher_max_steps=2,
                       batch_size=8, eval_steps=2, bench_limit=0, bf16="off",
                       max_source_tokens=64, max_target_tokens=8)
    results = run_sweep(SweepConfig(base=base, alphas=(0.0, 0.5), temperatures=(2.0,), bench_limit=2,
                                    beams=1, latency_examples=0))
    assert sorted(results["points"]) == ["tiny-topk-k4-int8-a0-T2", "tiny-topk-k4-int8-a0.5-T2"]
    students = sorted(p.name for p in (tmp_path / "runs" / "students").iterdir())
    assert students == ["tiny-topk-k4-int8-a0-T2", "tiny-topk-k4-int8-a0.5-T2"]
    assert results["teacher"]["model_dir"].endswith("teacher/final")
    assert results["points"]["tiny-topk-k4-int8-a0.5-T2"]["size"]["parameters"] > 1000
    paths = make_plots(PlotConfig(sweep=str(tmp_path / "runs" / "sweep.json"), out_dir=str(tmp_path / "p")))
    assert all(_png_size(p) == (800, 500) for p in paths)


def test_sweep_cli_with_toml_config(tmp_path, fake_train):
    data = write_dataset(tmp_path / "data", train=8, valid=3)
    toml = tmp_path / "train.toml"
    toml.write_text('teacher = "tiny"\nstudent = "tiny"\nvocab_size = 300\n')
    result = CliRunner().invoke(main, ["sweep", "--config", str(toml), "--data", str(data), "-o",
                                       str(tmp_path / "runs"), "--alpha", "0.5", "--temperature", "1,2",
                                       "--bench-limit", "1", "--beams", "1", "--latency-examples", "0"])
    assert result.exit_code == 0, result.output
    assert "2 grid points" in result.output and fake_train == [(0.5, 1.0), (0.5, 2.0)]
    bad = CliRunner().invoke(main, ["sweep", "--data", str(data), "--alpha", "x"])
    assert bad.exit_code == 2 and "comma-separated numbers" in bad.output


def test_version_1_results_resume_under_run_name_keys(tmp_path, fake_train):
    """A sweep.json of the alpha x T sweep (keys ``a0.5-T1``) is upgraded, not redone."""
    from distillation.sweep import _config_dict

    config = _sweep_config(tmp_path, alphas=(0.0, 0.5), temperatures=(1.0,))
    old_config = _config_dict(config)
    old = {"version": 1, "config": json.loads(json.dumps(old_config)), "teacher": None, "points": {
        "a0-T1": {"alpha": 0.0, "temperature": 1.0, "metrics": {"exact_match": 0.25}},
        "a0-T2": {"alpha": 0.0, "temperature": 2.0, "metrics": {"exact_match": 0.25}, "shared_with": "a0-T1"},
        "a0.5-T1": {"alpha": 0.5, "temperature": 1.0, "metrics": {"exact_match": 0.5}}}}
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "sweep.json").write_text(json.dumps(old))
    results = run_sweep(config)
    assert fake_train == []  # both points of the grid were done
    assert results["version"] == 2 and sorted(results["points"]) == [
        "tiny-topk-k32-int8-a0-T1", "tiny-topk-k32-int8-a0-T2", "tiny-topk-k32-int8-a0.5-T1"]
    point = results["points"]["tiny-topk-k32-int8-a0-T2"]
    assert point["shared_with"] == "tiny-topk-k32-int8-a0-T1" and point["store"] == "topk-k32-int8"
    assert results["points"]["tiny-topk-k32-int8-a0.5-T1"]["metrics"]["exact_match"] == 0.5


def test_sweep_cli_grid_of_stores_and_students(tmp_path, fake_train):
    data = write_dataset(tmp_path / "data", train=8, valid=3)
    args = ["sweep", "--data", str(data), "-o", str(tmp_path / "runs"), "--teacher", "tiny",
            "--alpha", "0.5", "--temperature", "1", "--bench-limit", "1", "--beams", "1",
            "--latency-examples", "0"]
    result = CliRunner().invoke(main, [*args, "--student", "tiny, student-mini",
                                       "--store", "online,quantized-4bit"])
    assert result.exit_code == 0, result.output
    assert "4 grid points" in result.output and "vs " in result.output  # the report table
    keys = json.loads((tmp_path / "runs" / "sweep.json").read_text())["points"]
    assert sorted(keys) == ["student-mini-online-a0.5-T1", "student-mini-quantized-4bit-a0.5-T1",
                            "tiny-online-a0.5-T1", "tiny-quantized-4bit-a0.5-T1"]
    again = CliRunner().invoke(main, [*args, "--student", "tiny", "--store", "online,quantized-4bit",
                                      "--reference", "tiny-online-a0.5-T1"])
    assert again.exit_code == 0 and "ref = tiny-online-a0.5-T1" in again.output and len(fake_train) == 4
    unknown = CliRunner().invoke(main, [*args, "--reference", "nope"])
    assert unknown.exit_code == 2 and "no point 'nope'" in unknown.output
    bad = CliRunner().invoke(main, [*args, "--store", "topk-k32"])
    assert bad.exit_code == 1 and "Unknown teacher signal 'topk-k32'" in bad.output
    results = str(tmp_path / "runs" / "sweep.json")
    trained = len(fake_train)
    report = CliRunner().invoke(main, ["sweep", "--results", results, "--report-only",
                                       "--reference", "tiny-online-a0.5-T1"])
    assert report.exit_code == 0, report.output
    points = len(json.loads((tmp_path / "runs" / "sweep.json").read_text())["points"])
    assert "ref = tiny-online-a0.5-T1" in report.output and f"{points} grid points" in report.output
    assert len(fake_train) == trained  # nothing trained
    missing = CliRunner().invoke(main, ["sweep", "--report-only", "--results", str(tmp_path / "no.json")])
    assert missing.exit_code == 2 and "existing results file" in missing.output
