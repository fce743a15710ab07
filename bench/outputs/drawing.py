"""Pictures: Grad-CAM overlays, the (input | detector a | detector b) panel and t-SNE scatter panels.

Figures are built on ``matplotlib.figure.Figure`` directly (no pyplot), so drawing never touches a
global backend or leaks figures. The look follows the paper's Visualization figure: a solid red frame
marks a fake input, a dashed gold one a real input; each map is captioned with the detector's verdict,
and a wrong verdict is flagged in red.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FAKE_COLOUR = "#d62728"
REAL_COLOUR = "#e0a800"
# t-SNE points: the paper's green for real and orange for fake
TSNE_COLOURS = {0: "#5aa469", 1: "#e4773a"}
LABEL_NAMES = {0: "real", 1: "fake"}


def overlay(pixels: np.ndarray, cam_map: np.ndarray, image_weight: float = 0.5) -> np.ndarray:
    """uint8 [H, W, 3] image + [H, W] map in [0, 1] -> uint8 [H, W, 3] heat-map overlay (pytorch-grad-cam's
    ``show_cam_on_image``, JET colour map)."""
    from pytorch_grad_cam.utils.image import show_cam_on_image
    from skimage.util import img_as_float32  # uint8 -> [0, 1] for display (not the model's normalisation)

    return show_cam_on_image(img_as_float32(pixels), cam_map, use_rgb=True, image_weight=image_weight)


@dataclass
class Verdict:
    """One detector's call on one image."""

    name: str
    prob: float

    @property
    def label(self) -> int:
        return int(self.prob > 0.5)


def _frame(ax, truth: int | None) -> None:
    for spine in ax.spines.values():
        spine.set_visible(truth is not None)
        if truth == 1:
            spine.set(color=FAKE_COLOUR, linewidth=2.5, linestyle="-")
        elif truth == 0:
            spine.set(color=REAL_COLOUR, linewidth=2.5, linestyle="--")


def _bare(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def draw_cam_row(
    axes: Sequence, pixels: np.ndarray, overlays: Sequence[np.ndarray], truth: int | None,
    verdicts: Sequence[Verdict], *, column_titles: bool = True,
) -> None:
    """One row of the figure: the input (captioned with the true label) then each detector's overlay
    (captioned with its predicted label and probability, flagged when wrong)."""
    axes = list(axes)
    axes[0].imshow(pixels)
    truth_text = f"true: {LABEL_NAMES[truth]}" if truth is not None else "true: unknown"
    axes[0].set_title(truth_text, fontsize=10, fontweight="bold")
    for ax, image, verdict in zip(axes[1:], overlays, verdicts):
        ax.imshow(image)
        wrong = truth is not None and verdict.label != truth
        text = f"pred: {LABEL_NAMES[verdict.label]} ({verdict.prob:.2f})" + ("  \u2717 error" if wrong else "")
        ax.set_title(text, fontsize=10, color=FAKE_COLOUR if wrong else "black", fontstyle="italic")
    for ax in axes:
        _bare(ax)
        _frame(ax, truth)
    if column_titles:
        axes[0].set_xlabel("input image", fontsize=11)
        for ax, verdict in zip(axes[1:], verdicts):
            ax.set_xlabel(verdict.name, fontsize=11)


def cam_panel(
    pixels: np.ndarray, overlays: Sequence[np.ndarray], truth: int | None, verdicts: Sequence[Verdict],
    title: str | None = None,
):
    """(input | detector a | detector b | ...) as a Figure."""
    from matplotlib.figure import Figure

    n = 1 + len(overlays)
    figure = Figure(figsize=(2.6 * n, 3.1), layout="constrained")
    axes = figure.subplots(1, n, squeeze=False)[0]
    draw_cam_row(axes, pixels, overlays, truth, verdicts)
    if title:
        figure.suptitle(title, fontsize=9)
    return figure


def draw_tsne(ax, points: np.ndarray, labels: np.ndarray, title: str | None = None, legend: bool = True) -> None:
    """Scatter of 2-D t-SNE points, real and fake coloured."""
    for label in (0, 1):
        chosen = labels == label
        ax.scatter(points[chosen, 0], points[chosen, 1], s=7, alpha=0.7, linewidths=0,
                   color=TSNE_COLOURS[label], label=LABEL_NAMES[label].capitalize())
    ax.set_xlabel("TSNE-x1", fontsize=8)
    ax.set_ylabel("TSNE-x2", fontsize=8)
    _bare(ax)
    if legend:
        ax.legend(loc="upper right", fontsize=7, frameon=False, markerscale=1.5)
    if title:
        ax.set_title(title, fontsize=9)


def save(figure, path: Path, dpi: int = 150) -> Path:
    """Write a figure (format from the suffix), creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi)
    return path


def tsne_grid(panels: Sequence[tuple[str, str, np.ndarray, np.ndarray, str | None]], rows: Sequence[str],
              columns: Sequence[str], title: str | None = None):
    """A grid of t-SNE panels: one row per generator, one column per detector.

    ``panels``: (row key, column key, points [N, 2], labels [N], caption) for each cell present."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(3.0 * len(columns), 2.8 * len(rows)), layout="constrained")
    axes = figure.subplots(len(rows), len(columns), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for row_key, column_key, points, labels, caption in panels:
        ax = axes[list(rows).index(row_key)][list(columns).index(column_key)]
        ax.set_axis_on()
        draw_tsne(ax, points, labels, title=f"{column_key} | {row_key}" + (f"\n{caption}" if caption else ""))
    if title:
        figure.suptitle(title, fontsize=10)
    return figure
