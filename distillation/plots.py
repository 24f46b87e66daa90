"""``kdassert plot``: the study's graphs as PNG files (matplotlib, Agg backend).

* ``metrics_vs_alpha.png`` — each metric against alpha at one temperature;
* ``metrics_vs_temperature.png`` — each metric against T at one alpha;
* ``quality_vs_bytes_per_token.png`` and ``quality_latency_vs_student_size.png`` — the sweep's
  store and student-size axes (:mod:`distillation.plots_tradeoffs`);
* ``size_vs_exact_match.png`` — parameters against exact match, one point per model row of
  the bench reports given (student presets).

The teacher is drawn as a dashed horizontal reference line in the metric's colour. Proportion
metrics (exact match, agreement, ...) get 95% Wilson intervals as bands or error bars. A plot
whose axis has fewer than two values in the sweep is skipped.
"""

from __future__ import annotations

import io
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

from pytest_kdassert.core.atomic import write_bytes_atomic
from pytest_kdassert.core.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

LABELS = {"exact_match": "exact match (strict)", "lenient_match": "lenient match",
          "top_k_exact_match": "top-k exact match", "token_f1": "token F1",
          "char_similarity": "char similarity", "bleu4_corpus": "BLEU-4 (corpus)",
          "parse_rate": "parses", "agreement_with_teacher": "agrees with teacher"}


@dataclass(frozen=True)
class PlotConfig:
    """Which graphs to draw from which results."""

    sweep: str | None = None
    """Results JSON of ``kdassert sweep``: metrics vs alpha and vs T."""
    reports: tuple[str, ...] = ()
    """Bench reports (``kdassert bench --out``): size vs exact match."""
    out_dir: str = "plots"
    metrics: tuple[str, ...] = ("exact_match", "lenient_match")
    alpha: float | None = None
    """Alpha of the metrics-vs-T plot (default: the best alpha > 0 by the first metric)."""
    temperature: float | None = None
    """T of the metrics-vs-alpha plot (default: the best point's T by the first metric)."""
    width_px: int = 800
    height_px: int = 500
    dpi: int = 100

    def __post_init__(self):
        if self.sweep is None and not self.reports:
            raise ConfigError("Nothing to plot: give --sweep and/or --report.")
        unknown = [x for x in self.metrics if x not in LABELS]
        if unknown or not self.metrics:
            raise ConfigError(f"Unknown metrics {unknown}; choose from {', '.join(LABELS)}.")
        if min(self.width_px, self.height_px, self.dpi) < 50:
            raise ConfigError("width_px, height_px and dpi must be at least 50.")


def make_plots(config: PlotConfig) -> list[Path]:
    """Draw every graph the inputs allow; returns the PNG paths."""
    out = Path(config.out_dir)
    paths = []
    if config.sweep:
        from distillation.plots_tradeoffs import plot_size_sweep, plot_stores

        results = _read_json(config.sweep)
        if not results.get("points"):
            raise DataError(f"{config.sweep} has no finished grid points yet; run `kdassert sweep`.")
        for name, draw in (("metrics_vs_alpha.png", plot_vs_alpha),
                           ("metrics_vs_temperature.png", plot_vs_temperature),
                           ("quality_vs_bytes_per_token.png", plot_stores),
                           ("quality_latency_vs_student_size.png", plot_size_sweep)):
            path = draw(results, config, out / name)
            if path is None:
                logger.info("%s skipped: the sweep varies nothing along its axis", name)
            else:
                paths.append(path)
    if config.reports:
        paths.append(plot_size(list(config.reports), config, out / "size_vs_exact_match.png"))
    return paths


def _read_json(path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"Cannot read {path}: {exc}") from exc


def new_figure(config: PlotConfig, ncols: int = 1, constrained: bool = False):
    """A figure of ``config``'s height and ``ncols`` panels, each ``width_px`` wide; constrained
    layout leaves room for a legend outside the axes (``fig.legend(loc="outside ...")``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(ncols * config.width_px / config.dpi,
                                                config.height_px / config.dpi), dpi=config.dpi,
                             layout="constrained" if constrained else None)
    for ax in (axes if ncols > 1 else [axes]):
        ax.grid(True, alpha=0.3)
    return fig, axes


def save_png(fig, path: Path, dpi: int) -> Path:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    write_bytes_atomic(path, buffer.getvalue())
    logger.info("wrote %s", path)
    return path


def best_point(points: list[dict], metric: str, where=lambda p: True) -> dict | None:
    """The point with the highest ``metric`` among those ``where`` accepts."""
    chosen = [p for p in points if where(p) and p["metrics"].get(metric) is not None]
    return max(chosen, key=lambda p: p["metrics"][metric], default=None)


def _default_point(points: list[dict], metric: str) -> dict:
    """The best point with alpha > 0 (alpha = 0 ignores T), else the best, else the first."""
    return (best_point(points, metric, lambda p: p["alpha"] > 0) or best_point(points, metric)
            or points[0])


def _series(results: dict, x_key: str, fixed_key: str, fixed_value: float, like: dict | None = None):
    """Points at ``fixed_key`` = fixed_value of the same student and store as ``like``."""
    points = [p for p in results["points"].values() if p[fixed_key] == fixed_value
              and (like is None or (p.get("student"), p.get("store")) == (like.get("student"), like.get("store")))]
    return sorted(points, key=lambda p: p[x_key])


def _teacher_lines(ax, results: dict, metrics, colors) -> None:
    teacher = results.get("teacher")
    if not teacher:
        return
    for metric, color in zip(metrics, colors, strict=False):
        value = teacher["metrics"].get(metric)
        if value is not None:
            ax.axhline(value, color=color, linestyle="--", linewidth=1,
                       label=f"teacher: {LABELS[metric]} ({value:.3f})")


def _metric_lines(ax, points, metrics, x_key):
    colors = [f"C{i}" for i in range(len(metrics))]
    for metric, color in zip(metrics, colors, strict=True):
        xs = [p[x_key] for p in points]
        ys = [p["metrics"].get(metric) for p in points]
        band = ci_band(points, metric)
        ax.plot(xs, ys, marker="o", color=color,
                label=LABELS[metric] + (" (band: 95% CI)" if band else ""))
        if band is not None:
            ax.fill_between(xs, *band, color=color, alpha=0.15, linewidth=0)
    return colors


def ci_band(points: list[dict], metric: str) -> tuple[list[float], list[float]] | None:
    """Lower and upper 95% Wilson bounds of ``metric`` at every point, or None if any lacks one."""
    from distillation.sweep_report import interval

    bounds = [interval(p, metric) for p in points]
    if any(b is None for b in bounds):
        return None
    return [b[0] for b in bounds], [b[1] for b in bounds]


def _grid_slice(results: dict, config: PlotConfig, x_key: str, fixed_key: str,
                fixed_value: float | None):
    """Points along ``x_key`` at ``fixed_key`` = fixed_value (default: the best point's value),
    of one student and store (the best point's, among those at that value)."""
    points = list(results["points"].values())
    if fixed_value is not None:
        points = [p for p in points if p[fixed_key] == fixed_value]
    if not points:
        symbol = {"temperature": "T"}.get(fixed_key, fixed_key)
        raise ConfigError(f"No grid point has {symbol}={fixed_value:g}; choose one the sweep ran.")
    anchor = _default_point(points, config.metrics[0])
    return _series(results, x_key, fixed_key, anchor[fixed_key], anchor), anchor[fixed_key]


def _plot_slice(results: dict, config: PlotConfig, series, x_key: str):
    """A figure with one line per metric along ``x_key`` and the teacher's reference lines."""
    fig, ax = new_figure(config)
    colors = _metric_lines(ax, series, config.metrics, x_key)
    _teacher_lines(ax, results, config.metrics, colors)
    return fig, ax


def _finish(fig, ax, config: PlotConfig, path: Path, xlabel: str, title: str) -> Path:
    ax.set(xlabel=xlabel, ylabel="score", title=title, ylim=(0, 1.02))
    ax.legend(fontsize="small", loc="best")
    return save_png(fig, path, config.dpi)


def plot_vs_alpha(results: dict, config: PlotConfig, path: Path) -> Path | None:
    """Metrics against alpha at a fixed temperature (None when the sweep has one alpha)."""
    series, temperature = _grid_slice(results, config, "alpha", "temperature", config.temperature)
    if len(series) < 2:
        return None
    fig, ax = _plot_slice(results, config, series, "alpha")
    return _finish(fig, ax, config, path, "alpha (weight of the teacher's soft targets)",
                   f"Student quality vs alpha (T = {temperature:g}{_run_of(series)})")


def plot_vs_temperature(results: dict, config: PlotConfig, path: Path) -> Path | None:
    """Metrics against temperature at a fixed alpha (alpha = 0 ignores T, so it is not a default;
    None when the sweep has one T)."""
    series, alpha = _grid_slice(results, config, "temperature", "alpha", config.alpha)
    if len(series) < 2:
        return None
    fig, ax = _plot_slice(results, config, series, "temperature")
    ax.set_xscale("log", base=2)
    ax.set_xticks([p["temperature"] for p in series], [f"{p['temperature']:g}" for p in series])
    ax.minorticks_off()
    return _finish(fig, ax, config, path, "temperature T (log scale)",
                   f"Student quality vs temperature (alpha = {alpha:g}{_run_of(series)})")


def _run_of(series: list[dict]) -> str:
    """``, student, topk-k32-int8``: the student and store of a slice (sweeps since version 2)."""
    point = series[0]
    return f", {point['student']}, {point['store']}" if point.get("store") else ""


def size_rows(report_paths: list[str]) -> list[dict]:
    """Every row of the reports as (name, parameters, metrics); later reports win on name clashes."""
    rows: dict[str, dict] = {}
    for path in report_paths:
        for row in _read_json(path).get("rows", []):
            rows[row["name"]] = {"name": row["name"], "kind": row.get("kind"),
                                 "parameters": row.get("size", {}).get("parameters"),
                                 "metrics": row["metrics"]}
    return list(rows.values())


def plot_size(report_paths: list[str], config: PlotConfig, path: Path) -> Path:
    """Parameters (log scale) against exact match; teacher and retrieval as reference lines."""
    rows = size_rows(report_paths)
    metric = config.metrics[0]
    fig, ax = new_figure(config)
    students = [r for r in rows if r["parameters"] and r["name"] != "teacher"]
    ax.scatter([r["parameters"] for r in students], [r["metrics"][metric] for r in students],
               color="C0", zorder=3, label="students")
    for r in students:
        ax.annotate(r["name"], (r["parameters"], r["metrics"][metric]), fontsize="small",
                    xytext=(4, 4), textcoords="offset points")
    for r, style in ((next((r for r in rows if r["name"] == "teacher"), None), "--"),
                     (next((r for r in rows if r["kind"] == "retrieval"), None), ":")):
        if r is not None:
            size = f", {r['parameters'] / 1e6:.1f}M params" if r["parameters"] else ""
            color = "C3" if style == "--" else "C2"
            ax.axhline(r["metrics"][metric], color=color, linestyle=style,
                       label=f"{r['name']} ({r['metrics'][metric]:.3f}{size})")
            if r["parameters"]:  # the teacher's size shows how much smaller the students are
                ax.scatter([r["parameters"]], [r["metrics"][metric]], color=color, marker="*", s=120,
                           zorder=3)
    millions_axis(ax)
    ax.set(xlabel="parameters (log scale)", ylabel=LABELS[metric],
           title=f"Model size vs {LABELS[metric]}", ylim=(0, 1.02))
    ax.legend(fontsize="small", loc="best")
    return save_png(fig, path, config.dpi)


def millions_axis(ax) -> None:
    from matplotlib.ticker import FuncFormatter

    ax.set_xscale("log")
    ax.margins(x=0.15)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x / 1e6:g}M"))
    # Label only 2x and 5x between the decades, so labels never overlap.
    ax.xaxis.set_minor_formatter(FuncFormatter(
        lambda x, _: f"{x / 1e6:g}M" if x > 0 and round(x / 10 ** math.floor(math.log10(x))) in (2, 5)
        else ""))
