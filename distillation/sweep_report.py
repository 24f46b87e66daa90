"""The sweep's results side by side, with uncertainty: a Markdown table from ``sweep.json``.

Exact, lenient and top-k match get 95% Wilson intervals over the n benchmark examples, and
every row is compared with a reference row (default: the best by strict exact match) by an
exact McNemar test on per-example correctness, since both rows were scored on the same
examples. Token F1 (a score per example, not a proportion) gets a 95% bootstrap interval and
is compared by a paired bootstrap of the per-example differences. A row is said to differ from
the reference only when the test's p is below ``level`` (or the interval of the F1 difference
leaves out 0).
"""

from __future__ import annotations

from dataclasses import dataclass

from distillation import metrics as m
from distillation.bench import _fmt
from distillation.sweep import decode_bits

LEVEL = 0.05
"""Significance level of the paired test."""


@dataclass(frozen=True)
class Comparison:
    """A paired comparison of two rows on one metric (same examples)."""

    metric: str
    only_a: int
    """Examples right in row a alone."""
    only_b: int
    """Examples right in row b alone."""
    p_value: float

    def differs(self, level: float = LEVEL) -> bool:
        return self.p_value < level


def correct(row: dict, metric: str) -> list[bool] | None:
    """Per-example outcomes of a row on ``exact_match``, ``lenient_match``,
    ``top_k_exact_match`` or ``agreement_with_teacher``, if stored."""
    bits = (row.get("correct") or {}).get(metric)
    return None if bits is None else decode_bits(bits)


def compare(a: dict, b: dict, metric: str = "exact_match") -> Comparison | None:
    """Exact McNemar test of rows a and b; None when either lacks per-example outcomes or
    they were scored on different numbers of examples."""
    ca, cb = correct(a, metric), correct(b, metric)
    if ca is None or cb is None or len(ca) != len(cb):
        return None
    only_a = sum(x and not y for x, y in zip(ca, cb, strict=True))
    only_b = sum(y and not x for x, y in zip(ca, cb, strict=True))
    return Comparison(metric, only_a, only_b, m.mcnemar_exact(ca, cb))


PROPORTIONS = ("exact_match", "lenient_match", "top_k_exact_match", "parse_rate",
               "agreement_with_teacher")
"""Metrics that are a share of examples, so a Wilson interval applies (token F1, BLEU don't)."""


def scores(row: dict, metric: str) -> list[float] | None:
    """Per-example scores of a row (``token_f1``), if stored (sweeps before 2026-12 lack them)."""
    return (row.get("scores") or {}).get(metric)


def compare_scores(a: dict, b: dict, metric: str = "token_f1") -> tuple[float, float, float] | None:
    """Mean per-example difference a - b of ``metric`` and its paired bootstrap 95% interval;
    None when either row lacks the scores or they differ in length."""
    sa, sb = scores(a, metric), scores(b, metric)
    if sa is None or sb is None or len(sa) != len(sb):
        return None
    return m.paired_bootstrap_difference(sa, sb)


def interval(row: dict, metric: str) -> tuple[float, float] | None:
    """95% Wilson interval of a proportion metric of a row over its examples (None for other
    metrics, or when the row has no value); for ``token_f1``, a bootstrap interval of the mean
    when the per-example scores are stored."""
    if metric not in PROPORTIONS:
        values = scores(row, metric)
        return None if values is None else m.bootstrap_mean_interval(values)
    outcomes = correct(row, metric)
    if outcomes is not None:
        return m.wilson_interval(sum(outcomes), len(outcomes))
    rate, n = row.get("metrics", {}).get(metric), row.get("examples")
    if rate is None or not n:
        return None
    return m.wilson_interval(round(rate * n), n)


def reference_key(results: dict, metric: str = "exact_match") -> str | None:
    """The best point by ``metric``, the default reference row (on ties a distilled point,
    alpha > 0, then the first)."""
    points = results.get("points", {})
    scored = [k for k, p in points.items() if p.get("metrics", {}).get(metric) is not None]
    return max(scored, key=lambda k: (points[k]["metrics"][metric], points[k]["alpha"] > 0),
               default=None)


def sweep_table(results: dict, metric: str = "exact_match", reference: str | None = None,
                level: float = LEVEL) -> str:
    """One Markdown row per training run (the teacher first): store size, training time, size,
    latency, and strict and lenient exact match with 95% CIs, each tested against
    ``reference`` (default: the best point by ``metric``)."""
    reference = reference or reference_key(results, metric)
    ref_row = results.get("points", {}).get(reference)
    head = ["row", "signal", "B/token", "store MB", "train s", "params", "disk MB", "p50 ms",
            "exact [95% CI]", "exact vs ref", "lenient [95% CI]", "lenient vs ref",
            "top-k [95% CI]", "top-k vs ref", "token F1 [95% CI]", "F1 vs ref",
            "agrees T [95% CI]", "agrees T vs ref"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    rows = [("teacher", results["teacher"])] if results.get("teacher") else []
    rows += sorted(((k, p) for k, p in results.get("points", {}).items() if not p.get("shared_with")),
                   key=lambda item: _order(item[1]))
    for key, row in rows:
        quality = []
        for name in ("exact_match", "lenient_match", "top_k_exact_match"):
            versus = "reference" if key == reference else _versus(row, ref_row, name, level)
            quality += [_with_ci(row, name), versus]
        versus = "reference" if key == reference else _versus_scores(row, ref_row, "token_f1")
        quality += [_with_ci(row, "token_f1"), versus]
        versus = "reference" if key == reference else _versus(row, ref_row, "agreement_with_teacher", level)
        quality += [_with_ci(row, "agreement_with_teacher"), versus]
        lines.append("| " + " | ".join([key, *_cells(row), *quality]) + " |")
    shared = len(results.get("points", {})) - len(rows) + bool(results.get("teacher"))
    n = next((row.get("examples") for _, row in rows), None)
    lines.append(f"\n{n} examples; ref = {reference}. Intervals: Wilson 95% (token F1: bootstrap "
                 f"95%). \"vs ref\": exact McNemar p on the paired per-example outcomes, (+a / -b) "
                 f"= examples only this row / only the reference gets right (agreement: has the "
                 f"teacher's top-1); \"differs\" only when "
                 f"p < {level:g}. \"F1 vs ref\": mean per-example difference [paired bootstrap "
                 f"95%], \"differs\" only when the interval leaves out 0."
                 + (f" {shared} alpha = 0 points share a row above (same run)." if shared else ""))
    return "\n".join(lines)


def _order(row: dict) -> tuple:
    """Smaller students first, then alpha, T, and the bytes per token of the signal."""
    return ((row.get("size") or {}).get("parameters") or 0, row.get("alpha", 0),
            row.get("temperature", 0), bytes_per_token(row) or 0)


def _cells(row: dict) -> list[str]:
    signal, size = row.get("signal") or {}, row.get("size") or {}
    latency = (row.get("speed") or {}).get("cpu_latency_1thread") or {}
    name = signal.get("name", "-") + ("" if signal.get("used", True) else " (unused, alpha 0)")
    return [name, _fmt(bytes_per_token(row), "{:,.0f}"), _mb(signal.get("disk_bytes")),
            _fmt(row.get("train_seconds"), "{:.1f}"), _fmt(size.get("parameters"), "{:,}"),
            _mb(size.get("disk_bytes")), _fmt(latency.get("p50_ms"), "{:.1f}")]


def bytes_per_token(row: dict) -> float | None:
    """Bytes per target token of the signal a point learnt from: its store's row size, or for
    ``online`` the fp32 full logits it read live; None when it read no signal (alpha = 0)."""
    signal = row.get("signal") or {}
    if not signal.get("used"):
        return None
    return signal.get("bytes_per_token") or signal.get("dense_fp32_bytes_per_token")


def _versus(row: dict, ref_row: dict | None, metric: str, level: float) -> str:
    result = None if ref_row is None else compare(row, ref_row, metric)
    if result is None:
        return "-"
    verdict = "differs" if result.differs(level) else "no sig. difference"
    return f"p={result.p_value:.3g} {verdict} (+{result.only_a} / -{result.only_b})"


def _versus_scores(row: dict, ref_row: dict | None, metric: str) -> str:
    result = None if ref_row is None else compare_scores(row, ref_row, metric)
    if result is None:
        return "-"
    mean, low, high = result
    verdict = "differs" if low > 0 or high < 0 else "no sig. difference"
    return f"{mean:+.3f} [{low:+.3f}, {high:+.3f}] {verdict}"


def _with_ci(row: dict, metric: str) -> str:
    value, ci = (row.get("metrics") or {}).get(metric), interval(row, metric)
    if value is None:
        return "-"
    return f"{value:.3f}" + ("" if ci is None else f" [{ci[0]:.3f}, {ci[1]:.3f}]")


def _mb(value) -> str:
    """Megabytes with two decimals: toy models and stores are well under 1 MB."""
    return _fmt(None if value is None else value / 2**20, "{:.2f}")
