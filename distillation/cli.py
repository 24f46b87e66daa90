"""The ``kdassert`` command line: thin click commands over the library.

Each command parses options, builds a ``*Config`` object and calls one library function.
Library errors (``KdassertError``) become clean one-line messages, never tracebacks.
"""

from __future__ import annotations

import logging

import click

from distillation import __version__
from distillation.errors import KdassertError


class _KdassertGroup(click.Group):
    """A click group that reports library errors as ``Error: <message>`` with exit code 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KdassertError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=_KdassertGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", count=True, help="Less log output.")
@click.version_option(__version__, prog_name="kdassert")
def main(verbose: int, quiet: int) -> None:
    """Mine assertion data, train a teacher, distil a small student, and benchmark it.

    \b
    Typical pipeline:
      kdassert mine --corpus default -o data/       # build the dataset
      kdassert train --data data/ -o runs/          # tokenizer, teacher, logits, student
      kdassert bench --data data/test.jsonl --model runs/student/final
    """
    level = logging.WARNING - 10 * verbose + 10 * quiet
    logging.basicConfig(level=max(logging.DEBUG, level), format="%(levelname)s %(name)s: %(message)s")


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
@click.option("--max-per-project", type=int, default=4000, show_default=True,
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

    from distillation.input_format import InputFormatConfig
    from distillation.stages import build_tokenizer
    from distillation.tokenizer import TokenizerConfig

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
@click.option("--num-shards", default=1, show_default=True, help="Split the store into N shards.")
@click.option("--shard-index", type=int, default=None, help="Write only this shard (one process each).")
@click.option("--limit", type=int, default=None, help="Use only the first N examples.")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda or auto.")
def logits_command(teacher, data, out_dir, mode, k, dtype, bits, batch_size, num_shards, shard_index,
                   limit, device):
    """Store a teacher's soft targets for a split (teacher-forced on the ground truth)."""
    from distillation.logit_extract import LogitsConfig, extract_logits

    config = LogitsConfig(teacher=teacher, data=data, out_dir=out_dir, mode=mode, k=k, dtype=dtype,
                          bits=int(bits), batch_size=batch_size, num_shards=num_shards,
                          shard_index=shard_index, limit=limit, device=device)
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
@click.option("--limit", type=int, help="Use only the first N examples of each split.")
@click.option("--bench-limit", type=int, help="Validation examples in the final benchmark (0: skip).")
def train_command(config_path, **options):
    """Run the pipeline: tokenizer, teacher, teacher logits, student, short benchmark.

    Each stage is skipped when its output already exists for the same settings.
    """
    from distillation.pipeline import load_train_config, run_train

    result = run_train(load_train_config(config_path, **options))
    click.echo(f"student: {result.student_dir}")
    if result.bench_report is not None:
        click.echo(f"benchmark: {result.bench_report}")


# --- benchmark commands (issue: bench) -----------------------------------------------------
