"""Training that can be extended: wsd schedule, --resume with a larger budget, the loss curve."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
import torch
from click.testing import CliRunner

from distillation.cli import main
from distillation.trainer import OptimConfig
from pytest_kdassert.core.loading import FORMAT_FILE, load_format_config
from tests.train_data import write_dataset

TEACHER = ["--teacher", "tiny", "--stop-after", "teacher", "--vocab-size", "300", "--batch-size", "4",
           "--eval-steps", "2", "--bf16", "off", "--lr-schedule", "wsd", "--decay-ratio", "0.5",
           "--warmup-steps", "1", "--teacher-lr", "0.001"]


def _train(data, out, *extra):
    result = CliRunner().invoke(main, ["train", "--data", str(data), "-o", str(out), *TEACHER, *extra])
    assert result.exit_code == 0, result.output
    return result


def _state(path) -> dict:
    return json.loads((path / "trainer_state.json").read_text())


def _lr(checkpoint) -> float:
    return torch.load(checkpoint / "scheduler.pt", weights_only=False)["_last_lr"][0]


def test_wsd_decays_only_at_the_end():
    from transformers.optimization import get_wsd_schedule

    optim = OptimConfig(max_steps=100, lr_schedule="wsd", decay_ratio=0.2, warmup_steps=10)
    assert optim.decay_start() == 80 and optim.decay_start(200) == 160
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    from distillation.trainer import _schedule_args

    kwargs = _schedule_args(optim)["lr_scheduler_kwargs"]
    schedule = get_wsd_schedule(opt, 10, num_training_steps=100, **kwargs).lr_lambdas[0]
    assert schedule(5) == pytest.approx(0.5) and schedule(10) == schedule(79) == 1.0
    assert schedule(90) == pytest.approx(0.5) and schedule(100) == 0.0


def test_wsd_with_epochs_gets_its_step_budget():
    optim = OptimConfig(epochs=2, lr_schedule="wsd")
    assert optim.for_split(50).max_steps == 8  # ceil(50 / 16) * 2
    assert OptimConfig(max_steps=5, lr_schedule="wsd").for_split(50).max_steps == 5


@pytest.mark.slow
def test_extend_before_decay_keeps_the_schedule(tmp_path, caplog):
    """An interrupted run (newest checkpoint still in the stable phase) continued with a larger
    max_steps: the step count goes on and the learning rate stays at the peak."""
    data, out = write_dataset(tmp_path / "data", train=24), tmp_path / "runs"
    ratio = ("--decay-ratio", "0.25")
    _train(data, out, "--teacher-max-steps", "8", *ratio)   # decay from step 6; checkpoints 6, 8 kept
    checkpoints = out / "teacher" / "checkpoints"
    shutil.rmtree(checkpoints / "checkpoint-8")              # as if stopped after step 6
    (out / "teacher" / "kdassert_stage.json").unlink()
    with caplog.at_level(logging.WARNING, logger="distillation.resume"):
        _train(data, out, "--teacher-max-steps", "16", "--resume", *ratio)
    assert "step 6 -> max_steps 16; the stable phase now lasts to step 12" in caplog.text
    state = _state(out / "teacher" / "final")
    assert state["global_step"] == 16 and state["max_steps"] == 16
    evals = [e["step"] for e in state["log_history"] if "eval_loss" in e]
    assert sorted(set(evals)) == [2, 4, 6, 8, 10, 12, 14, 16]  # (+ the final evaluation at 16)
    assert _lr(checkpoints / "stable" / "checkpoint-12") == pytest.approx(1e-3)
    assert _lr(checkpoints / "checkpoint-16") == 0.0


@pytest.mark.slow
@pytest.mark.parametrize("budget, says", [
    # still in the new stable phase: it decays over the last steps of the new budget
    (8, "shortening the run: step 6 -> max_steps 8; the stable phase now lasts to step 6 "
        "(it was to end at 12)"),
    # cut so short that the new decay (from step 5) began in the past
    (7, "its decay would have begun at step 5, so the learning rate drops at once"),
])
def test_a_shortened_run_decays_and_ends_at_the_new_budget(tmp_path, caplog, budget, says):
    """A run planned for 16 steps, stopped at step 6 (a sitting turned out shorter than planned),
    continued with a smaller budget."""
    data, out = write_dataset(tmp_path / "data", train=24), tmp_path / "runs"
    ratio = ("--decay-ratio", "0.25")
    _train(data, out, "--teacher-max-steps", "8", *ratio)
    checkpoints = out / "teacher" / "checkpoints"
    shutil.rmtree(checkpoints / "checkpoint-8")
    shutil.rmtree(checkpoints / "stable")
    (out / "teacher" / "kdassert_stage.json").unlink()
    state_file = checkpoints / "checkpoint-6" / "trainer_state.json"
    state = json.loads(state_file.read_text())
    state["max_steps"] = 16
    state_file.write_text(json.dumps(state))
    with caplog.at_level(logging.WARNING, logger="distillation.resume"):
        _train(data, out, "--teacher-max-steps", str(budget), "--resume", *ratio)
    assert says in caplog.text
    assert _state(out / "teacher" / "final")["global_step"] == budget
    assert _lr(checkpoints / f"checkpoint-{budget}") == 0.0


@pytest.mark.slow
def test_a_decayed_run_continues_from_its_stable_checkpoint(tmp_path, caplog):
    data, out = write_dataset(tmp_path / "data", train=24), tmp_path / "runs"
    _train(data, out, "--teacher-max-steps", "4")   # finished: decayed over steps 2-4
    checkpoints = out / "teacher" / "checkpoints"
    assert _lr(checkpoints / "checkpoint-4") == 0.0
    assert _lr(checkpoints / "stable" / "checkpoint-2") == pytest.approx(1e-3)
    # every checkpoint is a loadable model: tokenizer and input format beside the weights
    assert (checkpoints / "checkpoint-4" / FORMAT_FILE).is_file()
    assert load_format_config(checkpoints / "checkpoint-4") == \
        load_format_config(out / "teacher" / "final")
    with caplog.at_level(logging.WARNING, logger="distillation.resume"):
        _train(data, out, "--teacher-max-steps", "8", "--resume")
    assert "already decayed (steps 2-4 of 4)" in caplog.text
    assert "stable-phase checkpoint, step 2" in caplog.text
    # step 4 redone, now in the stable phase (its checkpoint is the new stable one)
    assert _lr(checkpoints / "stable" / "checkpoint-4") == pytest.approx(1e-3)
    assert _state(out / "teacher" / "final")["global_step"] == 8

    png = tmp_path / "curve.png"
    result = CliRunner().invoke(main, ["loss-curve", str(out / "teacher"), "-o", str(png)])
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_with_nothing_to_resume_is_one_line(tmp_path):
    data = write_dataset(tmp_path / "data", train=8)
    result = CliRunner().invoke(main, ["train", "--data", str(data), "-o", str(tmp_path / "runs"),
                                       *TEACHER, "--teacher-max-steps", "2", "--resume"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: Nothing to resume: no checkpoint under")
    assert len(result.output.strip().splitlines()) == 1


def test_loss_points_from_log_history():
    from distillation.loss_curve import loss_points

    state = {"log_history": [{"step": 4, "eval_loss": 2.0}, {"step": 2, "eval_loss": 3.0},
                             {"step": 2, "loss": 3.5}]}
    assert loss_points(state) == [(2, 3.0), (4, 2.0)]
    assert loss_points(state, "loss") == [(2, 3.5)]


def test_steps_per_epoch_comes_from_the_log():
    from distillation.loss_curve import loss_points, steps_per_epoch

    state = {"log_history": [{"step": 250, "epoch": 0.037, "learning_rate": 5e-4, "loss": 5.7},
                             {"step": 6750, "epoch": 0.99867, "eval_loss": 4.09}]}
    assert steps_per_epoch(state) == pytest.approx(6759, abs=1)
    assert loss_points(state, "learning_rate") == [(250, 5e-4)]
    assert steps_per_epoch({"log_history": [{"step": 3}]}) is None
