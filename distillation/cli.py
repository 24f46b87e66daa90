"""The ``kdassert`` command line: thin click commands over the library.

Each command parses options, builds a ``*Config`` object and calls one library function.
Library errors (``KdassertError``) become clean one-line messages, never tracebacks.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from distillation import __version__
from distillation.cli_gpu import gpu_route_command, pack_command
from pytest_kdassert.core.errors import KdassertError


class _KdassertGroup(click.Group):
    """A click group that reports library errors as one ``Error: <message>`` line, exit code 1.

    A ``UnicodeDecodeError`` that a reader let through is a user error too (an input file
    that is not UTF-8), so it gets the same treatment instead of a traceback.
    """

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KdassertError as exc:
            raise click.ClickException(one_line(str(exc))) from exc
        except UnicodeDecodeError as exc:
            raise click.ClickException(
                f"an input file is not UTF-8 (byte {exc.object[exc.start]:#04x} at offset "
                f"{exc.start}); re-encode it, e.g. with `iconv -t UTF-8`") from exc


def one_line(message: str) -> str:
    """A library message on one line (a wrapped message or a tool's traceback text joined)."""
    return " ".join(message.split())


@click.group(cls=_KdassertGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", count=True, help="Less log output.")
@click.version_option(__version__, prog_name="kdassert")
def main(verbose: int, quiet: int) -> None:
    """Mine assertion data, train a teacher, distil a small student, and benchmark it.

    \b
    Typical pipeline:
      kdassert mine --corpus default -o data/corpus     # build the dataset
      kdassert train --config configs/train-cpu.toml    # tokenizer, teacher, logits, student
      kdassert bench --data data/corpus/test.jsonl --model runs/cpu/students/NAME/final
    """
    level = logging.WARNING - 10 * verbose + 10 * quiet
    logging.basicConfig(level=max(logging.DEBUG, level), format="%(levelname)s %(name)s: %(message)s")


main.add_command(pack_command)
main.add_command(gpu_route_command)


# --- mining commands (issue: mining) -------------------------------------------------------

@main.command("mine")
@click.argument("sources", nargs=-1)
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output directory (train/valid/test.jsonl, stats.json, mine_config.json).")
@click.option("--corpus", default=None,
              help="Corpus file of pinned specs; 'default' = the bundled training corpus.")
@click.option("--cache-dir", default="~/.cache/kdassert/sources", show_default=True,
              help="Where pypi: sources are downloaded and unpacked.")
@click.option("--split", type=click.Choice(["project", "none"]), default="project",
              show_default=True, help="Split by project, or write one examples.jsonl.")
@click.option("--max-per-project", type=int, default=5000, show_default=True,
              help="Cap on examples per project (0 = no cap).")
@click.option("--valid-fraction", type=float, default=0.05, show_default=True,
              help="Share of projects in valid.jsonl.")
@click.option("--test-fraction", type=float, default=0.05, show_default=True,
              help="Share of projects in test.jsonl (held-out projects always go there).")
@click.option("--workers", type=int, default=2, show_default=True, help="Worker processes.")
@click.option("--max-assertions", type=int, default=3, show_default=True,
              help="Only tests with 1..N assertions yield examples.")
@click.option("--focal-strategy", type=click.Choice(["dataflow", "last_call"]),
              default="dataflow", show_default=True, help="How the focal function is chosen.")
def mine_command(sources, out_dir, corpus, cache_dir, split, max_per_project, valid_fraction,
                 test_fraction, workers, max_assertions, focal_strategy):
    """Mine (focal function, masked test, assertion) examples from SOURCES.

    A SOURCE is a directory (an unpacked repository or sdist) or pypi:NAME==VERSION.
    """
    from distillation.mining.mine import MineConfig, mine

    config = MineConfig(out_dir=out_dir, sources=list(sources), corpus=corpus,
                        cache_dir=cache_dir, split=split,
                        max_per_project=max_per_project or None,
                        valid_fraction=valid_fraction, test_fraction=test_fraction,
                        workers=workers, max_assertions=max_assertions,
                        focal_strategy=focal_strategy)
    stats = mine(config)
    sizes = ", ".join(f"{name} {n}" for name, n in stats["split_sizes"].items())
    click.echo(f"{stats['examples']} examples from {stats['num_projects']} projects ({sizes}); "
               f"focal found for {stats['focal_found_rate']:.1%}. Written to {out_dir}")


@main.command("sample")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="New dataset directory for the subset.")
@click.option("--train", "train", type=int, help="Training examples to keep (default: all).")
@click.option("--valid", "valid", type=int, help="Validation examples to keep (default: all).")
@click.option("--test", "test", type=int, help="Test examples to keep (default: all).")
@click.option("--seed", default=0, show_default=True, help="Random seed of the draw.")
def sample_command(data_dir, out_dir, train, valid, test, seed):
    """Draw a seeded random subset of a mined dataset from every project.

    Mined splits are grouped by project, so `--limit N` elsewhere sees only the first few
    projects; a subset made here covers all of them. Example:

    \b
      kdassert sample data/corpus -o data/corpus-32k --train 32000 --valid 1000 --test 2000
    """
    from distillation.sample import SampleConfig, sample_dataset

    sizes = {"train": train, "valid": valid, "test": test}
    written = sample_dataset(SampleConfig(data_dir, out_dir, sizes, seed))
    click.echo(", ".join(f"{split}: {n}" for split, n in written.items()) + f" examples in {out_dir}")


# --- training commands (issue: train) ------------------------------------------------------


@main.command("tokenizer")
@click.option("--data", "data", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Training split (mining-schema JSONL).")
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory to write tokenizer.json into.")
@click.option("--vocab-size", default=8192, show_default=True, help="BPE vocabulary size.")
@click.option("--min-frequency", default=2, show_default=True, help="Minimum count of a merge.")
@click.option("--limit", type=int, default=None, help="Use only the first N examples.")
def tokenizer_command(data, out_dir, vocab_size, min_frequency, limit):
    """Train the byte-level BPE tokenizer on model inputs and targets of a split."""
    from pathlib import Path

    from distillation.stages import build_tokenizer
    from distillation.tokenizer import TokenizerConfig
    from pytest_kdassert.core.input_format import InputFormatConfig

    config = TokenizerConfig(vocab_size=vocab_size, min_frequency=min_frequency)
    build_tokenizer(Path(data), Path(out_dir), config, InputFormatConfig(), limit)
    click.echo(f"tokenizer written to {out_dir}")


@main.command("logits")
@click.option("--teacher", required=True, help="Teacher model directory.")
@click.option("--data", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Split to run the teacher over (mining-schema JSONL).")
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Logit store directory.")
@click.option("--mode", type=click.Choice(["topk", "quantized"]), default="topk", show_default=True)
@click.option("-k", "--topk", "k", default=32, show_default=True, help="Top-k kept per token (topk).")
@click.option("--dtype", type=click.Choice(["fp16", "int8", "int4"]), default="int8", show_default=True,
              help="Storage of top-k log-probs.")
@click.option("--bits", type=click.Choice(["4", "8", "16"]), default="8", show_default=True,
              help="Bits per logit (quantized).")
@click.option("--batch-size", default=32, show_default=True)
@click.option("--num-shards", default=0, show_default=True,
              help="Split the store into N shards (0: one per 8,192 examples). A shard finished by "
                   "an earlier run with the same settings is kept: rerun to continue.")
@click.option("--shard-index", type=int, default=None, help="Write only this shard (one process each).")
@click.option("--limit", type=int, default=None, help="Use only the first N examples.")
@click.option("--exemplar-pool", type=click.Path(exists=True, dir_okay=False),
              help="JSONL whose tests give format-v2 exemplars (default: --data itself), e.g. the "
                   "full split a sample was drawn from, as in `kdassert train --exemplar-pool`.")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda or auto.")
def logits_command(teacher, data, out_dir, mode, k, dtype, bits, batch_size, num_shards, shard_index,
                   limit, exemplar_pool, device):
    """Store a teacher's soft targets for a split (teacher-forced on the ground truth)."""
    from distillation.logit_extract import LogitsConfig, extract_logits

    config = LogitsConfig(teacher=teacher, data=data, out_dir=out_dir, mode=mode, k=k, dtype=dtype,
                          bits=int(bits), batch_size=batch_size, num_shards=num_shards,
                          shard_index=shard_index, limit=limit, exemplar_pool=exemplar_pool,
                          device=device)
    extract_logits(config)
    click.echo(f"logit store: {out_dir}")


@main.command("train")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="TOML file with TrainConfig keys; options given here override it.")
@click.option("--data", "data_dir", help="Directory with train/valid/test.jsonl.")
@click.option("-o", "--out", "out_dir", help="Output directory for every stage.")
@click.option("--teacher", help="Teacher preset (teacher, student, ...) or model directory.")
@click.option("--student", help="Student preset or model directory.")
@click.option("--alpha", type=float, help="Weight of the distillation term (0 = fine-tuning).")
@click.option("--temperature", type=float, help="Distillation temperature T.")
@click.option("--logits-mode", type=click.Choice(["topk", "quantized", "online"]))
@click.option("--topk", type=int, help="k of the top-k logit store.")
@click.option("--topk-dtype", type=click.Choice(["fp16", "int8", "int4"]))
@click.option("--bits", type=int, help="Bits per logit in quantized mode (4, 8, 16).")
@click.option("--epochs", type=float, help="Student epochs.")
@click.option("--max-steps", type=int, help="Student optimizer steps (overrides epochs).")
@click.option("--teacher-epochs", type=float)
@click.option("--teacher-max-steps", type=int)
@click.option("--batch-size", type=int)
@click.option("--lr", type=float, help="Student learning rate.")
@click.option("--teacher-lr", type=float)
@click.option("--seed", type=int)
@click.option("--bf16", type=click.Choice(["auto", "on", "off"]))
@click.option("--eval-steps", type=int, help="Evaluate and checkpoint every N steps.")
@click.option("--vocab-size", type=int, help="Tokenizer vocabulary size.")
@click.option("--max-source-tokens", type=int, help="Token budget of a model input.")
@click.option("--exemplars", type=int,
              help="In-project exemplars per input (0: input format v1; k: v2 with k).")
@click.option("--exemplar-pool", type=click.Path(exists=True, file_okay=False),
              help="Dataset directory whose splits give the exemplars (default: the data's own): "
                   "for a `kdassert sample` subset, the dataset it was drawn from.")
@click.option("--limit", type=int, help="Use only the first N examples of each split.")
@click.option("--bench-limit", type=int, help="Validation examples in the final benchmark (0: skip).")
@click.option("--run-name", help="Student directory under <out>/students (default: PRESET-MODE-aA-TT).")
@click.option("--eval-examples", type=int, help="Validation examples evaluated during training (0: all).")
@click.option("--lr-schedule", type=click.Choice(["linear", "wsd"]),
              help="linear decay, or warmup-stable-decay (extendable with a larger budget).")
@click.option("--warmup-steps", type=int, help="Warm-up steps (0: 5 percent of the steps).")
@click.option("--decay-ratio", type=float, help="wsd: share of the steps spent decaying at the end.")
@click.option("--sampler", type=click.Choice(["buckets", "group_by_length", "random"]))
@click.option("--attention", type=click.Choice(["fused", "library"]),
              help="fused: fast T5 attention without attention dropout; library: transformers'.")
@click.option("--fused-adamw/--no-fused-adamw", default=None, help="AdamW's fused kernel.")
@click.option("--keep-freed-memory/--no-keep-freed-memory", default=None,
              help="CPU: malloc keeps freed memory (no page faults per step).")
@click.option("--resume", is_flag=True, default=None,
              help="Continue each training stage from its newest checkpoint (an error if there is "
                   "none); with a larger --max-steps/--teacher-max-steps the run is extended.")
@click.option("--stop-after", type=click.Choice(["tokenizer", "teacher", "logits", "student", "bench"]),
              help="Last stage to run (e.g. teacher: train the teacher only).")
def train_command(config_path, **options):
    """Run the pipeline: tokenizer, teacher, teacher logits, student, `kdassert bench` on valid.jsonl.

    Each stage is skipped when its output already exists for the same settings.
    """
    from distillation.pipeline import load_train_config, run_train

    result = run_train(load_train_config(config_path, **options))
    for name in ("teacher_dir", "student_dir", "bench_report"):
        if getattr(result, name) is not None:
            click.echo(f"{name.split('_')[0]}: {getattr(result, name)}")


@main.command("loss-curve")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--out", default="loss_curve.png", show_default=True, help="PNG to write.")
@click.option("--train-loss/--no-train-loss", default=True, show_default=True,
              help="Also draw the training loss.")
def loss_curve_command(run_dirs, out, train_loss):
    """Validation loss vs step of training stages (e.g. runs/cpu-v2/teacher), across resumed runs."""
    from pathlib import Path

    from distillation.loss_curve import plot_loss_curve

    click.echo(str(plot_loss_curve([Path(d) for d in run_dirs], Path(out), train_loss)))


# --- benchmark commands (issue: bench) -----------------------------------------------------


def _floats(text: str) -> tuple[float, ...]:
    """``0,0.5,1`` -> (0.0, 0.5, 1.0), or a clean usage error."""
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise click.BadParameter(f"expected comma-separated numbers, got {text!r}") from exc


@main.command("bundle")
@click.argument("model")
@click.option("--bench", "bench", required=True, type=click.Path(exists=True, dir_okay=False),
              help="`kdassert bench` report with a row for MODEL; its numbers go into the model card.")
@click.option("--row", help="The model's row name in the report (default: the row whose path is MODEL).")
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False),
              help="Install somewhere else than the package's default_model/.")
@click.option("--force", is_flag=True, help="Replace the bundled model even if the benchmark says it is not better.")
@click.option("--notes", default="", help="Free text for the model card.")
@click.option("--max-latency-ms", default=50.0, show_default=True,
              help="Refuse a model whose one-thread latency p50 in the report is above this (0: no limit).")
def bundle_command(model, bench, row, out_dir, force, notes, max_latency_ms):
    """Install a trained student as the bundled default model (`--kdassert-model default`).

    Writes safetensors weights, config, tokenizer, input format and model_card.json
    (training settings, benchmark metrics, date). Refuses models over 25 MB or slower than the
    plugin's latency budget (one-thread p50 from the report), and refuses to replace the
    bundled model unless the new one has a higher strict exact match on the same benchmark data.

    \b
      kdassert bundle runs/cpu/students/NAME/final --bench runs/bench-test.json
    """
    from distillation.bundle import BundleConfig, bundle_model

    target = bundle_model(BundleConfig(model, bench, row, out_dir, force, notes, max_latency_ms))
    click.echo(f"bundled {model} into {target}")


@main.command("bench")
@click.option("--data", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Examples to score (mining-schema JSONL), e.g. data/test.jsonl.")
@click.option("--model", "models", multiple=True,
              help="Model directory, NAME=DIR to label its row, or 'default'. Repeatable.")
@click.option("--teacher", help="Teacher directory: adds a 'teacher' row and top-1 agreement with it.")
@click.option("--train", type=click.Path(exists=True, dir_okay=False),
              help="Training split: adds the 'retrieval' baseline, which searches it.")
@click.option("--out", default="bench.json", show_default=True,
              help="JSON report; predictions go to <stem>.predictions.jsonl beside it.")
@click.option("--limit", type=int, help="Score only the first N examples.")
@click.option("--beams", default=5, show_default=True, help="Beam width; top-k uses all beams.")
@click.option("--batch-size", default=16, show_default=True, help="Batch size of the quality pass.")
@click.option("--latency-examples", default=50, show_default=True,
              help="Examples timed at batch 1, greedy, one CPU thread (0: skip).")
@click.option("--memory/--no-memory", default=True, show_default=True,
              help="Measure peak RSS per model in a subprocess.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--threads", type=int, help="CPU threads of the quality pass (default: torch's).")
@click.option("--in-project", is_flag=True,
              help="Add the in-project retrieval rows (raw and names adapted): other tests of the same project.")
@click.option("--exemplar-pool", type=click.Path(exists=True, dir_okay=False),
              help="JSONL whose tests give exemplars to format-v2 models and the in-project rows "
                   "(default: --data), e.g. the whole test split a sample was drawn from.")
@click.option("--system-valid", type=click.Path(exists=True, dir_okay=False),
              help="Validation JSONL: add the 'system (ranker)' row (in-project candidates under "
                   "a ranker fitted on this file only). Needs --in-project.")
@click.option("--system-valid-limit", type=int,
              help="Validation examples the system ranker is fitted on (default: all).")
@click.option("--add-to", type=click.Path(exists=True, dir_okay=False),
              help="A previous report on the same --data/--limit: keep its rows (from its "
                   "predictions file) and add or replace this run's, e.g. a model trained later.")
def bench_command(data, models, teacher, train, out, limit, beams, batch_size, latency_examples,
                  memory, device, threads, in_project, exemplar_pool, system_valid,
                  system_valid_limit, add_to):
    """Exact match, lenient match, BLEU, size and latency of models and baselines, side by side."""
    from distillation.bench import BenchConfig, format_table, run_bench

    config = BenchConfig(data=data, models=tuple(models), teacher=teacher, train=train, out=out,
                         limit=limit, beams=beams, batch_size=batch_size,
                         latency_examples=latency_examples, memory=memory, device=device,
                         threads=threads, in_project=in_project, exemplar_pool=exemplar_pool,
                         system_valid=system_valid, system_valid_limit=system_valid_limit,
                         add_to=add_to)
    click.echo(format_table(run_bench(config)))
    click.echo(f"report: {out}")


def _check_reference(summary: dict, reference: str | None) -> None:
    if reference is not None and reference not in summary["points"]:
        raise click.BadParameter(f"no point {reference!r}; the points are {', '.join(summary['points'])}",
                                 param_hint="--reference")


@main.command("sweep")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="TOML file with TrainConfig keys (as for `kdassert train`).")
@click.option("--data", "data_dir", help="Directory with train/valid/test.jsonl.")
@click.option("-o", "--out", "out_dir", help="Training output directory (shared by all points).")
@click.option("--alpha", "alphas", default="0,0.25,0.5,0.75,1", show_default=True,
              help="Comma-separated alphas.")
@click.option("--temperature", "temperatures", default="0.5,1,2,4", show_default=True,
              help="Comma-separated temperatures.")
@click.option("--student", "students", default=None,
              help="Comma-separated student presets or model directories (default: the config's).")
@click.option("--store", "stores", default=None,
              help="Comma-separated teacher signals: online, quantized-BITSbit, topk-kK-DTYPE, e.g. "
                   "online,quantized-8bit,topk-k32-int8 (default: the config's).")
@click.option("--teacher", help="Teacher preset or model directory.")
@click.option("--max-steps", type=int, help="Student optimizer steps per point.")
@click.option("--teacher-max-steps", type=int)
@click.option("--epochs", type=float)
@click.option("--batch-size", type=int)
@click.option("--bench-data", type=click.Path(exists=True, dir_okay=False),
              help="Examples to benchmark each point on (default: test.jsonl, else valid.jsonl).")
@click.option("--bench-limit", type=int, default=None, help="Benchmark only the first N examples.")
@click.option("--bench-exemplar-pool", type=click.Path(exists=True, dir_okay=False),
              help="JSONL whose tests give format-v2 exemplars when scoring (default: --bench-data), "
                   "e.g. the whole test split a sample was drawn from.")
@click.option("--beams", default=5, show_default=True)
@click.option("--latency-examples", default=20, show_default=True,
              help="Examples timed per point (greedy, batch 1, one thread; 0: skip).")
@click.option("--results", help="Results cache (default: <out>/sweep.json).")
@click.option("--reference", help="Point the printed table tests every row against (exact McNemar "
                                  "on exact match; default: the best point).")
@click.option("--report-only", is_flag=True,
              help="Print the table of the points in --results so far and train nothing (e.g. "
                   "while the sweep runs in the background).")
def sweep_command(config_path, data_dir, out_dir, alphas, temperatures, students, stores, teacher,
                  max_steps, teacher_max_steps, epochs, batch_size, bench_data, bench_limit,
                  bench_exemplar_pool, beams, latency_examples, results, reference, report_only):
    """Train and benchmark a student x teacher signal x alpha x T grid; finished points are skipped."""
    from distillation.pipeline import load_train_config
    from distillation.sweep import SweepConfig, load_results, run_sweep
    from distillation.sweep_report import sweep_table

    if report_only:
        if not results or not Path(results).is_file():
            raise click.BadParameter("--report-only reads an existing results file: give its path",
                                     param_hint="--results")
        summary = load_results(Path(results))
        _check_reference(summary, reference)
        click.echo(sweep_table(summary, reference=reference))
        click.echo(f"{len(summary['points'])} grid points in {results}")
        return

    base = load_train_config(config_path, data_dir=data_dir, out_dir=out_dir, teacher=teacher,
                             max_steps=max_steps, teacher_max_steps=teacher_max_steps,
                             epochs=epochs, batch_size=batch_size, bench_limit=0)
    config = SweepConfig(base=base, alphas=_floats(alphas), temperatures=_floats(temperatures),
                         students=_names(students), stores=_names(stores),
                         bench_data=bench_data, bench_limit=bench_limit,
                         bench_exemplar_pool=bench_exemplar_pool, beams=beams,
                         latency_examples=latency_examples, results=results)
    summary = run_sweep(config)
    _check_reference(summary, reference)
    click.echo(sweep_table(summary, reference=reference))
    click.echo(f"{len(summary['points'])} grid points in {config.results_path()}")


def _names(text: str | None) -> tuple[str, ...]:
    """``a, b`` -> ("a", "b"); None (option not given) -> ()."""
    return tuple(x.strip() for x in (text or "").split(",") if x.strip())


@main.command("plot")
@click.option("--sweep", "sweep_path", type=click.Path(exists=True, dir_okay=False),
              help="Results of `kdassert sweep` (sweep.json).")
@click.option("--report", "reports", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Bench reports of student presets for the size plot. Repeatable.")
@click.option("-o", "--out", "out_dir", default="plots", show_default=True, help="Directory for PNGs.")
@click.option("--metric", "metrics", multiple=True, default=("exact_match", "lenient_match"),
              show_default=True, help="Metrics to draw. Repeatable.")
@click.option("--alpha", type=float, help="Fixed alpha of the metrics-vs-T plot (default: best).")
@click.option("--temperature", type=float, help="Fixed T of the metrics-vs-alpha plot (default: best).")
def plot_command(sweep_path, reports, out_dir, metrics, alpha, temperature):
    """Draw metrics vs alpha, metrics vs T, and size vs exact match as PNG files."""
    from distillation.plots import PlotConfig, make_plots

    config = PlotConfig(sweep=sweep_path, reports=tuple(reports), out_dir=out_dir,
                        metrics=tuple(metrics), alpha=alpha, temperature=temperature)
    for path in make_plots(config):
        click.echo(str(path))
