"""Distillation step cost, logit-store size and training throughput on this machine.

    python benchmarks/distill_step.py [--data data/corpus/train.jsonl] [--steps 12] [--preset student]

Measures, with the real Trainer loop (collator + forward + backward + optimizer):
  1. the bf16 and fp32 matmul peak (2048-sized matrices), in the same process;
  2. steps/s of plain fine-tuning vs distillation from the logit store (topk k=32 int8/int4,
     quantized 8-bit) and online distillation -> the distil/plain step-time ratio (target <= 1.15);
  3. bytes per target token of each store mode (target: topk k=32 <= 64 B);
  4. throughput as a fraction of the bf16 matmul peak, for the speed tricks in turn: fixed
     padding fp32 -> dynamic padding -> + length bucketing -> + bf16.
Without --data, synthetic examples with a realistic spread of lengths are used.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from transformers import TrainerCallback

from distillation.data import EncodedDataset, Seq2SeqCollator, encode_examples
from distillation.logit_extract import LogitsConfig, extract_logits
from distillation.logit_store import LogitStore
from distillation.models import build_model, count_parameters
from distillation.tokenizer import TokenizerConfig, train_tokenizer
from distillation.trainer import DistillationTrainer, DistillConfig, OptimConfig, training_args
from pytest_kdassert.core.input_format import InputFormatConfig, build_target, example_source
from pytest_kdassert.core.loading import save_format_config
from pytest_kdassert.core.records import Example, load_examples, write_examples


def matmul_peak(dtype, size=2048, repeats=6) -> float:
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def synthetic_examples(count: int, seed: int = 0) -> list[Example]:
    rng = random.Random(seed)
    words = ["value", "result", "items", "config", "parser", "node", "count", "name", "data", "x"]
    examples = []
    for i in range(count):
        body = [f"    {rng.choice(words)}_{j} = {rng.choice(words)}({rng.randint(0, 99)})"
                for j in range(rng.randint(1, 30))]
        test = [f"    {rng.choice(words)} = setup_{j}({rng.randint(0, 9)}, '{rng.choice(words)}')"
                for j in range(rng.randint(1, 20))]
        name = rng.choice(words)
        examples.append(Example(
            id=f"s:{i}", project="s", test_file="t.py", test_name=f"test_{i}", focal_name=f"m.f{i}",
            focal_source="\n".join([f"def f{i}(a, b):", *body, "    return a"]),
            test_source_masked="\n".join([f"def test_{i}():", *test, "    <AssertPlaceHolder>"]),
            assertion=f"assert {name}.{rng.choice(words)} == {rng.randint(0, 999)}"))
    return examples


class StepTimer(TrainerCallback):
    """Wall time between consecutive optimizer steps (data loading included)."""

    def __init__(self):
        self.times, self._last = [], None

    def on_step_end(self, args, state, control, **kwargs):
        now = time.perf_counter()
        if self._last is not None:
            self.times.append(now - self._last)
        self._last = now


def time_training(model_fn, tokenizer, dataset, optim, work, store=None, alpha=0.0, teacher=None,
                  pad_multiple=8, fixed_length=None):
    model = model_fn()
    args = training_args(optim, work / "ckpt", has_eval=False)
    args.save_strategy = "no"
    args.logging_steps = 10**6
    collator = Seq2SeqCollator(tokenizer, store=store, pad_to_multiple_of=pad_multiple,
                               pad_to_length=fixed_length)
    timer = StepTimer()
    trainer = DistillationTrainer(model=model, args=args, data_collator=collator, train_dataset=dataset,
                                  processing_class=tokenizer,
                                  distill=DistillConfig(alpha=alpha, temperature=2.0),
                                  teacher_model=teacher, callbacks=[timer])
    trainer.train()
    step = statistics.median(timer.times[2:] or timer.times)
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="mining-schema JSONL (default: synthetic examples)")
    parser.add_argument("--examples", type=int, default=512)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--preset", default="student")
    parser.add_argument("--teacher-preset", default="student-small",
                        help="random-init teacher used to fill the stores (its size only affects extraction time)")
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--stores", default="topk-k32-int8,topk-k32-int4,topk-k32-fp16,quantized-8bit",
                        help="comma-separated store variants to build and time")
    parser.add_argument("--json", help="also write the results here")
    cli = parser.parse_args()
    torch.manual_seed(0)
    results = {"peak_tflops_bf16": matmul_peak(torch.bfloat16) / 1e12,
               "peak_tflops_fp32": matmul_peak(torch.float32) / 1e12}
    print(f"matmul peak: bf16 {results['peak_tflops_bf16']:.3f} TFLOP/s, fp32 {results['peak_tflops_fp32']:.3f}")

    fmt = InputFormatConfig()
    examples = load_examples(cli.data, limit=cli.examples) if cli.data else synthetic_examples(cli.examples)
    texts = [t for e in examples for t in (example_source(e, fmt), build_target(e.assertion))]
    tokenizer = train_tokenizer(texts, TokenizerConfig(vocab_size=cli.vocab_size))
    if len(tokenizer) < cli.vocab_size:  # a small sample learns fewer merges: pad to a real vocab size
        tokenizer.add_tokens([f"<unused{i}>" for i in range(cli.vocab_size - len(tokenizer))])
    print(f"vocabulary: {len(tokenizer)} tokens; {len(examples)} examples")
    items = encode_examples(examples, tokenizer, fmt)
    work = Path(tempfile.mkdtemp(prefix="kdassert-bench-"))
    data_path = work / "train.jsonl"
    write_examples(data_path, examples)

    teacher_dir = work / "teacher"
    teacher = build_model(cli.teacher_preset, tokenizer)
    teacher.save_pretrained(teacher_dir)
    tokenizer.save_pretrained(teacher_dir)
    save_format_config(teacher_dir, fmt)

    stores = {}
    for name, kwargs in {"topk-k32-int8": dict(mode="topk", k=32, dtype="int8"),
                         "topk-k32-int4": dict(mode="topk", k=32, dtype="int4"),
                         "topk-k32-fp16": dict(mode="topk", k=32, dtype="fp16"),
                         "quantized-8bit": dict(mode="quantized", bits=8)}.items():
        if name not in cli.stores.split(","):
            continue
        start = time.perf_counter()
        out = extract_logits(LogitsConfig(teacher=str(teacher_dir), data=str(data_path),
                                          out_dir=str(work / name), batch_size=32, **kwargs))
        stores[name] = LogitStore.open(out)
        total = sum(Path(out, s["file"]).stat().st_size for s in stores[name].manifest["shards"])
        tokens = stores[name].manifest["num_tokens"]
        results[f"store_{name}_bytes_per_token"] = stores[name].bytes_per_token()
        results[f"store_{name}_file_bytes_per_token"] = total / tokens
        print(f"store {name}: {stores[name].bytes_per_token()} B/token (files {total / tokens:.1f} B/token "
              f"incl. header), extraction {time.perf_counter() - start:.1f}s for {tokens} tokens")

    def model_fn():
        torch.manual_seed(0)
        return build_model(cli.preset, tokenizer)

    params = count_parameters(model_fn())
    results["params"] = params
    base = OptimConfig(max_steps=cli.steps, batch_size=cli.batch_size, bf16="on", eval_steps=10**6)
    plain_ds = EncodedDataset(items)
    indexed_ds = EncodedDataset(items, with_index=True)

    # 1. distillation from the store vs plain fine-tuning (all with every speed trick on)
    plain = time_training(model_fn, tokenizer, plain_ds, base, work)
    results["step_plain_s"] = plain
    print(f"plain fine-tuning step: {plain * 1000:.0f} ms")
    for name, store in stores.items():
        step = time_training(model_fn, tokenizer, indexed_ds, base, work, store=store, alpha=0.5)
        results[f"step_{name}_s"] = step
        print(f"distil step from {name}: {step * 1000:.0f} ms = {step / plain:.3f}x plain")
    online_teacher = build_model(cli.teacher_preset, tokenizer).eval()
    step = time_training(model_fn, tokenizer, plain_ds, base, work, alpha=0.5, teacher=online_teacher)
    results["step_online_s"] = step
    print(f"online distil step ({cli.teacher_preset} teacher): {step * 1000:.0f} ms = {step / plain:.3f}x plain")

    # 1b. the same overhead measured in isolation (robust to a busy machine): store decode in the
    # collator plus the soft loss's forward and backward, relative to the plain step.
    for name, store in stores.items():
        extra = _overhead(tokenizer, items, store, cli.batch_size)
        results[f"overhead_{name}_s"] = extra
        print(f"isolated distil overhead {name}: {extra * 1000:.1f} ms/step = "
              f"{(plain + extra) / plain:.3f}x plain")

    # 2. throughput and the tricks that raise it (plain fine-tuning)
    useful = _useful_flops(model_fn(), items)
    variants = [
        ("fp32, fixed padding to 320, random order", replace(base, bf16="off", sampler="random"), 320),
        ("fp32, dynamic padding", replace(base, bf16="off", sampler="random"), None),
        ("fp32, dynamic padding + length bucketing", replace(base, bf16="off"), None),
        ("bf16, dynamic padding + length bucketing", base, None),
    ]
    for label, optim, fixed in variants:
        step = time_training(model_fn, tokenizer, plain_ds, optim, work, fixed_length=fixed)
        flops = useful * cli.batch_size / step
        results[f"throughput[{label}]"] = {"step_s": step, "examples_per_s": cli.batch_size / step,
                                            "useful_tflops": flops / 1e12,
                                            "fraction_of_bf16_peak": flops / 1e12 / results["peak_tflops_bf16"]}
        print(f"{label}: {cli.batch_size / step:.1f} ex/s, {flops / 1e12:.3f} useful TFLOP/s = "
              f"{flops / 1e12 / results['peak_tflops_bf16']:.1%} of bf16 peak")
    if cli.json:
        Path(cli.json).write_text(json.dumps(results, indent=2) + "\n")


def _best_of(fn, repeats=7) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _overhead(tokenizer, items, store, batch_size) -> float:
    """Extra seconds per step: collating with the store, and the soft loss (forward + backward)."""
    from distillation.losses import soft_loss
    from distillation.signals import pop_signal

    plain, with_store = Seq2SeqCollator(tokenizer), Seq2SeqCollator(tokenizer, store=store)
    features = [{**items[i], "index": i} for i in range(batch_size)]
    collate_plain = _best_of(lambda: plain([{k: v for k, v in f.items() if k != "index"} for f in features]))
    collate_store = _best_of(lambda: with_store([dict(f) for f in features]))
    batch = with_store([dict(f) for f in features])
    signal = pop_signal(batch)
    logits = torch.randn(*batch["labels"].shape, store.vocab_size, requires_grad=True)

    def loss_step():
        soft_loss(logits, signal, batch["labels"], 2.0).backward()

    return collate_store - collate_plain + _best_of(loss_step)


def _useful_flops(model, items) -> float:
    """Training FLOPs per example on non-padding tokens: 6 x (weights touched) per token."""
    cfg = model.config
    enc = sum(p.numel() for n, p in model.named_parameters() if n.startswith("encoder.") and "embed" not in n)
    dec = sum(p.numel() for n, p in model.named_parameters() if n.startswith("decoder.") and "embed" not in n)
    src = statistics.mean(len(i["input_ids"]) for i in items)
    tgt = statistics.mean(len(i["labels"]) for i in items)
    return 6 * (enc * src + (dec + cfg.vocab_size * cfg.d_model) * tgt)


if __name__ == "__main__":
    main()
