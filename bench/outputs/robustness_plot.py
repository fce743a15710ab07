"""The robustness figure of a sweep, drawn from its sweep.json alone: `bench sweep` saves it as
robustness.png/.pdf and `bench report` embeds the same figure, so the two cannot disagree.

One panel per swept perturbation: the mean over the suites' generators against the level, a colour per
detector, AP solid and ACC dashed, each level's confidence interval of the mean (as its run's metrics.json
recorded it) as a whisker from its low to its high end (a percentile interval need not contain the value),
the ACC and AP whiskers of a level drawn a little apart so that they do not hide each other, and the clean AP
as a dotted horizontal line.
"""

from __future__ import annotations

import math

from matplotlib.figure import Figure

from bench.engine.perturb import MILDER_WHEN_LARGER

STYLES = {"ap": "-", "acc": "--"}
WHISKER_SHIFT = 0.012
"""How far apart a level's whiskers of different metrics are drawn, as a share of the panel's x span."""


def _number(value) -> float | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _finite(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def robustness_figure(sweep: dict, palette: tuple[str, ...], metrics: tuple[str, ...] = ("ap", "acc")) -> Figure:
    """The figure of `sweep` (sweep.json's content); `palette`: a colour per detector, in order."""
    grids = sweep.get("grids") or []
    values = sweep.get("values") or {}
    detectors = sweep.get("detectors") or []
    labels = sweep.get("labels") or {}
    on = ", ".join(sweep.get("suites") or [])
    width = max(5.6, 3.9 * len(grids) + 0.4)
    figure = Figure(figsize=(width, 3.8), layout="constrained")
    axes = figure.subplots(1, max(len(grids), 1), squeeze=False, sharey=True)[0]
    whiskers = False
    for axis, grid in zip(axes, grids):
        levels = grid.get("levels") or []
        numeric = bool(levels) and all(_number(level.get("value")) is not None for level in levels)
        xs = [level["value"] if numeric else index for index, level in enumerate(levels)]
        span = (max(xs) - min(xs)) if len(xs) > 1 else 1.0
        for index, detector in enumerate(detectors):
            colour = palette[index % len(palette)]
            entries = [values.get(level["spec"], {}).get(detector, {}) for level in levels]
            for order, metric in enumerate(metrics):
                ys = [_finite(entry.get(metric)) for entry in entries]
                points = [(x, 100 * y) for x, y in zip(xs, ys) if y is not None]
                if points:
                    axis.plot(*zip(*points), STYLES.get(metric, "-"), marker="o", markersize=3, color=colour,
                              label=f"{labels.get(detector, detector)} {metric.upper()}")
                shift = (order - (len(metrics) - 1) / 2) * WHISKER_SHIFT * span
                bounds = [((entry.get("intervals") or {}).get(metric) or {}) for entry in entries]
                bars = [(x + shift, b["low"], b["high"]) for x, b in zip(xs, bounds) if b.get("low") is not None]
                if bars:
                    whiskers = True
                    axis.vlines([x for x, _, _ in bars], [100 * low for _, low, _ in bars],
                                [100 * high for _, _, high in bars], color=colour, linewidth=0.9, alpha=0.8,
                                linestyle=STYLES.get(metric, "-"))
            clean = _finite(values.get("clean", {}).get(detector, {}).get("ap"))
            if clean is not None:
                axis.axhline(100 * clean, color=colour, linestyle=":", linewidth=0.9)
        if numeric:
            axis.set_xlabel(f"{grid.get('family')} {grid.get('parameter')}", fontsize=9)
            if grid.get("parameter") in MILDER_WHEN_LARGER:
                axis.invert_xaxis()  # milder levels on the left, harsher to the right
        else:
            axis.set_xticks(xs, [level["spec"] for level in levels], rotation=20, fontsize=7)
        axis.set_title(f"{grid.get('family')} on {on}" if on else str(grid.get("family")), fontsize=10)
        axis.grid(alpha=0.3)
        axis.tick_params(labelsize=8)
    axes[0].set_ylabel("mean over generators, % (dotted: clean AP)", fontsize=9)
    handles, names = axes[0].get_legend_handles_labels()
    if handles:
        columns = max(1, min(len(names), int(width // 2.6)))
        figure.legend(handles, names, loc="outside lower center", ncol=columns, fontsize=7, frameon=False,
                      handlelength=3.2, title_fontsize=7,
                      title="whiskers: each level's confidence interval of the mean (its run's metrics.json)"
                      if whiskers else None)
    return figure
