"""``kdassert sweep`` over teacher signals and student sizes, its report table and trade-off plots."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from distillation.pipeline import TrainConfig
from distillation.plots import PlotConfig, make_plots
from distillation.plots_tradeoffs import best_group
from distillation.sweep import SweepConfig, encode_bits, grid, run_sweep
from distillation.sweep_report import compare, compare_scores, interval, reference_key, sweep_table
from distillation.trainer import DistillConfig, signal_settings
from pytest_kdassert.core.errors import ConfigError
from tests.train_data import write_dataset

STORES = ("online", "quantized-16bit", "quantized-8bit", "quantized-4bit", "topk-k4-int8")


@pytest.mark.parametrize("name, settings", [
    ("online", {"logits_mode": "online"}),
    ("quantized-4bit", {"logits_mode": "quantized", "bits": 4}),
    ("topk-k32-int8", {"logits_mode": "topk", "topk": 32, "topk_dtype": "int8"}),
    ("topk-k8-fp16", {"logits_mode": "topk", "topk": 8, "topk_dtype": "fp16"}),
])
def test_signal_names_read_back_as_distill_settings(name, settings):
    assert signal_settings(name) == settings
    assert DistillConfig(**settings).store_name() == name


def test_unknown_signal_names_are_refused_with_the_valid_forms():
    with pytest.raises(ConfigError, match="topk-kK-DTYPE"):
        signal_settings("topk32")
    with pytest.raises(ConfigError, match="bits must be one of"):
        DistillConfig(**signal_settings("quantized-3bit"))


def _base(tmp_path, **changes) -> TrainConfig:
    data = write_dataset(tmp_path / "data", train=16, valid=4)
    settings = dict(data_dir=str(data), out_dir=str(tmp_path / "runs"), teacher="tiny", student="tiny",
                    distill=DistillConfig(topk=4), vocab_size=300, max_steps=2, teacher_max_steps=2,
                    batch_size=8, eval_steps=2, bench_limit=0, bf16="off", max_source_tokens=64,
                    max_target_tokens=8)
    return TrainConfig(**{**settings, **changes})


def test_grid_names_every_point_by_student_store_alpha_and_t(tmp_path):
    config = SweepConfig(base=_base(tmp_path), alphas=(0.5,), temperatures=(1.0, 2.0),
                         students=("tiny", "student-mini"), stores=("online", "topk-k4-int8"))
    keys = [config.key(p) for p in grid(config)]
    assert keys[:4] == ["tiny-online-a0.5-T1", "tiny-online-a0.5-T2", "tiny-topk-k4-int8-a0.5-T1",
                        "tiny-topk-k4-int8-a0.5-T2"] and len(set(keys)) == 8
    point = config.train_config(grid(config)[6])
    assert (point.student, point.distill.logits_mode, point.distill.topk, point.distill.temperature) == \
        ("student-mini", "topk", 4, 1.0)
    assert point.student_name() == "student-mini-topk-k4-int8-a0.5-T1"  # its run directory
    default = SweepConfig(base=_base(tmp_path), alphas=(0.5,), temperatures=(2.0,))
    assert [default.key(p) for p in grid(default)] == ["tiny-topk-k4-int8-a0.5-T2"]
    with pytest.raises(ConfigError, match="Unknown student"):
        SweepConfig(base=_base(tmp_path), students=("huge",))
    with pytest.raises(ConfigError, match="Unknown teacher signal"):
        SweepConfig(base=_base(tmp_path), stores=("fp32",))
    with pytest.raises(ConfigError, match="as 'topk-k8-int8'"):  # one name per store
        SweepConfig(base=_base(tmp_path), stores=("topk-k08-int8",))


def _counting_run_train(monkeypatch) -> list[str]:
    import distillation.pipeline

    calls, real = [], distillation.pipeline.run_train

    def run_train(config):
        calls.append(config.student_name())
        return real(config)

    monkeypatch.setattr(distillation.pipeline, "run_train", run_train)
    return calls


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


@pytest.mark.slow
def test_store_sweep_records_signal_sizes_and_reuses_points(tmp_path, monkeypatch):
    calls = _counting_run_train(monkeypatch)
    config = SweepConfig(base=_base(tmp_path), alphas=(0.0, 0.5), temperatures=(2.0,), stores=STORES,
                         bench_limit=4, beams=1, latency_examples=2)
    results = run_sweep(config)
    points = {p["store"]: p for p in results["points"].values() if p["alpha"] == 0.5}
    # One student per store; alpha = 0 reads no signal, so one run serves all five stores.
    assert len(calls) == 6 and sum(name.endswith("-a0-T2") for name in calls) == 1
    assert sorted(p.name for p in (tmp_path / "runs" / "logits").iterdir()) == \
        ["quantized-16bit", "quantized-4bit", "quantized-8bit", "topk-k4-int8"]  # online stores nothing
    size = {name: points[name]["signal"]["bytes_per_token"] for name in STORES}
    assert size["topk-k4-int8"] < size["quantized-4bit"] < size["quantized-8bit"] < size["quantized-16bit"]
    assert size["quantized-8bit"] == 300 + 8  # V bytes at 8 bits, plus 8 bytes of scale and offset
    online = points["online"]["signal"]
    assert online["bytes_per_token"] is None and online["disk_bytes"] == 0
    assert online["dense_fp32_bytes_per_token"] == 4 * 300
    stored = [points[n]["signal"] for n in STORES if n != "online"]
    assert [s["pass_shared_by"] for s in stored] == [4, 4, 4, 4]  # one pass of the teacher filled all four
    assert len({s["build_seconds"] for s in stored}) == 1 and stored[0]["build_seconds"] > 0
    disk = [points[n]["signal"]["disk_bytes"] for n in ("quantized-4bit", "quantized-8bit", "quantized-16bit")]
    assert disk == sorted(disk) and disk[0] > points["quantized-4bit"]["signal"]["num_tokens"] * 158
    for point in points.values():
        assert point["train_seconds"] > 0 and point["examples"] == 4
        assert len(point["correct"]["exact_match"]) == 4 and len(point["correct"]["top_k_exact_match"]) == 4
        assert sum(point["scores"]["token_f1"]) / 4 == pytest.approx(point["metrics"]["token_f1"], abs=1e-3)
        assert point["metrics"]["exact_match"] == point["correct"]["exact_match"].count("1") / 4
        assert point["size"]["parameters"] > 1000 and point["speed"]["cpu_latency_1thread"]["p50_ms"] > 0
    unused = results["points"]["tiny-quantized-4bit-a0-T2"]
    assert unused["signal"] == {"name": "quantized-4bit", "mode": "quantized", "used": False}
    assert unused["shared_with"] == "tiny-online-a0-T2"
    # A second run trains nothing and leaves the results as they were.
    before = (tmp_path / "runs" / "sweep.json").read_text()
    run_sweep(config)
    assert len(calls) == 6 and (tmp_path / "runs" / "sweep.json").read_text() == before
    paths = make_plots(PlotConfig(sweep=str(tmp_path / "runs" / "sweep.json"), out_dir=str(tmp_path / "p")))
    assert [p.name for p in paths] == ["metrics_vs_alpha.png", "quality_vs_bytes_per_token.png"]
    assert _png_size(paths[1]) == (800, 500)


@pytest.mark.slow
def test_size_sweep_grows_parameters_and_reuses_the_store(tmp_path, monkeypatch):
    base = _base(tmp_path)
    first = run_sweep(SweepConfig(base=base, alphas=(0.5,), temperatures=(2.0,), bench_limit=3, beams=1,
                                  latency_examples=2, results=str(tmp_path / "a.json")))
    store_built = first["points"]["tiny-topk-k4-int8-a0.5-T2"]["signal"]["build_seconds"]
    calls = _counting_run_train(monkeypatch)
    config = SweepConfig(base=base, alphas=(0.5,), temperatures=(2.0,), bench_limit=3, beams=1,
                         latency_examples=2, students=("tiny", "student-mini", "student-small"),
                         results=str(tmp_path / "sizes.json"))
    results = run_sweep(config)
    rows = [results["points"][f"{s}-topk-k4-int8-a0.5-T2"] for s in config.students]
    params = [r["size"]["parameters"] for r in rows]
    assert params == sorted(params) and params[0] < 100_000 < params[1] < params[2]
    disk = [r["size"]["disk_bytes"] for r in rows]
    assert disk == sorted(disk)
    assert all(r["speed"]["cpu_latency_1thread"]["n"] == 2 for r in rows)
    # The teacher and the store are the first sweep's: built once, read by every student.
    assert all(r["signal"]["build_seconds"] == store_built for r in rows)
    assert results["teacher"]["model_dir"] == first["teacher"]["model_dir"]
    assert len(calls) == 3
    paths = make_plots(PlotConfig(sweep=config.results, out_dir=str(tmp_path / "p")))
    assert [p.name for p in paths] == ["quality_latency_vs_student_size.png"]
    assert _png_size(paths[0]) == (1600, 500)
    assert "student-small-topk-k4-int8-a0.5-T2" in sweep_table(results)


def _row(bits: str, **extra) -> dict:
    return {"alpha": 0.5, "examples": len(bits), "metrics": {"exact_match": bits.count("1") / len(bits)},
            "correct": {"exact_match": bits}, **extra}


def test_table_calls_a_difference_only_when_the_paired_test_does():
    reference = "1" * 12 + "0" * 8
    results = {"teacher": None, "points": {
        "best": _row(reference),
        "far": _row("0" * 20),                # loses 12 examples, wins none: p = 2 / 4096
        "near": _row("1" * 10 + "0" * 10),    # loses 2: p = 0.5
        "swapped": _row("0" * 6 + "1" * 6 + "1" * 6 + "0" * 2),  # loses 6, wins 6: p = 1
    }}
    assert reference_key(results) == "best"
    assert compare(results["points"]["far"], results["points"]["best"]).p_value == 2 / 4096
    table = sweep_table(results)
    lines = {line.split(" | ")[0].strip("| "): line for line in table.splitlines() if line.startswith("| ")}
    assert lines["best"].startswith("| best | - |") and "| reference |" in lines["best"]
    assert "| p=0.000488 differs (+0 / -12) |" in lines["far"]
    assert "| p=0.5 no sig. difference (+0 / -2) |" in lines["near"]
    assert "| p=1 no sig. difference (+6 / -6) |" in lines["swapped"]
    assert "| 0.600 [0.387, 0.781] |" in lines["best"]  # 12 of 20, Wilson 95%
    assert "20 examples; ref = best" in table


def test_agreement_with_the_teacher_gets_an_interval_and_a_paired_test():
    ref = _row("1" * 20, correct={"exact_match": "1" * 20, "agreement_with_teacher": "1" * 16 + "0" * 4})
    ref["metrics"]["agreement_with_teacher"] = 0.8
    less = _row("1" * 20, correct={"exact_match": "1" * 20, "agreement_with_teacher": "1" * 4 + "0" * 16})
    less["metrics"]["agreement_with_teacher"] = 0.2
    table = sweep_table({"teacher": None, "points": {"ref": ref, "less": less}}, reference="ref")
    lines = {line.split(" | ")[0].strip("| "): line for line in table.splitlines() if line.startswith("| ")}
    assert lines["less"].endswith("| 0.200 [0.081, 0.416] | p=0.000488 differs (+0 / -12) |")
    assert lines["ref"].endswith("| 0.800 [0.584, 0.919] | reference |")


def test_intervals_and_comparisons_need_matching_outcomes():
    row = _row("1100")
    assert interval(row, "exact_match") == pytest.approx((0.150, 0.850), abs=1e-3)
    assert interval({"examples": 4, "metrics": {"exact_match": 0.5}}, "exact_match") == interval(row, "exact_match")
    assert interval(row, "token_f1") is None  # not a proportion
    assert compare(row, _row("11000")) is None and compare(row, {"metrics": {}}) is None


def test_token_f1_is_compared_by_a_paired_bootstrap():
    ref = {"examples": 200, "metrics": {"exact_match": 0.0, "token_f1": 0.5},
           "scores": {"token_f1": [0.4, 0.6] * 100}}
    better = {**ref, "metrics": {"exact_match": 0.0, "token_f1": 0.55},
              "scores": {"token_f1": [0.45, 0.65] * 100}}  # +0.05 on every example
    noisy = {**ref, "metrics": {"exact_match": 0.0, "token_f1": 0.5},
             "scores": {"token_f1": [0.6, 0.4] * 100}}   # +-0.2, mean difference 0
    mean, low, high = compare_scores(better, ref)
    assert mean == pytest.approx(0.05) and low == pytest.approx(0.05) and high == pytest.approx(0.05)
    mean, low, high = compare_scores(noisy, ref)
    assert mean == pytest.approx(0.0) and low < 0 < high
    assert interval(ref, "token_f1") == pytest.approx((0.486, 0.514), abs=0.003)  # 0.5 +- 1.96 * 0.1 / sqrt(200)
    assert compare_scores(ref, {"scores": {"token_f1": [0.5]}}) is None and compare_scores(ref, {}) is None
    table = sweep_table({"teacher": None, "points": {"ref": ref, "better": better, "noisy": noisy}},
                        reference="ref")
    lines = {line.split(" | ")[0].strip("| "): line for line in table.splitlines() if line.startswith("| ")}
    assert "| +0.050 [+0.050, +0.050] differs |" in lines["better"]
    assert "no sig. difference |" in lines["noisy"].split("| 0.500 [")[-1]
    assert "| 0.550 [0.536, 0.564] |" in lines["better"]


def _synthetic_results() -> dict:
    def row(student, store, alpha, em, params, bpt=None, dense=None):
        bits = encode_bits(i % 100 < em * 100 for i in range(200))
        return {"student": student, "store": store, "alpha": alpha, "temperature": 1.0, "examples": 200,
                "metrics": {"exact_match": em, "lenient_match": em + 0.15}, "correct": {"exact_match": bits},
                "size": {"parameters": params}, "speed": {"cpu_latency_1thread": {"p50_ms": params / 1e5}},
                "signal": {"name": store, "used": alpha > 0, "bytes_per_token": bpt,
                           "dense_fp32_bytes_per_token": dense}}
    points = {f"student-{s}-a0.5-T1": row("student", s, 0.5, em, 9_400_000, b)
              for s, b, em in (("topk-k32-int4", 62, 0.17), ("topk-k32-int8", 78, 0.18),
                               ("quantized-8bit", 8200, 0.19))}
    points["student-online-a0.5-T1"] = row("student", "online", 0.5, 0.19, 9_400_000, None, 32768)
    points["student-online-a0-T1"] = row("student", "online", 0.0, 0.12, 9_400_000)
    for student, params, em in (("student-mini", 2_300_000, 0.10), ("teacher", 46_000_000, 0.24)):
        points[f"{student}-topk-k32-int8-a0.5-T1"] = row(student, "topk-k32-int8", 0.5, em, params, 78)
    teacher = row("teacher", "-", 0.0, 0.25, 46_000_000)
    return {"version": 2, "points": points, "teacher": teacher}


def test_best_group_picks_the_axis_with_most_values():
    points = list(_synthetic_results()["points"].values())
    stores = best_group(points, ("student", "alpha", "temperature"), lambda p: p["signal"]["bytes_per_token"]
                        or p["signal"]["dense_fp32_bytes_per_token"] if p["signal"]["used"] else None)
    assert [p["store"] for p in stores] == ["topk-k32-int4", "topk-k32-int8", "quantized-8bit", "online"]
    sizes = best_group(points, ("store", "alpha", "temperature"), lambda p: p["size"]["parameters"])
    assert [p["student"] for p in sizes] == ["student-mini", "student", "teacher"]


@pytest.mark.slow
def test_tradeoff_plots_from_a_sweep_json(tmp_path):
    sweep = tmp_path / "sweep.json"
    sweep.write_text(json.dumps(_synthetic_results()))
    paths = make_plots(PlotConfig(sweep=str(sweep), out_dir=str(tmp_path / "plots")))
    assert [p.name for p in paths] == ["quality_vs_bytes_per_token.png", "quality_latency_vs_student_size.png"]
    assert [_png_size(p) for p in paths] == [(800, 500), (1600, 500)]
    assert all(p.stat().st_size > 30_000 for p in paths)  # points, bars, labels and legends
