"""The model-alone learning curve (issue 15): strict exact match against training examples seen.

    python benchmarks/learning_curve.py --run runs/cpu-v2/teacher \\
        [--data data/corpus-32k/test.jsonl] [--exemplar-pool data/corpus/test.jsonl] \\
        [--limit 200] [--json benchmarks/learning_curve_results.json] [--plot docs/plots/...png]

Scores every checkpoint of a training run (``checkpoints/checkpoint-N`` and ``final``) that
the results file does not hold yet with ``kdassert bench`` (beam 5, one thread, exemplars
drawn from ``--exemplar-pool`` for a format-v2 model, as bench does), and keeps, per step:
training examples seen (step x batch size, from the checkpoint's ``trainer_state.json``),
strict, lenient and top-5 exact match, token F1 and the validation loss logged at that step.
In-project retrieval (adapted) on the same examples is the line to cross: the curve shows
whether copying from the exemplars emerges as training goes on.

Checkpoints are rotated by the Trainer, so run this now and then while a run trains (it only
adds the steps it has not scored); a checkpoint written before checkpoints recorded their input
format gets ``kdassert_format.json`` from ``--exemplars``/``--max-source-tokens``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from distillation.bench import BenchConfig, run_bench
from pytest_kdassert.core.errors import KdassertError
from pytest_kdassert.core.input_format import InputFormatConfig
from pytest_kdassert.core.loading import FORMAT_FILE, save_format_config

RETRIEVAL_ROW = "in-project retrieval, adapted"


def checkpoints(run: Path) -> list[Path]:
    """The run's checkpoints, oldest first, then its final model."""
    found = sorted((run / "checkpoints").glob("checkpoint-*"),
                   key=lambda p: int(p.name.rsplit("-", 1)[1]))
    return found + ([run / "final"] if (run / "final" / "trainer_state.json").is_file() else [])


def trainer_state(directory: Path) -> dict:
    return json.loads((directory / "trainer_state.json").read_text())


def point(directory: Path, args) -> dict:
    """One checkpoint's place on the curve (runs kdassert bench on it)."""
    if not (directory / FORMAT_FILE).is_file():
        version = 2 if args.exemplars else 1
        save_format_config(directory, InputFormatConfig(
            max_source_tokens=args.max_source_tokens, version=version, exemplars=args.exemplars))
    state = trainer_state(directory)
    step = state["global_step"]
    batch = state.get("train_batch_size") or args.batch_size
    config = BenchConfig(data=args.data, models=(f"step-{step}={directory}",), out=None,
                         limit=args.limit, latency_examples=0, memory=False, threads=1,
                         in_project=True, exemplar_pool=args.exemplar_pool)
    rows = {r["name"]: r["metrics"] for r in run_bench(config)["rows"]}
    model = rows[f"step-{step}"]
    evals = [e["eval_loss"] for e in state["log_history"] if e.get("step") == step and "eval_loss" in e]
    return {"step": step, "examples_seen": step * batch,
            "strict": model["exact_match"], "lenient": model["lenient_match"],
            "top5": model["top_k_exact_match"], "token_f1": model["token_f1"],
            "eval_loss": evals[-1] if evals else None,
            "retrieval_adapted_strict": rows[RETRIEVAL_ROW]["exact_match"]}


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = sorted(results["points"], key=lambda p: p["step"])
    seen = [p["examples_seen"] for p in points]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(seen, [100 * p["strict"] for p in points], "o-", label="model alone, strict")
    ax.plot(seen, [100 * p["top5"] for p in points], "s--", label="model alone, top-5")
    ax.axhline(100 * points[-1]["retrieval_adapted_strict"], color="gray", linestyle=":",
               label="in-project retrieval, adapted")
    ax.set_xlabel("training examples seen")
    ax.set_ylabel(f"exact match, % of {results['config']['limit']} test examples")
    losses = [(s, p["eval_loss"]) for s, p in zip(seen, points, strict=True) if p["eval_loss"]]
    if losses:
        twin = ax.twinx()
        twin.plot(*zip(*losses, strict=True), "^-", color="tab:red", alpha=0.5, label="validation loss")
        twin.set_ylabel("validation loss (nats/token)")
        twin.legend(loc="center right")
    ax.legend(loc="upper left")
    ax.set_title(f"Learning curve: {results['config']['run']}")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="training run directory (its stage)")
    parser.add_argument("--data", default="data/corpus-32k/test.jsonl")
    parser.add_argument("--exemplar-pool", default="data/corpus/test.jsonl")
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--exemplars", type=int, default=3,
                        help="input format of checkpoints that don't record theirs")
    parser.add_argument("--max-source-tokens", type=int, default=448)
    parser.add_argument("--batch-size", type=int, default=16,
                        help="if trainer_state.json does not record it")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/learning_curve_results.json"))
    parser.add_argument("--plot", type=Path, default=None, help="also draw the curve (PNG)")
    args = parser.parse_args()
    config = {"run": str(args.run), "data": args.data, "exemplar_pool": args.exemplar_pool,
              "limit": args.limit, "beams": 5}
    results = json.loads(args.json.read_text()) if args.json.is_file() else {"config": config, "points": []}
    if results["config"] != config:
        parser.error(f"{args.json} holds a curve of other settings ({results['config']}); "
                     "pass another --json")
    done = {p["step"] for p in results["points"]}
    for directory in checkpoints(args.run):
        try:
            if trainer_state(directory)["global_step"] in done:
                continue
            new = point(directory, args)
        except (OSError, KdassertError) as exc:  # the Trainer rotated it away meanwhile
            print(f"skipped {directory}: {exc}", flush=True)
            continue
        done.add(new["step"])
        results["points"] = sorted([*results["points"], new], key=lambda p: p["step"])
        args.json.write_text(json.dumps(results, indent=2) + "\n")  # after each: checkpoints rotate
        print(json.dumps(new), flush=True)
    if args.plot and results["points"]:
        plot(results, args.plot)


if __name__ == "__main__":
    main()
