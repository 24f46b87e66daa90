"""Where does GPU training go non-finite? The first steps of the route's teacher, in variants.

The first `kdassert gpu-route` on an H200 trained 1,815 teacher steps on NaN: the gradient norm
was already NaN at the first logged step (100) while the mean loss of those steps was finite
(5.98), so training diverged inside the warm-up. The CPU path (fp32 or bf16 autocast) never
showed it. This script trains the route's teacher for its first steps with the route's settings
(batch 128, AdamW 7e-4 warmed up over 90 steps, length buckets, bf16 autocast) and then one
change at a time, logging loss and gradient norm at every step, and writes what it saw to
``$OUT/stability.json`` after each variant (a run cut short still reports the finished ones):

    python benchmarks/gpu_stability.py --pack data/gpu-pack          # on the GPU machine
    python benchmarks/gpu_stability.py --pack data/gpu-pack --toy    # tiny models, CPU (a smoke test)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VARIANTS = {  # name: changes from the route's teacher settings
    "route (fused attention, bf16, lr 7e-4)": {},
    "library attention": {"attention": "library"},
    "fp32 (tf32 matmuls)": {"bf16": "off"},
    "lr 2e-4": {"lr": 2e-4},
    "AdamW not fused": {"fused_adamw": False},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pack", default="data/gpu-pack")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--warmup-steps", type=int, default=90)
    parser.add_argument("--seconds", type=float, default=200.0, help="Start no variant after this.")
    parser.add_argument("--toy", action="store_true", help="Tiny model and batches (CPU smoke test).")
    parser.add_argument("--out", default=os.environ.get("OUT", "out-gpu-stability"))
    args = parser.parse_args()

    import torch

    from distillation.gpu_route import RouteConfig
    from distillation.route_stages import RouteData
    from distillation.stages import init_model, train_on_splits
    from distillation.trainer import FINE_TUNE, OptimConfig

    start = time.perf_counter()
    if torch.cuda.is_available():
        torch.set_float32_matmul_precision("high")
    config = RouteConfig(pack=args.pack, eval_examples=64, scale="toy" if args.toy else "full")
    config = config.for_scale()
    data = RouteData.load(config)
    base = OptimConfig(max_steps=args.steps, batch_size=config.batch_size, lr=config.teacher_lr,
                       lr_schedule="wsd", warmup_steps=args.warmup_steps, decay_ratio=0.0,
                       checkpoints=False, logging_steps=1, progress_bar=False)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
              "torch": torch.__version__, "preset": config.teacher, "variants": {}}
    for name, changes in VARIANTS.items():
        if time.perf_counter() - start > args.seconds:
            report["variants"][name] = {"skipped": "out of time"}
            continue
        optim = replace(base, **changes)
        began = time.perf_counter()
        with tempfile.TemporaryDirectory() as work:
            model = init_model(config.teacher, data.tokenizer, config.seed)
            final = train_on_splits(model, data.tokenizer, data.train, None, Path(work), optim,
                                    data.fmt, distill=FINE_TUNE)
            history = json.loads((final / "trainer_state.json").read_text())["log_history"]
        report["variants"][name] = summarise(history, time.perf_counter() - began)
        print(name, json.dumps(report["variants"][name]), flush=True)
        (out / "stability.json").write_text(json.dumps(report, indent=1) + "\n")


def summarise(history: list[dict], seconds: float) -> dict:
    """First non-finite step, the loss and gradient norm curve (every 10th step and the 5 before
    the first non-finite one)."""
    steps = [(h.get("step"), h.get("loss"), h.get("grad_norm"), h.get("learning_rate"))
             for h in history if "loss" in h]
    bad = next((s for s, loss, g, _ in steps if not (_finite(loss) and _finite(g))), None)
    near = [row for row in steps if bad is not None and bad - 5 <= row[0] <= bad]
    return {"seconds": round(seconds, 1), "steps": len(steps), "first_nonfinite_step": bad,
            "max_finite_grad_norm": max((g for _, _, g, _ in steps if _finite(g)), default=None),
            "every_10th": [row for row in steps if row[0] % 10 == 0], "before_nonfinite": near}


def _finite(value) -> bool:
    return value is not None and math.isfinite(float(value))


if __name__ == "__main__":
    main()
