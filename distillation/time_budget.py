"""Training for a fixed wall-clock time: the step count is whatever fits.

A run with ``OptimConfig.max_seconds`` stops once that much time has passed since its learning
rate schedule was created (the first step), and the schedule is warmup-stable-decay on the
clock instead of on the step counter: the learning rate climbs over the first ``warmup_ratio``
of the time, stays at its peak, and decays linearly to zero over the last ``decay_ratio``. So
the decay always ends when the time does, however fast the hardware turns out to be.

The warm-up also lasts at least ``warmup_steps`` optimizer steps. On a GPU a process's first
steps carry its CUDA start-up (about 14 s on an H200: benchmarks/gpu_stability.py), as long as
a 5% warm-up of a few minutes, so on the clock alone the learning rate is near its peak after
a step or two. The route's first H200 teacher, warmed up that way, had NaN gradients within 100
steps; the same steps warmed up over 90 steps stayed finite.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import torch
from transformers import TrainerCallback

from pytest_kdassert.core.errors import ConfigError

logger = logging.getLogger(__name__)


@dataclass
class TimeBudget:
    """The clock of one training run."""

    seconds: float
    """Wall-clock length of the run."""
    warmup_ratio: float = 0.05
    """Share of the time spent warming the learning rate up from zero."""
    decay_ratio: float = 0.1
    """Share of the time, at the end, spent decaying it to zero."""
    warmup_steps: int = 0
    """The warm-up lasts at least this many optimizer steps, however long they take."""
    clock: object = time.perf_counter
    """Seconds as a float (replaceable in tests)."""
    started: float | None = None

    def __post_init__(self):
        if self.seconds <= 0:
            raise ConfigError(f"a time budget must be > 0 seconds, got {self.seconds}")
        if not (0 <= self.warmup_ratio < 1 and 0 <= self.decay_ratio <= 1) or self.warmup_steps < 0:
            raise ConfigError("warmup_ratio must be in [0, 1), decay_ratio in [0, 1] and "
                              "warmup_steps >= 0")

    def start(self) -> None:
        self.started = self.clock()

    def fraction(self) -> float:
        """Share of the budget spent (0 before the start)."""
        return 0.0 if self.started is None else (self.clock() - self.started) / self.seconds

    def spent(self) -> bool:
        return self.fraction() >= 1.0

    def lr_factor(self, step: int = 0) -> float:
        """Multiplier of the peak learning rate now, after ``step`` optimizer steps (LambdaLR
        passes the count): the lower of the clock's warm-up and the steps' warm-up."""
        f = self.fraction()
        warm = f / self.warmup_ratio if self.warmup_ratio else 1.0
        if self.warmup_steps:
            warm = min(warm, step / self.warmup_steps)
        cool = (1.0 - f) / self.decay_ratio if self.decay_ratio else 1.0
        return max(0.0, min(1.0, warm, cool))

    def scheduler(self, optimizer) -> torch.optim.lr_scheduler.LambdaLR:
        """A LambdaLR driven by :meth:`lr_factor`; the clock starts now."""
        self.start()
        return torch.optim.lr_scheduler.LambdaLR(optimizer, self.lr_factor)


class TimeBudgetCallback(TrainerCallback):
    """Stop training once the budget is spent; log the step rate when it stops."""

    def __init__(self, budget: TimeBudget):
        self.budget = budget

    def on_step_end(self, args, state, control, **kwargs):
        if self.budget.spent():
            control.should_training_stop = True
            elapsed = self.budget.clock() - self.budget.started
            logger.info("time budget of %.0fs spent after %d steps (%.2f steps/s)",
                        self.budget.seconds, state.global_step, state.global_step / max(elapsed, 1e-9))
