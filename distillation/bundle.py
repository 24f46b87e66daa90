"""``kdassert bundle``: install a trained student as the package's default model, with a model card.

The bundled student is what ``--kdassert-model default`` and ``kdassert bench --model default``
load on a fresh machine. It is replaced only when a benchmark says the new one is better: the
card records the benchmark it was measured on, and a candidate measured on the same data must
beat the installed model's strict exact match (``force`` overrides, e.g. for a changed format).
It must also stay inside the plugin's latency budget (``max_latency_ms``, one-thread p50 from
the same report): the model runs once per site of every suggesting session, so a student twice
as slow doubles what every user waits.
"""

from __future__ import annotations

import datetime
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pytest_kdassert.core.errors import ConfigError, DataError
from pytest_kdassert.core.loading import FORMAT_FILE, default_model_dir, resolve_model_path

logger = logging.getLogger(__name__)

CARD_FILE = "model_card.json"
MAX_LATENCY_MS = 50.0
"""The plugin's per-site generation budget: one-thread p50, greedy, batch 1 (issue 15's target)."""
MAX_BYTES = 25 * 1024 * 1024
"""Size cap of the bundled model (the brief's 25 MB): it ships inside every wheel."""
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


@dataclass(frozen=True)
class BundleConfig:
    """Settings of ``kdassert bundle``."""

    model: str
    """Trained student directory (``.../students/NAME/final``)."""
    bench: str
    """``kdassert bench`` report that has a row for this model; its metrics go into the card."""
    row: str | None = None
    """Name of the model's row in the report (default: the row whose path is ``model``)."""
    out_dir: str | None = None
    """Install here instead of the package's ``default_model/`` (tests, custom builds)."""
    force: bool = False
    """Replace the installed model even when the benchmark does not say the new one is better."""
    notes: str = ""
    """Free text for the card (how it was trained, what is known to be weak)."""
    max_latency_ms: float = MAX_LATENCY_MS
    """Refuse a model whose one-thread latency p50 in the report is above this (0: no limit)."""


def bundle_model(config: BundleConfig) -> Path:
    """Write weights, config, tokenizer, input format and card to the bundle directory."""
    target = Path(config.out_dir) if config.out_dir else default_model_dir()
    source = Path(resolve_model_path(config.model))
    report = _load_report(config.bench)
    row = _find_row(report, config.row, source)
    card = model_card(source, report, row, config.notes)
    _check_latency(card, config.max_latency_ms)
    _check_better(target, card, config.force)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}-") as staging:
        staged = Path(staging) / "model"
        _export(source, staged, card)
        _swap_in(staged, target)
    logger.info("bundled %s into %s", source, target)
    return target


def _load_report(path: str) -> dict:
    try:
        report = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"Cannot read the benchmark report {path}: {exc}. Run `kdassert bench` first.") from exc
    if "rows" not in report:
        raise DataError(f"{path} is not a `kdassert bench` report (it has no rows).")
    return report


def _find_row(report: dict, name: str | None, source: Path) -> dict:
    for row in report["rows"]:
        if name is not None and row["name"] == name:
            return row
        if name is None and row.get("path") and Path(row["path"]).resolve() == source.resolve():
            return row
    wanted = f"named {name!r}" if name else f"for {source}"
    names = [row["name"] for row in report["rows"]]
    raise ConfigError(f"The benchmark report has no row {wanted} (rows: {names}). Use --row NAME.")


def model_card(source: Path, report: dict, row: dict, notes: str) -> dict:
    """The JSON card: what the model is, how it was trained, and what it measured."""
    stage_file = source.parent / "kdassert_stage.json"
    training = json.loads(stage_file.read_text())["config"] if stage_file.is_file() else None
    return {
        "name": "kdassert-default-student",
        "created": datetime.date.today().isoformat(),
        "source": str(source),
        "parameters": row["size"]["parameters"],
        "training": training,
        "benchmark": {
            "data": report["config"]["data"],
            "examples": report["examples"],
            "beams": report["config"]["beams"],
            "metrics": row["metrics"],
            "latency_p50_ms_1thread": (row["speed"].get("cpu_latency_1thread") or {}).get("p50_ms"),
            "others": {r["name"]: r["metrics"] for r in report["rows"] if r is not row},
        },
        "notes": notes,
    }


def _check_latency(card: dict, limit_ms: float) -> None:
    if not limit_ms:
        return
    p50 = card["benchmark"]["latency_p50_ms_1thread"]
    if p50 is None:
        raise ConfigError("The report has no one-thread latency for this model: benchmark it with "
                          "--latency-examples 50 (on a quiet machine), or pass --max-latency-ms 0.")
    if p50 > limit_ms:
        raise ConfigError(
            f"Not bundling: its one-thread latency p50 is {p50:.1f} ms, over the plugin's budget of "
            f"{limit_ms:g} ms per site. If the machine was busy while it was measured, benchmark "
            "it again on a quiet one; --max-latency-ms raises the budget.")


def _check_better(target: Path, card: dict, force: bool) -> None:
    installed = target / CARD_FILE
    if force or not installed.is_file():
        return
    old = json.loads(installed.read_text())["benchmark"]
    new = card["benchmark"]
    if old["data"] != new["data"] or old["examples"] != new["examples"]:
        raise ConfigError(
            f"The installed model was measured on {old['data']} ({old['examples']} examples), this one on "
            f"{new['data']} ({new['examples']}). Benchmark both on the same data, or pass --force.")
    if new["metrics"]["exact_match"] <= old["metrics"]["exact_match"]:
        raise ConfigError(
            f"Not replacing the bundled model: its exact match is {old['metrics']['exact_match']:.4f}, "
            f"the new one's {new['metrics']['exact_match']:.4f}. Pass --force to replace it anyway.")


def _export(source: Path, staged: Path, card: dict) -> None:
    """Re-save through transformers (safetensors only, no optimizer or training state)."""
    from pytest_kdassert.core.loading import load_seq2seq

    model, tokenizer = load_seq2seq(source)
    model.save_pretrained(staged, safe_serialization=True)
    tokenizer.save_pretrained(staged)
    if (source / FORMAT_FILE).is_file():
        shutil.copy2(source / FORMAT_FILE, staged / FORMAT_FILE)
    (staged / CARD_FILE).write_text(json.dumps(card, indent=2, default=str) + "\n")
    size = sum(f.stat().st_size for f in staged.iterdir())
    if size > MAX_BYTES:
        raise ConfigError(f"The model takes {size / 2**20:.1f} MB; the bundle is capped at "
                          f"{MAX_BYTES / 2**20:.0f} MB. Train a smaller student.")
    card["size_bytes"] = size
    (staged / CARD_FILE).write_text(json.dumps(card, indent=2, default=str) + "\n")


def _swap_in(staged: Path, target: Path) -> None:
    """Replace ``target`` by ``staged`` with two renames, so an interrupted bundle leaves the old
    model or the new one, never a mix of both."""
    old = staged.parent / "old"
    if target.exists():
        target.rename(old)
    try:
        staged.rename(target)
    except BaseException:
        if old.exists():
            old.rename(target)
        raise
