"""The sweep's trade-off plots: what compressing the teacher's signal and shrinking the student cost.

* ``quality_vs_bytes_per_token.png`` — each metric against the bytes per target token of the
  signal the student learnt from (log scale): one point per store, ``online`` at the fp32 size
  of the full logits it read live. Drawn for the (student, alpha, T) that the sweep ran with
  the most stores.
* ``quality_latency_vs_student_size.png`` — two panels against student parameters (log scale):
  each metric, and one-thread latency p50. Drawn for the (store, alpha, T) with the most
  student sizes.

Error bars are 95% Wilson intervals (token F1: bootstrap intervals of the mean). The teacher is a dashed line (and a star at its size);
the alpha = 0 student of the same preset, where the sweep has one, a dotted line.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from distillation.plots import LABELS, PlotConfig, millions_axis, new_figure, save_png
from distillation.sweep_report import bytes_per_token, interval


def best_group(points: list[dict], fixed: tuple[str, ...], varied) -> list[dict]:
    """The points sharing the values of ``fixed`` that cover the most distinct ``varied(p)``
    values, one point per value; on ties a distilled group (alpha > 0) wins, then the first."""
    groups: dict[tuple, dict] = defaultdict(dict)
    for point in points:
        value = varied(point)
        if value is not None:
            groups[tuple(point.get(k) for k in fixed)].setdefault(value, point)
    best = max(groups.values(), default={},
               key=lambda group: (len(group), next(iter(group.values()))["alpha"] > 0))
    return sorted(best.values(), key=varied)


def plot_stores(results: dict, config: PlotConfig, path: Path) -> Path | None:
    """Quality against bytes per target token of the teacher signal (None: fewer than 2 stores)."""
    points = best_group(list(results["points"].values()), ("student", "alpha", "temperature"),
                        bytes_per_token)
    if len(points) < 2:
        return None
    fig, ax = new_figure(config, constrained=True)
    xs = [bytes_per_token(p) for p in points]
    for i, metric in enumerate(config.metrics):
        _errorbars(ax, xs, points, metric, f"C{i}")
    _references(ax, results, points[0], config.metrics)
    ax.set_xscale("log")
    ax.margins(x=0.08)
    _name_points(ax, xs, [_store_label(p) for p in points])
    first = points[0]
    ax.set(xlabel="bytes per target token of the teacher signal (log scale)", ylabel="score",
           ylim=(0, _score_top(ax)))
    fig.suptitle(f"Student quality vs teacher-signal size ({first['student']}, "
                 f"alpha = {first['alpha']:g}, T = {first['temperature']:g})")
    fig.legend(loc="outside lower center", ncols=2, fontsize="small")
    return save_png(fig, path, config.dpi)


def _score_top(ax) -> float:
    """Top of a score axis: a margin above everything drawn, at most 1.02 (scores are <= 1)."""
    return min(1.02, ax.get_ylim()[1] * 1.1 + 0.02)


def _name_points(ax, xs, names) -> None:
    """Each point's name on a top axis, slanted, so close points stay legible."""
    from matplotlib.ticker import NullLocator

    top = ax.secondary_xaxis("top")
    top.set_xticks(xs, names, rotation=35, ha="left", fontsize="small")
    top.xaxis.set_minor_locator(NullLocator())


def plot_size_sweep(results: dict, config: PlotConfig, path: Path) -> Path | None:
    """Quality and latency p50 against student parameters (None: fewer than 2 sizes)."""
    points = best_group(list(results["points"].values()), ("store", "alpha", "temperature"),
                        _parameters)
    if len(points) < 2:
        return None
    fig, (quality, latency) = new_figure(config, ncols=2, constrained=True)
    xs = [_parameters(p) for p in points]
    for i, metric in enumerate(config.metrics):
        _errorbars(quality, xs, points, metric, f"C{i}", line=True)
    _teacher(quality, results, config.metrics, star=True)
    _latency_panel(latency, results, points, xs)
    for ax in (quality, latency):
        millions_axis(ax)
        _name_points(ax, xs, [p["student"] for p in points])
    first = points[0]
    quality.set(xlabel="student parameters (log scale)", ylabel="score", ylim=(0, _score_top(quality)),
                title="Quality")
    fig.suptitle(f"Students of each size ({first['store']}, alpha = {first['alpha']:g}, "
                 f"T = {first['temperature']:g})")
    fig.legend(loc="outside lower center", ncols=3, fontsize="small")
    return save_png(fig, path, config.dpi)


def _latency_panel(ax, results: dict, points: list[dict], xs: list[int]) -> None:
    ys = [_p50(p) for p in points]
    if any(y is not None for y in ys):
        ax.plot(xs, ys, marker="o", color="C4", label="student latency p50")
    teacher = results.get("teacher") or {}
    if _parameters(teacher) and _p50(teacher) is not None:
        ax.scatter([_parameters(teacher)], [_p50(teacher)], color="C3", marker="*", s=140, zorder=3,
                   label=f"teacher latency p50 ({_p50(teacher):.1f} ms)")
    ax.set(xlabel="parameters (log scale)", ylabel="ms per assertion (greedy, batch 1, 1 thread)",
           title="Latency p50")
    ax.set_ylim(bottom=0)
    if not ax.get_legend_handles_labels()[0]:
        ax.text(0.5, 0.5, "no latency measured\n(--latency-examples 0)", ha="center",
                transform=ax.transAxes)


def _errorbars(ax, xs, points: list[dict], metric: str, color: str, line: bool = False) -> None:
    ys = [p["metrics"].get(metric) for p in points]
    bounds = [interval(p, metric) for p in points]
    yerr = None
    if all(b is not None for b in bounds):
        yerr = [[y - b[0] for y, b in zip(ys, bounds, strict=True)],
                [b[1] - y for y, b in zip(ys, bounds, strict=True)]]
    ax.errorbar(xs, ys, yerr=yerr, fmt="o-" if line else "o", color=color, capsize=4,
                label=LABELS[metric] + (" (95% CI)" if yerr else ""))


def _references(ax, results: dict, like: dict, metrics) -> None:
    """The teacher (dashed) and the same student without distillation (dotted)."""
    _teacher(ax, results, metrics)
    plain = next((p for p in results["points"].values()
                  if p["alpha"] == 0 and p.get("student") == like.get("student")), None)
    for i, metric in enumerate(metrics):
        value = None if plain is None else plain["metrics"].get(metric)
        if value is not None:
            ax.axhline(value, color=f"C{i}", linestyle=":", linewidth=1,
                       label=f"no distillation (alpha 0): {LABELS[metric]} ({value:.3f})")


def _teacher(ax, results: dict, metrics, star: bool = False) -> None:
    """Dashed lines at the teacher's scores; ``star``: a star at its size too (x = parameters)."""
    teacher = results.get("teacher") or {}
    for i, metric in enumerate(metrics):
        value = (teacher.get("metrics") or {}).get(metric)
        if value is not None:
            ax.axhline(value, color=f"C{i}", linestyle="--", linewidth=1,
                       label=f"teacher: {LABELS[metric]} ({value:.3f})")
            if star and _parameters(teacher):
                ax.scatter([_parameters(teacher)], [value], color=f"C{i}", marker="*", s=140, zorder=3)


def _store_label(point: dict) -> str:
    name = point["store"]
    return f"{name} (fp32, live)" if name == "online" else name


def _parameters(row: dict) -> int | None:
    return (row.get("size") or {}).get("parameters")


def _p50(row: dict) -> float | None:
    return ((row.get("speed") or {}).get("cpu_latency_1thread") or {}).get("p50_ms")
