"""Folders beside run folders that a report can show: robustness sweeps, Grad-CAM explanations, figures.

- a sweep folder (`sweep.json`, written by `bench sweep`): the robustness table (rows detector, columns
  clean and each level, ACC/AP) and robustness curves, drawn here from sweep.json;
- an explanation folder (`explain.json`, written by `bench explain`): the (input | detector ...) Grad-CAM
  panels with each detector's verdict, and the localisation numbers when masks existed;
- any other folder of PNG figures (e.g. `bench embed`'s t-SNE plots): its figures, titled by file name.
Images are embedded, downscaled when larger than needed on a page, and capped in number so that the
report stays a file one can mail.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from bench.errors import BenchError
from bench.outputs.html_report import charts
from bench.outputs.robustness_plot import robustness_figure

MAX_SIDE = 1600
"""Longest side (px) of an embedded figure; larger PNGs are downscaled (a page is ~1200 px wide)."""
MAX_PANELS = 12
"""Grad-CAM panels / figures shown per folder; the rest are counted, not shown."""


@dataclass
class Picture:
    uri: str
    caption: str


@dataclass
class Extra:
    kind: str  # "sweep", "explain" or "figures"
    title: str
    folder: Path
    pictures: list[Picture] = field(default_factory=list)
    tables: list[tuple[str, list[str], list[list[str]]]] = field(default_factory=list)  # (caption, header, rows)
    notes: list[str] = field(default_factory=list)


def folder_kind(folder: Path) -> str | None:
    for name, kind in (("run.json", "run"), ("sweep.json", "sweep"), ("explain.json", "explain"),
                       ("audit.json", "audit")):
        if (folder / name).is_file():
            return kind
    if folder.is_dir() and any(folder.rglob("*.png")):
        return "figures"
    return None


def embed_png(path: Path) -> str:
    """A PNG file as a data URI, downscaled to MAX_SIDE on its longest side."""
    try:
        with Image.open(path) as image:
            image.load()
            if max(image.size) > MAX_SIDE:
                image.thumbnail((MAX_SIDE, MAX_SIDE), Image.LANCZOS)
            buffer = io.BytesIO()
            image.save(buffer, format="PNG", optimize=True)
    except (OSError, ValueError) as error:
        raise BenchError(f"{path} cannot be read as an image ({error})") from error
    return charts.png_file_uri(buffer.getvalue())


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise BenchError(f"{path} cannot be read ({error})") from error


def _pct(value) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * float(value):.1f}"


def sweep_extra(folder: Path) -> Extra:
    sweep = _read_json(folder / "sweep.json")
    extra = Extra("sweep", f"Robustness: {' + '.join(sweep.get('suites') or [])}", folder)
    extra.pictures.append(Picture(charts.data_uri(robustness_figure(sweep, charts.PALETTE)),
                                  f"{sweep.get('metric', 'mean over generators')}; AP solid, ACC dashed, "
                                  "dotted: clean AP"))
    values = sweep.get("values") or {}
    labels = sweep.get("labels") or {}
    for grid in sweep.get("grids") or []:
        levels = [("clean", "clean")] + [(level["spec"], str(level.get("value", level["spec"])))
                                         for level in grid.get("levels") or []]
        header = ["detector"] + [f"{name} {metric}" for _, name in levels for metric in ("ACC", "AP")]
        rows = []
        for detector in sweep.get("detectors") or []:
            row = [labels.get(detector, detector)]
            for spec, _ in levels:
                entry = values.get(spec, {}).get(detector, {})
                row += [_pct(entry.get("acc")), _pct(entry.get("ap"))]
            rows.append(row)
        caption = f"{grid.get('family')}" + (f", {grid.get('parameter')} per column" if grid.get("parameter") else "")
        extra.tables.append((caption, header, rows))
    return extra


def explain_extra(folder: Path) -> Extra:
    document = _read_json(folder / "explain.json")
    detectors = document.get("detectors") or {}
    extra = Extra("explain", f"Grad-CAM ({document.get('method', '?')}, {document.get('protocol', '?')}): "
                  + ", ".join(detectors), folder)
    images = [record for record in document.get("images") or [] if record.get("panel")]
    for record in images[:MAX_PANELS]:
        verdicts = "; ".join(
            f"{name}: p(fake) {found.get('prob', float('nan')):.2f}" for name, found in (record.get("detectors") or {}).items()
        )
        truth = {0: "real", 1: "fake"}.get(record.get("truth"), "unknown")
        panel = folder / record["panel"]
        if not panel.is_file():
            extra.notes.append(f"missing panel {panel}")
            continue
        extra.pictures.append(Picture(embed_png(panel), f"{Path(record.get('path', '')).name} (true: {truth}) - {verdicts}"))
    if len(images) > MAX_PANELS:
        extra.notes.append(f"{len(images) - MAX_PANELS} more panels under {folder} are not shown")
    localisation = document.get("localisation") or {}
    rows = [[name, str(v.get("n_masks", 0)), _pct(v.get("energy_in_mask")), _pct(v.get("pointing_game")),
             _pct(v.get("mask_area"))]
            for name, v in localisation.items() if isinstance(v, dict) and v.get("n_masks")]
    if rows:
        extra.tables.append(("localisation on the images with a forgery mask",
                             ["detector", "images", "energy in mask (%)", "pointing game (%)", "mask area (%)"], rows))
    return extra


def figures_extra(folder: Path) -> Extra:
    paths = sorted(folder.rglob("*.png"))
    extra = Extra("figures", f"Figures: {folder.name}", folder)
    if any("tsne" in p.name.lower() or "t-sne" in p.name.lower() for p in paths):
        extra.title = f"Embeddings (t-SNE): {folder.name}"
    for path in paths[:MAX_PANELS]:
        extra.pictures.append(Picture(embed_png(path), str(path.relative_to(folder))))
    if len(paths) > MAX_PANELS:
        extra.notes.append(f"{len(paths) - MAX_PANELS} more PNG files under {folder} are not shown")
    for path in sorted(folder.glob("*.json"))[:3]:
        extra.notes.append(f"numbers: {path}")
    return extra


def read_extra(folder: Path, kind: str) -> Extra:
    return {"sweep": sweep_extra, "explain": explain_extra, "figures": figures_extra}[kind](folder)
