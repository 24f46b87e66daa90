"""Teacher training on hard labels and the distillation trainer, both on HF ``Seq2SeqTrainer``.

Checkpoints, resume, evaluation, mixed precision and multi-process launch (``accelerate
launch`` / ``torchrun``) come from the library: nothing here is specific to one process.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments, TrainerCallback

from distillation.logit_codec import QUANT_BITS, TOPK_DTYPES
from distillation.losses import distillation_loss
from distillation.signals import DenseSignal, pop_signal
from distillation.time_budget import TimeBudget, TimeBudgetCallback
from pytest_kdassert.core.errors import ConfigError, TrainingDivergedError, VocabMismatchError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OptimConfig:
    """Hyperparameters shared by teacher training and distillation."""

    epochs: float = 3.0
    """Passes over the training split (ignored when max_steps > 0)."""
    max_steps: int = -1
    """Stop after this many optimizer steps (-1: use epochs)."""
    batch_size: int = 16
    """Examples per device per step."""
    grad_accum: int = 1
    """Gradient accumulation steps."""
    lr: float = 5e-4
    """Peak learning rate."""
    warmup_ratio: float = 0.05
    """Warm-up as a share of the steps (used when warmup_steps is 0)."""
    warmup_steps: int = 0
    """Warm-up steps (0: warmup_ratio of the steps). With max_seconds the warm-up takes
    warmup_ratio of the time and at least this many steps."""
    lr_schedule: str = "linear"
    """linear (decay from the peak to 0 over the whole run), or wsd (warmup-stable-decay: the
    peak learning rate until the last decay_ratio of max_steps, then a linear decay to 0). A wsd
    run can be continued with a larger max_steps: the stable phase just extends."""
    decay_ratio: float = 0.1
    """wsd: the share of max_steps spent decaying, at the end."""
    max_seconds: float = 0.0
    """Stop training after this many seconds of wall clock (0: no limit; epochs and max_steps
    still cap the run). With a time limit the wsd schedule runs on the clock: warm-up over the
    first warmup_ratio of the time, decay over the last decay_ratio (:mod:`distillation.time_budget`)."""
    checkpoints: bool = True
    """Evaluate and save a checkpoint every eval_steps. False: neither (the run cannot be
    resumed); the final evaluation and model are still written."""
    weight_decay: float = 0.01
    seed: int = 0
    bf16: str = "auto"
    """bf16 mixed precision: "auto" (on where the hardware has fast bf16), "on" or "off"."""
    sampler: str = "buckets"
    """buckets (the whole split sorted by length into batches, batches shuffled: almost no
    padding), group_by_length (the library's mega-batches of 50 batches) or random."""
    attention: str = "fused"
    """fused (:mod:`distillation.fast_t5`: mask built once per stack, no attention dropout, fused
    RMS norm) or library (transformers' T5 attention, attention dropout 0.1)."""
    fused_adamw: bool = True
    """AdamW's fused kernel (one pass over all parameters) instead of the per-tensor loop."""
    keep_freed_memory: bool = True
    """On CPU, make malloc keep freed memory (:mod:`distillation.allocator`): no page faults
    for the big attention tensors of every step. Process-wide."""
    eval_steps: int = 500
    """Evaluate and checkpoint every N steps."""
    save_total_limit: int = 2
    logging_steps: int = 50
    progress_bar: bool = True
    """The Trainer's progress bar (where the library shows one); False: one printed line per
    logging step, for runs whose output is a log."""

    def __post_init__(self):
        if self.max_steps <= 0 and self.epochs <= 0:
            raise ConfigError("set epochs > 0 or max_steps > 0")
        if self.batch_size < 1 or self.grad_accum < 1:
            raise ConfigError("batch_size and grad_accum must be >= 1")
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if self.bf16 not in ("auto", "on", "off"):
            raise ConfigError(f"bf16 must be auto, on or off, got {self.bf16!r}")
        if self.eval_steps < 1:
            raise ConfigError(f"eval_steps must be >= 1, got {self.eval_steps}")
        _choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        _choice("sampler", self.sampler, SAMPLERS)
        _choice("attention", self.attention, ATTENTIONS)
        if not 0.0 <= self.decay_ratio <= 1.0 or self.warmup_steps < 0:
            raise ConfigError("decay_ratio must be in [0, 1] and warmup_steps >= 0")
        if self.max_seconds < 0:
            raise ConfigError(f"max_seconds must be >= 0, got {self.max_seconds}")
        if self.max_seconds and self.lr_schedule != "wsd":
            raise ConfigError("max_seconds needs lr_schedule wsd (the decay is placed by the clock)")

    def for_split(self, num_examples: int) -> OptimConfig:
        """This config with max_steps set from epochs when wsd needs it (the decay is placed
        before the last step, so its length must be known up front)."""
        if self.lr_schedule != "wsd" or self.max_steps > 0 or self.max_seconds:
            return self
        per_epoch = math.ceil(num_examples / (self.batch_size * self.grad_accum))
        return dataclasses.replace(self, max_steps=max(1, math.ceil(per_epoch * self.epochs)))

    def decay_start(self, max_steps: int | None = None) -> int:
        """wsd: the first step of the decay phase for a run of ``max_steps`` (default: ours)."""
        total = self.max_steps if max_steps is None else max_steps
        return total - round(self.decay_ratio * total)


LR_SCHEDULES = ("linear", "wsd")
SAMPLERS = ("buckets", "group_by_length", "random")
ATTENTIONS = ("fused", "library")


def _choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {choices}, got {value!r}")


LOGITS_MODES = ("topk", "quantized", "online")


@dataclass(frozen=True)
class DistillConfig:
    """What the student learns from the teacher, and how much: every distillation setting,
    validated here once. The loss is ``alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE``
    (:func:`distillation.losses.distillation_loss`)."""

    alpha: float = 0.5
    """Weight of the soft (teacher) term; 0 is plain fine-tuning."""
    temperature: float = 2.0
    """Softmax temperature T of the soft term (scaled by T^2)."""
    logits_mode: str = "topk"
    """topk or quantized (from the logit store), or online (live teacher, full logits)."""
    topk: int = 32
    """k of the top-k logit store."""
    topk_dtype: str = "int8"
    """Storage of top-k log-probs: fp16, int8 or int4."""
    bits: int = 8
    """Bits per logit in quantized mode: 4, 8 or 16."""

    def __post_init__(self):
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"alpha must be in [0, 1], got {self.alpha}")
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")
        if self.logits_mode not in LOGITS_MODES:
            raise ConfigError(f"logits_mode must be one of {LOGITS_MODES}, got {self.logits_mode!r}")
        if self.topk < 1:
            raise ConfigError(f"topk must be >= 1, got {self.topk}")
        if self.topk_dtype not in TOPK_DTYPES:
            raise ConfigError(f"topk_dtype must be one of {TOPK_DTYPES}, got {self.topk_dtype!r}")
        if self.bits not in QUANT_BITS:
            raise ConfigError(f"bits must be one of {QUANT_BITS}, got {self.bits}")

    @property
    def reads_store(self) -> bool:
        """The soft term comes from the logit store (alpha = 0 never reads it)."""
        return self.alpha > 0 and self.logits_mode != "online"

    @property
    def runs_teacher(self) -> bool:
        """The soft term comes from the teacher run live next to the student."""
        return self.alpha > 0 and self.logits_mode == "online"

    def store_name(self) -> str:
        """Directory name of the logit store these settings read; ``online`` when there is none.
        :func:`signal_settings` reads it back."""
        if self.logits_mode == "topk":
            return f"topk-k{self.topk}-{self.topk_dtype}"
        if self.logits_mode == "quantized":
            return f"quantized-{self.bits}bit"
        return "online"

    def tag(self) -> str:
        """``topk-a0.5-T2``: the part of a student's run name these settings decide."""
        return f"{self.logits_mode}-a{self.alpha:g}-T{self.temperature:g}"


_SIGNAL_NAME = re.compile(r"online|quantized-(?P<bits>\d+)bit|topk-k(?P<k>\d+)-(?P<dtype>\w+)")


def signal_settings(name: str) -> dict:
    """The :class:`DistillConfig` fields a store name sets (the inverse of ``store_name``):
    ``online``, ``quantized-8bit``, ``topk-k32-int8``. Values are validated by DistillConfig."""
    match = _SIGNAL_NAME.fullmatch(name.strip())
    if match is None:
        raise ConfigError(f"Unknown teacher signal {name!r}: use online, quantized-BITSbit "
                          "(e.g. quantized-8bit) or topk-kK-DTYPE (e.g. topk-k32-int8).")
    if match["bits"]:
        return {"logits_mode": "quantized", "bits": int(match["bits"])}
    if match["k"]:
        return {"logits_mode": "topk", "topk": int(match["k"]), "topk_dtype": match["dtype"]}
    return {"logits_mode": "online"}


FINE_TUNE = DistillConfig(alpha=0.0)
"""No soft term: the teacher's training, and the no-distillation baseline."""


def fast_bf16_available() -> bool:
    """bf16 is faster than fp32 here: a GPU that supports it, or a CPU with AMX. AVX512-BF16
    alone does not pay for autocast's casts (measured: benchmarks/train_throughput.py)."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags


def use_bf16(optim: OptimConfig) -> bool:
    return optim.bf16 == "on" or (optim.bf16 == "auto" and fast_bf16_available())


def training_args(optim: OptimConfig, output_dir: Path, has_eval: bool) -> Seq2SeqTrainingArguments:
    """Trainer arguments for one run; the same code runs under accelerate/torchrun."""
    return Seq2SeqTrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=optim.epochs,
        max_steps=optim.max_steps,
        per_device_train_batch_size=optim.batch_size,
        per_device_eval_batch_size=optim.batch_size,
        gradient_accumulation_steps=optim.grad_accum,
        learning_rate=optim.lr,
        # a float below 1 is a ratio of the total steps
        warmup_steps=optim.warmup_steps or optim.warmup_ratio,
        weight_decay=optim.weight_decay,
        **_schedule_args(optim),
        optim="adamw_torch_fused" if optim.fused_adamw else "adamw_torch",
        seed=optim.seed,
        bf16=use_bf16(optim),
        use_cpu=not torch.cuda.is_available(),
        # "buckets" is DistillationTrainer's own sampler (see _get_train_sampler)
        train_sampling_strategy="group_by_length" if optim.sampler == "group_by_length" else "random",
        eval_strategy="steps" if has_eval and optim.checkpoints else "no",
        eval_steps=optim.eval_steps,
        save_strategy="steps" if optim.checkpoints else "no",
        save_steps=optim.eval_steps,
        save_total_limit=optim.save_total_limit,
        logging_steps=optim.logging_steps,
        remove_unused_columns=False,  # the collator needs each item's index into the logit store
        dataloader_num_workers=0,
        report_to="none",
        disable_tqdm=None if optim.progress_bar else True,
    )


def _schedule_args(optim: OptimConfig) -> dict:
    if optim.lr_schedule == "linear":
        return {"lr_scheduler_type": "linear"}
    if optim.max_seconds:  # DistillationTrainer.create_scheduler puts a clock-driven one in place
        return {"lr_scheduler_type": "constant"}
    decay = optim.max_steps - optim.decay_start()
    return {"lr_scheduler_type": "warmup_stable_decay",
            "lr_scheduler_kwargs": {"num_decay_steps": decay, "decay_type": "linear"}}


def run_trainer(trainer: Seq2SeqTrainer, final_dir: Path, optim: OptimConfig | None = None,
                resume: bool = False) -> Path:
    """Train, continuing from the newest checkpoint if any (:func:`distillation.resume.resume_point`;
    ``resume``: there must be one), save model + tokenizer + log history to final_dir."""
    from distillation.resume import resume_point

    last = resume_point(Path(trainer.args.output_dir), optim, require=resume)
    trainer.train(resume_from_checkpoint=last)
    if trainer.eval_dataset is not None:
        metrics = trainer.evaluate()
        logger.info("final evaluation: %s", metrics)
    trainer.save_model(str(final_dir))
    if trainer.is_world_process_zero():
        trainer.state.save_to_json(str(Path(final_dir) / "trainer_state.json"))
    return final_dir


class DivergenceGuard(TrainerCallback):
    """Stop a run whose gradient norm or loss is no longer finite, at the first logging step
    that shows it. Once one step's gradients are NaN, clipping spreads them into every weight,
    and the Trainer would go on to the end (its loss filter even logs 0), saving a model of NaNs:
    the first H200 run trained for four minutes that way."""

    KEYS = ("grad_norm", "loss", "eval_loss")

    def on_log(self, args, state, control, logs=None, **kwargs):
        for key in self.KEYS:
            value = (logs or {}).get(key)
            if value is not None and not math.isfinite(float(value)):
                raise TrainingDivergedError(
                    f"Training diverged by step {state.global_step}: {key} is {value}. The "
                    "weights are no longer numbers; train again with a lower learning rate or "
                    "a longer warm-up (checkpoints saved before this step are still good).")


class DistillationTrainer(Seq2SeqTrainer):
    """``Seq2SeqTrainer`` whose loss is :func:`distillation.losses.distillation_loss`.

    The teacher signal comes with each batch (from the logit store, via the collator) or, when
    ``teacher_model`` is given, from running the teacher live on the batch (full logits). Only
    ``compute_loss`` is overridden. Batches without a signal (e.g. evaluation) get plain CE.
    """

    def __init__(self, *args, distill: DistillConfig, teacher_model=None, length_buckets: bool = False,
                 time_budget: TimeBudget | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.distill = distill
        self.length_buckets = length_buckets
        self.time_budget = time_budget
        self.add_callback(DivergenceGuard())
        if time_budget is not None:
            self.add_callback(TimeBudgetCallback(time_budget))
        self.teacher_model = teacher_model
        if teacher_model is not None:
            if teacher_model.config.vocab_size != self.model.config.vocab_size:
                raise VocabMismatchError("teacher and student logits have different vocabulary sizes")
            self.teacher_model = teacher_model.to(self.args.device).eval()

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        signal = pop_signal(inputs)
        # The CE term is the base class's: alpha = 0 is plain fine-tuning, bit for bit.
        ce, outputs = super().compute_loss(model, inputs, return_outputs=True,
                                           num_items_in_batch=num_items_in_batch)
        if signal is None and self._runs_teacher(model):
            signal = self._live_signal(inputs)
        if signal is not None:
            signal = signal.to(outputs.logits.device)
        # Normalised by this batch's target tokens, like T5's own CE (which ignores num_items).
        loss = distillation_loss(outputs.logits, inputs["labels"], signal, self.distill.alpha,
                                 self.distill.temperature, hard_loss=ce)
        return (loss, outputs) if return_outputs else loss

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        """With a time budget, the learning rate follows the clock
        (:meth:`distillation.time_budget.TimeBudget.lr_factor`); else the library's schedule."""
        if self.time_budget is None or self.lr_scheduler is not None:
            return super().create_scheduler(num_training_steps, optimizer)
        self.lr_scheduler = self.time_budget.scheduler(optimizer or self.optimizer)
        self._created_lr_scheduler = True
        return self.lr_scheduler

    def _get_train_sampler(self, train_dataset=None):
        """:class:`distillation.batching.LengthBucketSampler` when ``length_buckets`` is set
        (one process); the library's samplers otherwise."""
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if not self.length_buckets or self.args.world_size > 1 or not hasattr(dataset, "lengths"):
            return super()._get_train_sampler(train_dataset)
        from distillation.batching import LengthBucketSampler

        return LengthBucketSampler(dataset.lengths, self.args.train_batch_size, seed=self.args.seed)

    def _runs_teacher(self, model) -> bool:
        """Live teacher only while training: evaluation reports the plain CE for every alpha."""
        return self.teacher_model is not None and self.distill.alpha > 0 and model.training

    @torch.no_grad()
    def _live_signal(self, inputs) -> DenseSignal:
        teacher_inputs = {k: inputs[k] for k in ("input_ids", "attention_mask", "labels")}
        return DenseSignal(self.teacher_model(**teacher_inputs).logits.detach())
