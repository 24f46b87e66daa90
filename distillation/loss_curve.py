"""``kdassert loss-curve``: validation (and training) loss against step, across resumed runs.

The history comes from the Trainer's ``trainer_state.json``: a continued run restores the log
history of the checkpoint it continues from, so the newest state holds the whole curve. The
newest of ``final/`` and the checkpoints is read (the stable-phase copy under
``checkpoints/stable/`` too). With several run directories, each gets its own line.
"""

from __future__ import annotations

import json
from pathlib import Path

from pytest_kdassert.core.errors import DataError


def newest_state(run_dir: Path) -> dict:
    """The trainer state with the most steps under a training stage's directory."""
    run_dir = Path(run_dir)
    candidates = [run_dir / "trainer_state.json", run_dir / "final" / "trainer_state.json",
                  *run_dir.glob("checkpoints/checkpoint-*/trainer_state.json"),
                  *run_dir.glob("checkpoints/stable/checkpoint-*/trainer_state.json"),
                  *run_dir.glob("checkpoint-*/trainer_state.json")]
    states = [json.loads(p.read_text(encoding="utf-8")) for p in candidates if p.is_file()]
    if not states:
        raise DataError(f"No trainer_state.json under {run_dir}: give a training stage's directory "
                        "(e.g. runs/cpu-v2/teacher) once it has written a checkpoint.")
    return max(states, key=lambda s: (s.get("global_step", 0), len(s.get("log_history", []))))


def loss_points(state: dict, key: str = "eval_loss") -> list[tuple[int, float]]:
    """(step, value) of every log entry that has ``key``, by step."""
    return sorted((e["step"], e[key]) for e in state.get("log_history", []) if key in e)


def steps_per_epoch(state: dict) -> float | None:
    """Optimizer steps in one epoch, from the log's (step, epoch) pairs (None: not logged)."""
    pairs = [(e["step"], e["epoch"]) for e in state.get("log_history", [])
             if e.get("epoch") and e.get("step")]
    return pairs[-1][0] / pairs[-1][1] if pairs else None


def plot_loss_curve(run_dirs: list[Path], out: Path, train_loss: bool = True) -> Path:
    """Draw validation loss vs step (and training loss, lighter) for each run, the learning
    rate on a second axis (a wsd run's stable phase and decay show there), and epochs along
    the top; returns ``out``."""
    from distillation.plots import PlotConfig, new_figure, save_png

    config = PlotConfig(sweep="-")  # figure size and dpi only
    fig, ax = new_figure(config)
    rates = None
    states = [newest_state(Path(run_dir)) for run_dir in run_dirs]
    for run_dir, state in zip(run_dirs, states, strict=True):
        label = Path(run_dir).name
        valid = loss_points(state, "eval_loss")
        if not valid and not train_loss:
            raise DataError(f"{run_dir}: no validation loss logged yet")
        if valid:
            ax.plot(*zip(*valid, strict=True), marker="o", markersize=3, label=f"{label}: validation loss")
        if train_loss and (train := loss_points(state, "loss")):
            ax.plot(*zip(*train, strict=True), alpha=0.4, label=f"{label}: training loss")
        rates = rates or loss_points(state, "learning_rate")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy loss")
    ax.set_title("loss vs step")
    handles, labels = ax.get_legend_handles_labels()
    if rates:  # the first run's schedule, dashed, on its own scale
        lr_ax = ax.twinx()
        (line,) = lr_ax.plot(*zip(*rates, strict=True), color="gray", linestyle="--", linewidth=1)
        lr_ax.set_ylabel("learning rate")
        lr_ax.set_ylim(bottom=0)
        handles, labels = [*handles, line], [*labels, f"{Path(run_dirs[0]).name}: learning rate"]
    per_epoch = steps_per_epoch(states[0]) if states else None
    if per_epoch:
        top = ax.secondary_xaxis("top", functions=(lambda s: s / per_epoch, lambda e: e * per_epoch))
        top.set_xlabel("epoch")
    ax.legend(handles, labels, loc="center right")  # clear of both curves: loss falls low, lr sits high
    return save_png(fig, Path(out), config.dpi)
