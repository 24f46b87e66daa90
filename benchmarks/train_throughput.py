"""Teacher training throughput: the current path against the new default path, in one run.

    python benchmarks/train_throughput.py [--data data/corpus] [--examples 256] [--rounds 3]

Same model (preset "student", 9.4M), same examples, same machine: every variant trains one
epoch over the same seeded sample of the training split (so each processes exactly the same
examples, only grouped into batches its own way), with the real Trainer loop, and the variants
take turns, round after round, so load from other processes falls on all of them alike.

* current: examples tokenised in memory, the library's collator (``DataCollatorForSeq2Seq``),
  the library's length grouping (mega-batches of 50 batches), transformers' T5 attention (SDPA
  with attention dropout 0.1), per-tensor AdamW, fp32;
* then one change at a time, ending at the new default path of ``kdassert train``: token ids from
  the memory-mapped cache, the numpy collator and whole-split length buckets; the fused T5
  attention (mask once per stack, no attention dropout); the fused RMS norm; fused AdamW;
  malloc keeping freed memory (:mod:`distillation.allocator`);
* and, measured only, the new path under bf16 autocast, and on one thread instead of two.

Each variant runs in a fresh process (the allocator setting is process-wide), one per round.

Prints examples/s of each (median over rounds), its share of the measured fp32 matmul peak
(training FLOPs on real tokens: 6 x weights per token plus the attention matmuls), what each
change gave, the length distribution of the inputs, and, last, ``speedup X.XX`` (new path
over the current one, total time over all rounds).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from distill_step import matmul_peak, synthetic_examples
from transformers import TrainerCallback

from distillation.allocator import keep_freed_memory
from distillation.data import EncodedDataset
from distillation.fast_t5 import use_fast_t5
from distillation.models import build_model
from distillation.sources import example_sources
from distillation.token_cache import TokenizedSplit
from distillation.tokenizer import TokenizerConfig, train_tokenizer
from distillation.trainer import DistillationTrainer, DistillConfig, OptimConfig, training_args
from pytest_kdassert.core.input_format import InputFormatConfig, build_target, example_source
from pytest_kdassert.core.records import load_examples


class LibraryCollator:
    """The collator of the current path: ``DataCollatorForSeq2Seq`` (tokenizer.pad per batch)."""

    def __init__(self, tokenizer):
        from transformers import DataCollatorForSeq2Seq

        self.base = DataCollatorForSeq2Seq(tokenizer, model=None, label_pad_token_id=-100,
                                           pad_to_multiple_of=8, return_tensors="pt")

    def __call__(self, features):
        return self.base(features)


@dataclass(frozen=True)
class Variant:
    name: str
    new_data: bool = False
    """token cache + numpy collator + whole-split length buckets (else: the current data path)"""
    attention: bool = False
    layer_norm: bool = False
    fused_adamw: bool = False
    allocator: bool = False
    """malloc keeps freed memory (:mod:`distillation.allocator`)"""
    bf16: bool = False
    threads: int | None = None
    """None: --threads"""


_NEW = dict(new_data=True, attention=True, layer_norm=True, fused_adamw=True, allocator=True)
VARIANTS = (
    Variant("current path"),
    Variant("+ token cache, numpy collator, length buckets", new_data=True),
    Variant("+ fused T5 attention (no attention dropout)", new_data=True, attention=True),
    Variant("+ fused RMS norm", new_data=True, attention=True, layer_norm=True),
    Variant("+ fused AdamW", new_data=True, attention=True, layer_norm=True, fused_adamw=True),
    Variant("+ malloc keeps freed memory = new default path", **_NEW),
    Variant("new path + bf16 autocast (measured only)", **_NEW, bf16=True),
    Variant("new path on 1 thread (measured only)", **_NEW, threads=1),
)
CURRENT, NEW = VARIANTS[0].name, VARIANTS[5].name


def sample_examples(cli):
    """A seeded sample of the training split (or synthetic examples), and the exemplar pool."""
    if cli.data is None:
        examples = synthetic_examples(cli.examples)
        return examples, examples
    pool = load_examples(Path(cli.data) / "train.jsonl")
    return random.Random(cli.seed).sample(pool, min(cli.examples, len(pool))), pool


def prepare(cli, work: Path):
    """Tokenizer (trained on the sample, padded to the real vocabulary size) and the sample's
    encoded items, inputs built with exemplars from the whole split (as in training)."""
    fmt = InputFormatConfig(cli.max_source_tokens, 64, version=2 if cli.exemplars else 1,
                            exemplars=cli.exemplars)
    examples, pool = sample_examples(cli)
    start = time.perf_counter()
    sources = example_sources(examples, fmt, pool=pool)
    exemplar_seconds = time.perf_counter() - start
    targets = [build_target(e.assertion) for e in examples]
    # BPE merges learnt from a few thousand examples of the split too, so lengths in tokens are
    # close to those of the tokenizer trained on the whole split
    extra = random.Random(cli.seed + 1).sample(pool, min(4000, len(pool)))
    texts = [t for pair in zip(sources, targets, strict=True) for t in pair]
    texts += [example_source(e, InputFormatConfig()) for e in extra]
    tokenizer = train_tokenizer(texts, TokenizerConfig(vocab_size=cli.vocab_size))
    if len(tokenizer) < cli.vocab_size:
        tokenizer.add_tokens([f"<unused{i}>" for i in range(cli.vocab_size - len(tokenizer))])
    start = time.perf_counter()
    ids = tokenizer(sources, max_length=fmt.max_source_tokens, truncation=True)["input_ids"]
    labels = tokenizer(targets, max_length=fmt.max_target_tokens, truncation=True)["input_ids"]
    items = [{"input_ids": s, "labels": t} for s, t in zip(ids, labels, strict=True)]
    timings = {"inputs with exemplars (each stage of the current path; cached on the new)": [exemplar_seconds],
               "tokenising (each stage of the current path; cached on the new)": [time.perf_counter() - start]}
    cache = work / "cache"
    TokenizedSplit.from_items(items, [e.id for e in examples]).save(cache)
    start = time.perf_counter()
    TokenizedSplit.open(cache)
    timings["opening the token cache (new path)"] = [time.perf_counter() - start]
    return items, tokenizer, fmt, cache, timings


def build_data(variant: Variant, tokenizer, cache: Path):
    """(dataset, collator, sampler) of a variant: the current path gets the same ids as lists."""
    from distillation.data import Seq2SeqCollator

    split = TokenizedSplit.open(cache)
    if variant.new_data:
        return split, Seq2SeqCollator(tokenizer), "buckets"
    items = [{k: v.tolist() for k, v in split[i].items()} for i in range(len(split))]
    return EncodedDataset(items), LibraryCollator(tokenizer), "group_by_length"


def run_worker(cli) -> None:
    """One variant, one epoch, in a fresh process (allocator settings are process-wide)."""
    from transformers import AutoTokenizer

    variant = VARIANTS[cli.worker]
    torch.set_num_threads(variant.threads or cli.threads)
    if variant.allocator:
        keep_freed_memory()
    work = Path(cli.work)
    tokenizer = AutoTokenizer.from_pretrained(str(work / "tokenizer"))
    wall, cpu = time_variant(variant, tokenizer, work / "cache", work, cli)
    print(json.dumps({"seconds": wall, "cpu_seconds": cpu}))


def spawn_worker(index: int, work: Path, cli) -> tuple[float, float]:
    command = [sys.executable, __file__, "--worker", str(index), "--work", str(work),
               "--batch-size", str(cli.batch_size), "--threads", str(cli.threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"worker {VARIANTS[index].name} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["seconds"], result["cpu_seconds"]


class Clock(TrainerCallback):
    """Wall and process CPU time (all threads) from the end of the first step to the last."""

    def __init__(self):
        self.start = self.end = None

    def on_step_end(self, args, state, control, **kwargs):
        now = (time.perf_counter(), time.process_time())
        self.start = self.start or now
        self.end = now


def time_variant(variant: Variant, tokenizer, cache, work, cli) -> tuple[float, float]:
    """Wall and CPU seconds for one epoch over the sample, less its first step (start-up)."""
    dataset, collator, sampler = build_data(variant, tokenizer, cache)
    torch.manual_seed(0)
    model = build_model("student", tokenizer)
    if variant.attention:
        use_fast_t5(model, layer_norm=variant.layer_norm)
    optim = OptimConfig(epochs=1, batch_size=cli.batch_size, bf16="on" if variant.bf16 else "off",
                        sampler=sampler, attention="fused" if variant.attention else "library",
                        fused_adamw=variant.fused_adamw, eval_steps=10**6, logging_steps=10**6)
    args = training_args(optim, work / "ckpt", has_eval=False)
    args.save_strategy = "no"
    clock = Clock()
    trainer = DistillationTrainer(model=model, args=args, data_collator=collator, train_dataset=dataset,
                                  processing_class=tokenizer, distill=DistillConfig(alpha=0.0),
                                  length_buckets=sampler == "buckets", callbacks=[clock])
    trainer.train()
    return clock.end[0] - clock.start[0], clock.end[1] - clock.start[1]


def train_flops(model_cfg, src: np.ndarray, tgt: np.ndarray, weights: dict) -> float:
    """Training FLOPs on real tokens: 6 x weights touched per token, plus the attention matmuls
    (QK^T and AV: 12 x L_q x L_k x inner per layer, forward and backward)."""
    inner = model_cfg.num_heads * model_cfg.d_kv
    dense = 6 * (weights["encoder"] * src.sum() + (weights["decoder"] + weights["head"]) * tgt.sum())
    attention = 12 * inner * (model_cfg.num_layers * (src ** 2).sum()
                              + model_cfg.num_decoder_layers * ((tgt ** 2).sum() + (tgt * src).sum()))
    return float(dense + attention)


def weight_counts(model) -> dict:
    def count(prefix):
        return sum(p.numel() for n, p in model.named_parameters() if n.startswith(prefix) and "embed" not in n
                   and "relative_attention_bias" not in n)
    return {"encoder": count("encoder."), "decoder": count("decoder."),
            "head": model.config.vocab_size * model.config.d_model}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/corpus" if Path("data/corpus/train.jsonl").is_file() else None,
                        help="dataset directory with train.jsonl (default: data/corpus if present, "
                             "else synthetic examples)")
    parser.add_argument("--examples", type=int, default=256, help="sample size (one epoch per variant)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--exemplars", type=int, default=3)
    parser.add_argument("--max-source-tokens", type=int, default=448)
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", default="all", help="'all', or 'pair' (current and new only)")
    parser.add_argument("--padding-examples", type=int, default=2000,
                        help="sample size of the padding comparison (0: skip)")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    cli = parser.parse_args()
    if cli.worker is not None:
        return run_worker(cli)
    torch.set_num_threads(cli.threads)
    work = Path(tempfile.mkdtemp(prefix="kdassert-throughput-"))
    items, tokenizer, fmt, cache, timings = prepare(cli, work)
    tokenizer.save_pretrained(str(work / "tokenizer"))
    split = TokenizedSplit.open(cache)
    src, tgt = split.lengths.astype(np.float64), split.label_lengths.astype(np.float64)
    model = build_model("student", tokenizer)
    per_example = train_flops(model.config, src, tgt, weight_counts(model)) / len(src)
    peak = statistics.median(matmul_peak(torch.float32, size=2048) for _ in range(3))
    print(f"data: {cli.data or 'synthetic'}, {len(items)} examples (seed {cli.seed}); format "
          f"v{fmt.version}, {fmt.exemplars} exemplars, {fmt.max_source_tokens} source tokens; batch "
          f"{cli.batch_size}; preset student ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M); "
          f"{cli.threads} threads")
    print(f"input tokens: median {np.median(src):.0f}, p90 {np.percentile(src, 90):.0f}, max {src.max():.0f} "
          f"({(src >= fmt.max_source_tokens).mean():.0%} at the {fmt.max_source_tokens} cap); target tokens: "
          f"median {np.median(tgt):.0f}, max {tgt.max():.0f}")
    print(f"fp32 matmul peak (2048^3, median of 3): {peak / 1e9:.1f} GFLOP/s; training FLOPs per "
          f"example {per_example / 1e9:.2f} GFLOP")
    if cli.padding_examples:
        padding_shares(cli, tokenizer, fmt)
    variants = VARIANTS if cli.variants == "all" else (VARIANTS[0], VARIANTS[5])
    seconds = {v.name: [] for v in variants}
    cpu = {v.name: [] for v in variants}
    counted = len(items) - cli.batch_size  # the first step is not timed
    for r in range(cli.rounds):
        for variant in variants:
            wall, used = spawn_worker(VARIANTS.index(variant), work, cli)
            seconds[variant.name].append(wall)
            cpu[variant.name].append(used)
            print(f"round {r + 1}: {variant.name}: {counted / wall:.2f} ex/s, "
                  f"{counted / used:.2f} ex per CPU-second", flush=True)
    report(seconds, cpu, counted, per_example, peak, timings)


def padding_shares(cli, tokenizer, fmt) -> None:
    """Encoder padding of each sampler over a larger sample of the split (lengths only)."""
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from distillation.batching import LengthBucketSampler, padding_share

    examples, pool = sample_examples(argparse.Namespace(**{**vars(cli), "examples": cli.padding_examples,
                                                           "seed": cli.seed + 2}))
    sources = example_sources(examples, fmt, pool=pool)
    lengths = np.array([len(x) for x in tokenizer(sources, max_length=fmt.max_source_tokens,
                                                  truncation=True)["input_ids"]])
    bs = cli.batch_size

    def cut(order):
        order = np.asarray(list(order))
        return [order[i:i + bs] for i in range(0, len(order), bs)]
    shares = {"random order": padding_share(lengths, cut(np.random.default_rng(0).permutation(len(lengths)))),
              "library group_by_length (current)": padding_share(
                  lengths, cut(LengthGroupedSampler(bs, lengths=lengths.tolist()))),
              "length buckets (new)": padding_share(lengths, LengthBucketSampler(lengths, bs).batches())}
    print(f"encoder padding over {len(lengths)} examples: " +
          ", ".join(f"{name} {share:.1%}" for name, share in shares.items()))


def report(seconds, cpu, counted, per_example, peak, timings) -> None:
    print("\n| variant | examples/s (median of rounds) | share of fp32 matmul peak | examples per "
          "CPU-second | vs previous (CPU) | vs current (CPU) |")
    print("|---|---|---|---|---|---|")
    previous = None
    base = counted / statistics.median(cpu[CURRENT])
    for name, times in seconds.items():
        rate = counted / statistics.median(times)
        per_cpu = counted / statistics.median(cpu[name])
        step = f"{per_cpu / previous:.2f}x" if previous else "-"
        print(f"| {name} | {rate:.2f} | {rate * per_example / peak:.1%} | {per_cpu:.2f} | {step} | "
              f"{per_cpu / base:.2f}x |")
        if "measured only" not in name:
            previous = per_cpu
    for label, values in timings.items():
        print(f"{label}: {statistics.median(values):.2f} s for the sample")
    print(f"examples per CPU-second, new over current: {sum(cpu[CURRENT]) / sum(cpu[NEW]):.2f}x")
    print(f"speedup {sum(seconds[CURRENT]) / sum(seconds[NEW]):.2f}")


if __name__ == "__main__":
    main()
