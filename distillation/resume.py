"""Continuing a run from its newest checkpoint, possibly with a larger step budget.

With the ``wsd`` schedule (warmup-stable-decay, :class:`distillation.trainer.OptimConfig`) the
learning rate stays at its peak until the last ``decay_ratio`` of ``max_steps``. A run continued
with a larger ``max_steps`` from a checkpoint taken before its decay began just extends the
stable phase. :class:`StableCheckpoint` keeps the checkpoint of the step where the decay begins
(under ``checkpoints/stable/``), so a run that already decayed continues from there, and says so.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from transformers import TrainerCallback
from transformers.trainer_utils import get_last_checkpoint

from pytest_kdassert.core.errors import ConfigError

logger = logging.getLogger(__name__)

STABLE_DIR = "stable"


def checkpoint_state(checkpoint: Path) -> dict:
    """``trainer_state.json`` of a checkpoint (global_step, max_steps, log_history, ...)."""
    return json.loads((Path(checkpoint) / "trainer_state.json").read_text(encoding="utf-8"))


def resume_point(output_dir: Path, optim=None, require: bool = False) -> str | None:
    """The checkpoint a run in ``output_dir`` continues from (None: start afresh).

    ``require``: raise when there is none. Logs what the continuation does to the schedule."""
    last = get_last_checkpoint(str(output_dir)) if Path(output_dir).is_dir() else None
    if last is None:
        if require:
            raise ConfigError(f"Nothing to resume: no checkpoint under {output_dir}. Start the run "
                              "without --resume (or check --out and the stage's settings).")
        return None
    if optim is None:
        logger.info("resuming from %s", last)
        return last
    return _continuation(Path(output_dir), Path(last), optim)


def _continuation(output_dir: Path, last: Path, optim) -> str:
    state = checkpoint_state(last)
    step, old_max = state["global_step"], state.get("max_steps", optim.max_steps)
    if optim.max_steps > 0 and step >= optim.max_steps:
        logger.warning("checkpoint %s is at step %d, max_steps is %d: nothing left to train; give a "
                       "larger --max-steps to continue", last, step, optim.max_steps)
        return str(last)
    if old_max == optim.max_steps:
        logger.info("resuming from %s (step %d of %d)", last, step, old_max)
        return str(last)
    if optim.lr_schedule != "wsd":
        logger.warning("resuming %s (step %d) with max_steps %d instead of %d under the %s schedule: "
                       "the learning rate follows the new schedule from here (it jumps); use "
                       "lr_schedule wsd for runs that get extended", last, step, optim.max_steps,
                       old_max, optim.lr_schedule)
        return str(last)
    old_decay = optim.decay_start(old_max)
    if step <= old_decay:
        change = "extending" if optim.max_steps > old_max else "shortening"
        if step > optim.decay_start():  # cut so short that the new decay began in the past
            logger.warning("shortening the run: step %d -> max_steps %d; its decay would have begun at "
                           "step %d, so the learning rate drops at once to the decay's value at step "
                           "%d", step, optim.max_steps, optim.decay_start(), step)
            return str(last)
        logger.warning("%s the run: step %d -> max_steps %d; the stable phase now lasts to step %d "
                       "(it was to end at %d)", change, step, optim.max_steps, optim.decay_start(),
                       old_decay)
        return str(last)
    stable = output_dir / STABLE_DIR / f"checkpoint-{old_decay}"
    if stable.is_dir():
        _drop_decayed(output_dir, old_decay)
        logger.warning("this run already decayed (steps %d-%d of %d). Continuing from its last "
                       "stable-phase checkpoint, step %d (%s); the stable phase now lasts to step %d, "
                       "then decays to step %d", old_decay, step, old_max, old_decay, stable,
                       optim.decay_start(), optim.max_steps)
        return str(stable)
    logger.warning("this run already decayed (steps %d-%d of %d) and no stable-phase checkpoint was "
                   "kept: continuing from step %d, the learning rate goes back up to the peak",
                   old_decay, step, old_max, step)
    return str(last)


def _drop_decayed(output_dir: Path, after: int) -> None:
    """Remove the checkpoints of a decay that is being redone (newer than the stable one)."""
    for path in output_dir.glob("checkpoint-*"):
        if path.name.split("-")[-1].isdigit() and int(path.name.split("-")[-1]) > after:
            shutil.rmtree(path)


class StableCheckpoint(TrainerCallback):
    """wsd: save a checkpoint at the step where the decay begins and keep a copy under
    ``<output_dir>/stable/`` (out of the reach of ``save_total_limit``)."""

    def __init__(self, decay_start: int):
        self.decay_start = decay_start

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.decay_start and 0 < self.decay_start < state.max_steps:
            control.should_save = True

    def on_save(self, args, state, control, **kwargs):
        if state.global_step != self.decay_start or not state.is_world_process_zero:
            return
        source = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        target = Path(args.output_dir) / STABLE_DIR / source.name
        if source.is_dir():
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source, target)
            logger.info("kept the last stable-phase checkpoint: %s", target)
