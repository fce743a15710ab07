"""The report's figures, drawn with matplotlib's object API (no pyplot state) and embedded as PNG data URIs."""

from __future__ import annotations

import base64
import io
import math

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve, roc_curve

from bench.engine.metrics import TIE_NOTE_POINTS, scores_and_threshold
from bench.outputs.html_report.runs import ReportRun

DPI = 96
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22")
"""matplotlib's tab10, reordered so the first three detectors differ in hue and lightness."""


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def data_uri(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def png_file_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _grid(n: int, columns: int = 4) -> tuple[int, int]:
    columns = min(columns, n)
    return math.ceil(n / columns), columns


def curve_scores(run: ReportRun, suite: str, generator: str, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(labels, scores) a curve is drawn from, under the convention the run's metrics were computed with,
    so that the curve and the number in its legend (read from metrics.json) are one computation's:
    - ROC, when metrics.json lists `auc` among its `exact_order_metrics`: the logits (the exact order);
    - otherwise (PR, or ROC of an older run) what the paper's AP read: the official float32 sigmoid
      (`prob_precision` float32), the logits (float64), or, for runs that predate `prob_precision`, the
      stored float64 `prob`."""
    rows = run.scores[(run.scores["suite"] == suite) & (run.scores["generator"] == generator)]
    labels = rows["label"].to_numpy(dtype=np.int64)
    logits = rows["logit"].to_numpy(dtype=np.float64)
    if kind == "roc" and "auc" in (run.metrics.get("exact_order_metrics") or ()):
        return labels, logits
    precision = run.metrics.get("prob_precision")
    if precision is None:
        return labels, rows["prob"].to_numpy(dtype=np.float64)
    return labels, scores_and_threshold(logits, precision)[0]


def _figure_of(run: ReportRun, suite: str, generator: str, key: str) -> float | None:
    value = ((run.metrics.get("suites", {}).get(suite) or {}).get("generators", {}).get(generator) or {}).get(key)
    return None if value is None or value != value else float(value)


def legend_text(run: ReportRun, suite: str, generator: str, kind: str) -> str:
    """A curve's legend entry: the run's label and the area from its metrics.json (never recomputed here);
    a PR legend adds AP from the exact order when float32 ties move AP (metrics.json's `ap_exact`)."""
    key, name = ("auc", "AUC") if kind == "roc" else ("ap", "AP")
    value = _figure_of(run, suite, generator, key)
    text = f"{run.label}: {name} {'–' if value is None else f'{100 * value:.1f}'}"
    exact = _figure_of(run, suite, generator, "ap_exact")
    if kind == "pr" and value is not None and exact is not None and abs(exact - value) * 100 > TIE_NOTE_POINTS:
        text += f" (exact order {100 * exact:.1f})"
    return text


def curves_figure(kind: str, suite: str, generators: list[str], runs: list[ReportRun]
                  ) -> tuple[Figure, list[tuple[str, str]]]:
    """ROC (`kind="roc"`) or precision-recall (`kind="pr"`) curves: one panel per generator, one line per
    run, drawn by `curve_scores`, with the area from metrics.json in the legend (`legend_text`). Where float32
    ties move AP, the PR curve of the exact order is drawn dashed beside the tied one. Also returns every
    (generator, legend entry), which the page repeats as text."""
    rows, columns = _grid(len(generators))
    figure = Figure(figsize=(3.0 * columns, 2.9 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    legends = []
    for index, generator in enumerate(generators):
        ax = axes[index // columns][index % columns]
        for run_index, run in enumerate(runs):
            labels, scores = curve_scores(run, suite, generator, kind)
            if len(labels) == 0 or labels.min() == labels.max():
                continue  # one class only: neither curve is defined
            if kind == "roc":
                x, y, _ = roc_curve(labels, scores)
            else:
                y, x, _ = precision_recall_curve(labels, scores)
            text = legend_text(run, suite, generator, kind)
            legends.append((generator, text))
            ax.plot(x, y, color=colour(run_index), linewidth=1.4, label=text,
                    drawstyle="steps-post" if kind == "pr" else "default")
            exact = _figure_of(run, suite, generator, "ap_exact")
            paper = _figure_of(run, suite, generator, "ap")
            if kind == "pr" and exact is not None and paper is not None and abs(exact - paper) * 100 > TIE_NOTE_POINTS:
                logits = run.scores[(run.scores["suite"] == suite) & (run.scores["generator"] == generator)]["logit"]
                y, x, _ = precision_recall_curve(labels, logits.to_numpy(dtype=np.float64))
                ax.plot(x, y, color=colour(run_index), linewidth=1.0, linestyle="--", drawstyle="steps-post")
        if kind == "roc":
            ax.plot([0, 1], [0, 1], color="#bbbbbb", linewidth=0.8, linestyle="--")
            ax.set_xlabel("false positive rate", fontsize=8)
            ax.set_ylabel("true positive rate", fontsize=8)
        else:
            ax.set_xlabel("recall", fontsize=8)
            ax.set_ylabel("precision", fontsize=8)
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{suite}/{generator}" if len(generators) == 1 else generator, fontsize=10)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.25)
        if ax.lines:
            ax.legend(fontsize=6.5, loc="lower right" if kind == "roc" else "lower left", frameon=True)
        else:
            ax.text(0.5, 0.5, "one class only:\nno curve", ha="center", va="center", fontsize=8,
                    transform=ax.transAxes)
    for index in range(len(generators), rows * columns):
        axes[index // columns][index % columns].set_visible(False)
    return figure, legends


def bars_figure(suite: str, generators: list[str], runs: list[ReportRun], metrics: dict[str, dict[str, dict]],
                paper: dict[str, dict[str, dict]], errors: dict[str, dict[str, dict]] | None = None) -> Figure:
    """ACC (top) and AP (bottom) per generator and the mean, one bar per run, with the value's confidence
    interval as an error bar; where the paper reports the same detector's value, a hatched bar of the same
    colour stands beside the reproduced one.

    `metrics[run.label][generator]` and `paper[run.label][generator]` hold "acc"/"ap" in percent,
    `errors[run.label][generator][metric]` the interval (low, high) in percent or None (metrics.json's)."""
    columns = [*generators, "mean"]
    bars = [(run_index, run, source) for run_index, run in enumerate(runs) for source in ("ours", "paper")
            if source == "ours" or paper.get(run.label)]
    width = 0.8 / max(len(bars), 1)
    figure = Figure(figsize=(max(6.0, 0.95 * len(columns) + 2.5), 5.2), layout="constrained")
    axes = figure.subplots(2, 1, sharex=True)
    x = np.arange(len(columns))
    for ax, metric, title in zip(axes, ("acc", "ap"), ("ACC (%)", "AP (%)")):
        for slot, (run_index, run, source) in enumerate(bars):
            table = metrics[run.label] if source == "ours" else paper[run.label]
            values = np.array([
                np.nan if table.get(c, {}).get(metric) is None else float(table[c][metric]) for c in columns
            ])
            offset = (slot - (len(bars) - 1) / 2) * width
            style = {"color": colour(run_index)}
            if source == "paper":
                style = {"facecolor": "white", "edgecolor": colour(run_index), "hatch": "////", "linewidth": 0.8}
            label = run.label if source == "ours" else f"{run.label}, paper"
            ax.bar(x + offset, np.nan_to_num(values, nan=0.0), width * 0.95, label=label, **style)
            bounds = [(errors or {}).get(run.label, {}).get(c, {}).get(metric) if source == "ours" else None
                      for c in columns]
            shown = [i for i, b in enumerate(bounds) if b is not None and not np.isnan(values[i])]
            if shown:
                # drawn from low to high, not around the value: a percentile interval need not contain it
                centres = (x + offset)[shown]
                lows, highs = [bounds[i][0] for i in shown], [bounds[i][1] for i in shown]
                ax.vlines(centres, lows, highs, color="#222222", linewidth=0.9)
                for ends in (lows, highs):
                    ax.hlines(ends, centres - width * 0.18, centres + width * 0.18, color="#222222", linewidth=0.9)
            for xi, value in zip(x + offset, values):
                if np.isnan(value):
                    ax.text(xi, 1, "n/a", ha="center", va="bottom", fontsize=6, rotation=90, color="#666666")
        ax.axvline(len(generators) - 0.5, color="#999999", linewidth=0.8, linestyle=":")
        ax.set_ylabel(title, fontsize=9)
        ax.set_ylim(0, 105)
        ax.axhline(50, color="#bbbbbb", linewidth=0.7, linestyle="--")  # chance
        ax.grid(axis="y", alpha=0.25)
        ax.tick_params(labelsize=8)
    axes[1].set_xticks(x, columns, rotation=30 if len(columns) > 6 else 0, ha="right" if len(columns) > 6 else "center")
    bars_note = "; whiskers: confidence interval" if errors else ""
    axes[0].set_title(f"{suite}: per generator and mean (dashed: chance{bars_note})", fontsize=10)
    axes[0].legend(fontsize=7, ncol=min(len(bars), 4), loc="lower left", framealpha=0.9)
    return figure


SUITE_PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1", "#edc948", "#9c755f")


def _reliability_blocks(run: ReportRun) -> list[tuple[str, dict, dict | None]]:
    """(name, reliability, reliability after the map) per suite of the run, and the run's pooled ones
    when it has several suites (metrics.json's `reliability` blocks)."""
    blocks = [(suite, block["reliability"], block.get("reliability_cal"))
              for suite, block in run.metrics.get("suites", {}).items() if block.get("reliability")]
    if len(blocks) > 1 and run.metrics.get("reliability"):
        blocks.append(("all suites", run.metrics["reliability"], run.metrics.get("reliability_cal")))
    return blocks


def reliability_legends(runs: list[ReportRun]) -> list[tuple[str, str]]:
    """(run label, legend text) of every line of the reliability diagrams, as drawn (the pooled ECE from
    metrics.json)."""
    legends = []
    for run in runs:
        for name, block, calibrated in _reliability_blocks(run):
            text = f"{name}: pooled ECE {100 * block['ece']:.1f}%"
            if calibrated:
                text += f", after the map {100 * calibrated['ece']:.1f}%"
            legends.append((run.label, text))
    return legends


def reliability_figure(runs: list[ReportRun]) -> Figure:
    """One reliability diagram per run: the share of fakes against the mean fake-probability in each of
    metrics.json's equal-width bins, a line per suite (dashed: after a fitted calibration map), marker
    areas by the bin's image count; grey bars: the share of the run's images in each bin."""
    columns = min(len(runs), 3)
    rows = math.ceil(len(runs) / columns)
    figure = Figure(figsize=(4.2 * columns, 4.0 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    for index, run in enumerate(runs):
        ax = axes[index // columns][index % columns]
        blocks = _reliability_blocks(run)
        pooled = run.metrics.get("reliability")
        if pooled:
            share = np.array(pooled["count"], dtype=float) / max(sum(pooled["count"]), 1)
            edges = np.array(pooled["edges"])
            ax.bar(edges[:-1], share, width=np.diff(edges), align="edge", color="#e3e6eb", edgecolor="#c9ced8",
                   linewidth=0.5, label="share of images per bin")
        ax.plot([0, 1], [0, 1], color="#999999", linewidth=0.8, linestyle="--", label="perfect calibration")
        for number, (name, block, calibrated) in enumerate(blocks):
            colour_of = "#222222" if name == "all suites" else SUITE_PALETTE[number % len(SUITE_PALETTE)]
            for data, style, suffix in ((block, "-", ""), (calibrated, "--", " after the map")):
                if not data:
                    continue
                kept = [i for i, n in enumerate(data["count"]) if n]
                x = [data["mean_prob"][i] for i in kept]
                y = [data["frac_fake"][i] for i in kept]
                sizes = 12 + 60 * np.sqrt(np.array([data["count"][i] for i in kept]) / max(max(data["count"]), 1))
                ax.plot(x, y, style, color=colour_of, linewidth=1.3,
                        label=f"{name}{suffix}: pooled ECE {100 * data['ece']:.1f}%")
                ax.scatter(x, y, s=sizes, color=colour_of, alpha=0.6, linewidths=0)
        if not blocks:
            ax.text(0.5, 0.5, "no reliability bins", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.04)
        ax.set_xlabel("mean predicted fake-probability in the bin", fontsize=8)
        ax.set_ylabel("share of fakes in the bin", fontsize=8)
        ax.set_title(run.label, fontsize=10, color=run.colour or "black")
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.25)
        ax.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False)
    for index in range(len(runs), rows * columns):
        axes[index // columns][index % columns].set_visible(False)
    figure.suptitle("Reliability: share of fakes against the predicted fake-probability, per equal-width bin",
                    fontsize=10)
    return figure
