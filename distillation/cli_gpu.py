"""``kdassert pack`` and ``kdassert gpu-route``: thin click commands (added to the group in cli.py)."""

from __future__ import annotations

import click


@click.command("pack")
@click.option("--data", "data_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Directory with train/valid/test.jsonl (`kdassert mine`).")
@click.option("-o", "--out", "out_dir", default="data/gpu-pack", show_default=True,
              type=click.Path(file_okay=False), help="Pack directory to write (replaced whole).")
@click.option("--tokenizer", type=click.Path(exists=True, file_okay=False),
              help="Tokenizer directory to use (e.g. runs/cpu-v2/tokenizer); default: train one.")
@click.option("--vocab-size", default=8192, show_default=True, help="Vocabulary of a trained tokenizer.")
@click.option("--max-source-tokens", default=448, show_default=True)
@click.option("--max-target-tokens", default=64, show_default=True)
@click.option("--exemplars", default=3, show_default=True,
              help="In-project exemplars per input (0: input format v1).")
@click.option("--bench-examples", default=500, show_default=True,
              help="Test examples (whole projects) in the pack's bench.jsonl.")
@click.option("--limit", type=int, help="Use only the first N examples of each split.")
@click.option("--cache-dir", type=click.Path(file_okay=False),
              help="Token-id cache shared with `kdassert train` (e.g. runs/cpu-v2/token-cache).")
@click.option("--max-mib", default=48.0, show_default=True, help="Refuse a larger pack.")
def pack_command(**options):
    """Pre-tokenise a corpus into a small pack for `kdassert gpu-route` on a lent GPU machine."""
    from distillation.pack import PackConfig, build_pack

    manifest = build_pack(PackConfig(**options))
    for name, split in manifest["splits"].items():
        click.echo(f"{name}: {split['examples']} examples, {split['source_tokens']} source tokens")
    click.echo(f"bench: {manifest['bench']['examples']} test examples "
               f"({manifest['bench']['projects']} projects)")
    click.echo(f"pack: {options['out_dir']} ({manifest['bytes']} bytes)")


@click.command("gpu-route")
@click.option("--pack", default="data/gpu-pack", show_default=True,
              type=click.Path(exists=True, file_okay=False), help="Pack directory (`kdassert pack`).")
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Empty output folder: student/, bench.json, route.log, loss.png.")
@click.option("--work-dir", type=click.Path(file_okay=False),
              help="Checkpoints and logits (default: a temporary folder, removed at the end).")
@click.option("--minutes", default=8.0, show_default=True, help="Wall-clock budget of the whole route.")
@click.option("--scale", type=click.Choice(["full", "toy"]), default="full", show_default=True,
              help="full: teacher-gpu -> student-gpu; toy: tiny models (CPU tests).")
@click.option("--teacher", default="teacher-gpu", show_default=True, help="Teacher preset.")
@click.option("--student", default="student-gpu", show_default=True, help="Student preset.")
@click.option("--batch-size", default=128, show_default=True, help="Teacher batch size.")
@click.option("--student-batch-size", default=256, show_default=True)
@click.option("--teacher-lr", default=7e-4, show_default=True)
@click.option("--student-lr", default=2e-3, show_default=True)
@click.option("--alpha", default=0.5, show_default=True, help="Weight of the distillation term.")
@click.option("--temperature", default=1.0, show_default=True)
@click.option("--bench-examples", default=500, show_default=True)
@click.option("--latency-examples", default=10, show_default=True)
@click.option("--dry-run", is_flag=True,
              help="Check the pack and both models, time a training step of each, and stop.")
def gpu_route_command(**options):
    """Train a teacher, extract its logits, distil a student and benchmark both, in --minutes.

    \b
      PYTHONPATH=. python3 -m distillation gpu-route --pack data/gpu-pack --out "$OUT"
    """
    from distillation.gpu_route import RouteConfig, run_route

    summary = run_route(RouteConfig(**options))
    click.echo(f"gpu-route finished: {options['out_dir']}"
               + (" (dry run)" if options["dry_run"] else f" in {summary['seconds']:.0f}s"))
