"""Where a training step goes: torch.profiler over real Trainer steps, grouped by module category.

    python benchmarks/profile_step.py [--data data/corpus/train.jsonl] [--steps 3] [--path both]

Profiles a teacher step (preset "student" on hard labels) and a distillation step (preset
"student-mini" reading a top-k int4 logit store) at the sizes we train (batch 16, input format
v2 with 3 exemplars, 448 source tokens), on the current path and the new one
(:mod:`distillation.fast_train`), and prints one markdown table: milliseconds per step and
share of the step for each category. Forward ops are assigned to the innermost module category
that ran them (forward hooks open a ``record_function`` range); backward ops to the category of
the forward op that recorded them (autograd sequence numbers). Without --data, synthetic
examples with a realistic spread of lengths are used.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from distill_step import synthetic_examples
from torch.profiler import ProfilerActivity, profile, record_function
from transformers import TrainerCallback

from distillation.logit_extract import LogitsConfig, extract_logits
from distillation.logit_store import LogitStore
from distillation.models import build_model
from distillation.tokenizer import TokenizerConfig, train_tokenizer
from distillation.trainer import DistillationTrainer, DistillConfig, OptimConfig, training_args
from pytest_kdassert.core.input_format import InputFormatConfig, build_target
from pytest_kdassert.core.loading import save_format_config
from pytest_kdassert.core.records import load_examples, write_examples

CATEGORIES = ("embeddings + LM head + loss", "attention", "feed-forward", "layer norms, dropout, other",
              "optimizer (incl. grad clipping)", "data loading and collation", "logit-store decoding")
EMBED, ATTN, FF, OTHER, OPTIM, DATA, STORE = CATEGORIES
UNACCOUNTED = "Python / Trainer overhead (not in any op)"
_PREFIX = "cat::"
_LOSS_OPS = ("log_softmax", "nll_loss", "cross_entropy", "kl_div", "logsumexp")


def module_category(name: str, module) -> str | None:
    kind = type(module).__name__
    if kind == "T5Attention":
        return ATTN
    if kind in ("T5DenseActDense", "T5DenseGatedActDense"):
        return FF
    if kind == "T5LayerNorm":
        return OTHER
    if isinstance(module, torch.nn.Embedding) and "relative_attention_bias" not in name or name == "lm_head":
        return EMBED
    return None


def add_category_hooks(model) -> None:
    """Open a ``cat::<category>`` profiler range around each categorised module's forward."""
    for name, module in model.named_modules():
        category = module_category(name, module)
        if category is None:
            continue

        def pre(mod, args, category=category):
            mod._kd_range = record_function(_PREFIX + category)
            mod._kd_range.__enter__()

        def post(mod, args, output):
            mod._kd_range.__exit__(None, None, None)

        module.register_forward_pre_hook(pre)
        module.register_forward_hook(post)


def wrapped(category: str, fn):
    def call(*args, **kwargs):
        with record_function(_PREFIX + category):
            return fn(*args, **kwargs)
    return call


class ProfileWindow(TrainerCallback):
    """Profile ``steps`` optimizer steps after ``warmup`` steps; record the window's wall time."""

    def __init__(self, warmup: int, steps: int):
        self.warmup, self.steps, self.prof, self.wall = warmup, steps, None, 0.0

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.warmup:
            self.prof = profile(activities=[ProfilerActivity.CPU])
            self.prof.start()
            self.start = time.perf_counter()
        elif state.global_step == self.warmup + self.steps:
            self.wall = time.perf_counter() - self.start
            self.prof.stop()
            control.should_training_stop = True


def _ancestor(event, predicate):
    while event is not None:
        if predicate(event):
            return event
        event = event.cpu_parent
    return None


def categorise(events) -> dict[str, float]:
    """Self CPU time (us) of every op, summed per category."""
    seq_category = {}
    for e in events:  # forward ops that recorded an autograd node: their category
        if e.sequence_nr >= 0 and not e.name.startswith("autograd::"):
            scope = _ancestor(e, lambda x: x.name.startswith(_PREFIX))
            category = scope.name[len(_PREFIX):] if scope else OTHER
            if any(op in e.name for op in _LOSS_OPS):
                category = EMBED
            seq_category.setdefault(e.sequence_nr, category)
    totals = dict.fromkeys(CATEGORIES, 0.0)
    for e in events:
        totals[_event_category(e, seq_category)] += e.self_cpu_time_total
    return totals


def _event_category(e, seq_category) -> str:
    if _ancestor(e, lambda x: x.name.startswith("Optimizer.") or x.name == _PREFIX + OPTIM):
        return OPTIM
    scope = _ancestor(e, lambda x: x.name.startswith(_PREFIX))
    if scope and scope.name[len(_PREFIX):] in (DATA, STORE):
        return scope.name[len(_PREFIX):]
    node = _ancestor(e, lambda x: x.name.startswith("autograd::engine::evaluate_function"))
    if node is not None:
        return seq_category.get(node.sequence_nr, OTHER)
    if scope is not None:
        category = scope.name[len(_PREFIX):]
        return EMBED if any(op in e.name for op in _LOSS_OPS) else category
    return EMBED if any(op in e.name for op in _LOSS_OPS) else OTHER


def profile_run(model, tokenizer, dataset, collator, optim, work, *, store=None, alpha=0.0,
                warmup=2, steps=3, trainer_kwargs=None) -> tuple[dict[str, float], float]:
    """(ms per step per category, wall ms per step) over ``steps`` profiled Trainer steps."""
    add_category_hooks(model)
    window = ProfileWindow(warmup, steps)
    args = training_args(optim, work / "ckpt", has_eval=False)
    args.save_strategy, args.logging_steps = "no", 10**6
    trainer = DistillationTrainer(model=model, args=args, data_collator=_Wrapped(collator),
                                  train_dataset=dataset, processing_class=tokenizer,
                                  distill=DistillConfig(alpha=alpha, temperature=1.0),
                                  callbacks=[window], **(trainer_kwargs or {}))
    if store is not None:
        store.batch_signal = wrapped(STORE, store.batch_signal)
    clip = torch.nn.utils.clip_grad_norm_
    torch.nn.utils.clip_grad_norm_ = wrapped(OPTIM, clip)
    try:
        trainer.train()
    finally:
        torch.nn.utils.clip_grad_norm_ = clip
    totals = categorise(window.prof.events())
    per_step = {k: v / 1000 / steps for k, v in totals.items()}
    wall = window.wall * 1000 / steps
    per_step[UNACCOUNTED] = max(0.0, wall - sum(per_step.values()))
    return per_step, wall


class _Wrapped:
    """A collator whose calls are one ``data loading and collation`` profiler range."""

    def __init__(self, collator):
        self.collator = collator

    def __call__(self, features):
        with record_function(_PREFIX + DATA):
            return self.collator(features)


def format_table(columns: dict[str, tuple[dict[str, float], float]]) -> str:
    names = list(columns)
    lines = ["| category | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for category in (*CATEGORIES, UNACCOUNTED):
        cells = [f"{per[category]:.0f} ms ({per[category] / wall:.0%})" for per, wall in columns.values()]
        lines.append(f"| {category} | " + " | ".join(cells) + " |")
    lines.append("| **step (wall)** | " + " | ".join(f"**{wall:.0f} ms**" for _, wall in columns.values()) + " |")
    return "\n".join(lines)


def sample_projects(path, count: int, seed: int):
    """About ``count`` examples of whole projects drawn at random (whole projects, so the
    exemplars each example gets from its own file are those of the full split)."""
    by_project = {}
    for example in load_examples(path):
        by_project.setdefault(example.project, []).append(example)
    projects = sorted(by_project)
    random.Random(seed).shuffle(projects)
    chosen = []
    for project in projects:
        if len(by_project[project]) <= count // 4:
            chosen.extend(by_project[project])
        if len(chosen) >= count:
            break
    return chosen


def prepare(cli, work: Path):
    """Examples, tokenizer (padded to the real vocabulary size), format and a top-k int4 store."""
    fmt = InputFormatConfig(cli.max_source_tokens, 64, version=2 if cli.exemplars else 1,
                            exemplars=cli.exemplars)
    examples = sample_projects(cli.data, cli.examples, cli.seed) if cli.data else synthetic_examples(cli.examples)
    from distillation.sources import example_sources

    texts = [t for e, s in zip(examples, example_sources(examples, fmt), strict=True)
             for t in (s, build_target(e.assertion))]
    tokenizer = train_tokenizer(texts, TokenizerConfig(vocab_size=cli.vocab_size))
    if len(tokenizer) < cli.vocab_size:
        tokenizer.add_tokens([f"<unused{i}>" for i in range(cli.vocab_size - len(tokenizer))])
    data_path = work / "train.jsonl"
    write_examples(data_path, examples)
    teacher_dir = work / "teacher"
    build_model("student", tokenizer).save_pretrained(teacher_dir)
    tokenizer.save_pretrained(teacher_dir)
    save_format_config(teacher_dir, fmt)
    store_dir = extract_logits(LogitsConfig(teacher=str(teacher_dir), data=str(data_path),
                                            out_dir=str(work / "store"), mode="topk", k=32, dtype="int4"))
    return examples, tokenizer, fmt, data_path, LogitStore.open(store_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="mining-schema JSONL, e.g. data/corpus/train.jsonl (default: "
                                       "synthetic examples)")
    parser.add_argument("--examples", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3, help="profiled steps (after 2 warm-up steps)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--exemplars", type=int, default=3)
    parser.add_argument("--max-source-tokens", type=int, default=448)
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--path", choices=("current", "new", "both"), default="both")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    cli = parser.parse_args()
    torch.set_num_threads(cli.threads)
    work = Path(tempfile.mkdtemp(prefix="kdassert-profile-"))
    examples, tokenizer, fmt, data_path, store = prepare(cli, work)
    optim = OptimConfig(max_steps=2 + cli.steps + 1, batch_size=cli.batch_size, bf16="off", eval_steps=10**6)
    paths = ("current", "new") if cli.path == "both" else (cli.path,)
    columns = {}
    for path in paths:
        for role, preset, alpha in (("teacher", "student", 0.0), ("distil", "student-mini", 0.5)):
            torch.manual_seed(0)
            model = build_model(preset, tokenizer)
            dataset, collator, kwargs = _setup(path, model, tokenizer, fmt, data_path, work,
                                               store if alpha else None)
            per, wall = profile_run(model, tokenizer, dataset, collator, _optim(path, optim), work,
                                    store=store if alpha else None, alpha=alpha, steps=cli.steps,
                                    trainer_kwargs=kwargs)
            columns[f"{role} step, {path} path ({preset})"] = (per, wall)
            print(f"{role} {path}: {wall:.0f} ms/step", flush=True)
    print()
    print(f"batch {cli.batch_size}, format v{fmt.version} ({fmt.exemplars} exemplars, "
          f"{fmt.max_source_tokens} source tokens), {cli.threads} threads, {len(tokenizer)}-token vocabulary, "
          f"{'synthetic data' if not cli.data else cli.data}; ms per step (share of the step)")
    print(format_table(columns))


def _setup(path, model, tokenizer, fmt, data_path, work, store):
    """(dataset, collator, trainer kwargs) of the current or the new training path; the optimiser
    settings of each path are applied by ``_optim``."""
    from distillation.data import EncodedDataset, Seq2SeqCollator, encode_examples
    from distillation.fast_t5 import use_fast_t5
    from distillation.token_cache import load_tokenized

    if path == "current":
        from train_throughput import LibraryCollator

        items = encode_examples(load_examples(data_path), tokenizer, fmt)
        collator = LibraryCollator(tokenizer)
        if store is not None:
            collator = _StoreCollator(collator, store)
        return EncodedDataset(items, with_index=store is not None), collator, {}
    use_fast_t5(model)
    dataset = load_tokenized(data_path, tokenizer, fmt, with_index=store is not None, cache_dir=work / "cache")
    return dataset, Seq2SeqCollator(tokenizer, store=store), {"length_buckets": True}


class _StoreCollator:
    """The current path's collator with the logit store's signal added (as before)."""

    def __init__(self, base, store):
        self.base, self.store = base, store

    def __call__(self, features):
        from distillation.signals import signal_to_batch

        indices = [f.pop("index") for f in features]
        batch = self.base(features)
        batch.update(signal_to_batch(self.store.batch_signal(indices, batch["labels"])))
        return batch


def _optim(path: str, optim: OptimConfig) -> OptimConfig:
    if path == "current":
        return replace(optim, sampler="group_by_length", attention="library", fused_adamw=False)
    return optim


if __name__ == "__main__":
    main()
