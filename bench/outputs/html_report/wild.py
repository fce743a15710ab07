"""The report's "wild" section: per suite, each detector's mean AP on the files as published beside its AP
under each `--align` policy, and the trivial classifier's AP from `bench audit` (a score read from the file
headers alone), so a reader sees at once which numbers a format shortcut could explain.

Runs pair up when they are the same detector with the same weights and resolution policy and differ only in
their alignment (run.json `align`); the values are the run folders' metrics.json suite means. The audit comes
from an audit folder (`bench audit --output DIR`, its audit.json) given to `bench report` beside the runs;
without one the section says that the shortcut column is empty because no audit was given.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from bench.errors import BenchError
from bench.outputs.html_report import charts
from bench.outputs.html_report.runs import ReportRun
from bench.outputs.tables.aligned import paired_table, paired_text_rows

AUDIT_FILE = "audit.json"
RAW = "raw"


@dataclass
class WildSuite:
    name: str
    bars: str | None
    """The raw-vs-aligned bar chart (a PNG data URI), or None when no run scored the suite."""
    header: list[str]
    rows: list[list[str]]
    trivial: list[str] | None
    """The audit's row for the suite, or None without an audit of it."""
    bars_text: str = ""
    """The plotted numbers in words (the figure's alt text)."""


@dataclass
class WildSection:
    suites: list[WildSuite] = field(default_factory=list)
    trivial_header: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def read_audit(folder: Path) -> list[dict]:
    """The suites' audits an audit folder holds (audit.json written by `bench audit --output`)."""
    path = folder / AUDIT_FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise BenchError(f"{path} cannot be read ({error})") from error
    audits = document.get("audits") if isinstance(document, dict) else None
    if not isinstance(audits, list):
        raise BenchError(f"{path} is not an audit written by `bench audit --output` (no 'audits' list)")
    return audits


def _identity(run: ReportRun) -> tuple:
    weights = run.info.get("weights") or {}
    return (run.detector, weights.get("sha256") or weights.get("name"), run.info.get("resolution_choice"),
            run.info.get("perturbation"))


def _policy(run: ReportRun) -> str:
    return str(run.info.get("align") or RAW)


def _pct(value) -> str:
    return "–" if value is None else f"{100 * float(value):.1f}"


def _trivial_row(audit: dict) -> list[str]:
    means = audit.get("mean_trivial_ap") or {}
    alignment = audit.get("alignment") or {}
    recommended = alignment.get("recommended")
    after = ((alignment.get("policies") or {}).get(recommended) or {}).get("mean_trivial_ap") or {}
    shortcuts = ", ".join(alignment.get("before") or []) or "none"
    return [audit.get("suite", "?"), _pct(means.get("format")), _pct(means.get("jpeg quality")), _pct(means.get("size")),
            shortcuts, f"--align {recommended}" if recommended else "raw (nothing to remove)",
            _pct(after.get("format")) if recommended else "–", _pct(after.get("jpeg quality")) if recommended else "–"]


def _bars(suite: str, groups: list[tuple[str, dict[str, float | None]]], policies: list[str],
          trivial: float | None) -> Figure:
    """Mean AP per detector (groups) and policy (bars), chance and the trivial header classifier as lines."""
    figure = Figure(figsize=(max(7.5, 1.6 * len(groups) + 4.5), 3.6), layout="constrained")
    ax = figure.subplots()
    x = np.arange(len(groups))
    width = 0.8 / max(len(policies), 1)
    for slot, policy in enumerate(policies):
        values = np.array([np.nan if g[1].get(policy) is None else 100 * g[1][policy] for g in groups])
        offset = (slot - (len(policies) - 1) / 2) * width
        ax.bar(x + offset, np.nan_to_num(values, nan=0.0), width * 0.95, color=charts.colour(slot),
               label="as published" if policy == RAW else f"--align {policy}")
        for xi, value in zip(x + offset, values):
            ax.text(xi, (0 if np.isnan(value) else value) + 1, "n/a" if np.isnan(value) else f"{value:.1f}",
                    ha="center", va="bottom", fontsize=7)
    ax.axhline(50, color="#bbbbbb", linewidth=0.8, linestyle="--", label="chance (50)")
    if trivial is not None:
        ax.axhline(100 * trivial, color="#d62728", linewidth=1.1, linestyle=":",
                   label=f"header-only classifier, as published ({100 * trivial:.1f})")
    ax.set_xticks(x, [name for name, _ in groups], fontsize=8)
    ax.set_ylabel("mean AP over generators (%)", fontsize=9)
    ax.set_ylim(0, 108)
    ax.grid(axis="y", alpha=0.25)
    ax.set_title(f"{suite}: detectors' AP as published vs aligned", fontsize=10)
    ax.set_xlabel("detector (weights)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), framealpha=0.9)
    return figure


def wild_section(runs: list[ReportRun], audits: list[dict], wild_suites: set[str]) -> WildSection | None:
    """The section, or None when there is nothing for it: no aligned run, no in-the-wild suite, no audit."""
    aligned = any(_policy(run) != RAW for run in runs)
    by_suite_audit = {audit.get("suite"): audit for audit in audits}
    suites: list[str] = []
    for run in runs:
        for suite in run.suites:
            if (aligned or suite in wild_suites) and suite not in suites:
                suites.append(suite)
    suites += [name for name in by_suite_audit if name not in suites]
    if not suites:
        return None
    section = WildSection(trivial_header=["suite", "format AP", "JPEG-quality AP", "size AP", "shortcut found",
                                          "recommended", "format AP after", "JPEG-quality AP after"])
    for suite in suites:
        present = [run for run in runs if suite in run.metrics.get("suites", {})]
        identities: dict[tuple, dict[str, ReportRun]] = {}
        for run in present:
            identities.setdefault(_identity(run), {})[_policy(run)] = run
        policies = [RAW] + sorted({p for pairs in identities.values() for p in pairs} - {RAW})
        groups, metrics_by_policy = [], {policy: {} for policy in policies}
        for pairs in identities.values():
            first = next(iter(pairs.values()))
            name = f"{first.display_name} ({first.weights_name})"
            groups.append((name, {policy: (((pairs[policy].metrics["suites"][suite].get("mean")) or {}).get("ap")
                                           if policy in pairs else None) for policy in policies}))
            for policy, run in pairs.items():
                metrics_by_policy[policy][name] = {"suites": {suite: run.metrics["suites"][suite]}}
        audit = by_suite_audit.get(suite)
        trivial = None
        if audit:
            means = audit.get("mean_trivial_ap") or {}
            known = [v for v in (means.get("format"), means.get("jpeg quality")) if v is not None]
            trivial = max(known) if known else None
        header, rows = [], []
        if groups:
            table = paired_table({p: metrics_by_policy[p] for p in policies if metrics_by_policy[p]})
            header, all_rows = paired_text_rows(table)
            rows = [row for row in all_rows if row[2] == "mean"]
        described = "; ".join(
            f"{name}: " + ", ".join(f"{'as published' if p == RAW else '--align ' + p} {_pct(values.get(p))}"
                                    for p in policies)
            for name, values in groups)
        section.suites.append(WildSuite(
            suite, charts.data_uri(_bars(suite, groups, policies, trivial)) if groups else None, header, rows,
            _trivial_row(audit) if audit else None, f"mean AP (%) - {described}" if groups else ""))
    if not audits:
        section.notes.append("No audit was given, so the trivial-classifier column is empty: run `bench audit --suite "
                             "SUITE --output DIR` and pass DIR to `bench report` beside the run folders.")
    section.notes.append("The dotted line is the AP the file headers alone give (bench audit). A detector whose AP "
                         "as published is near it and moves when the files are aligned was reading how the files "
                         "were stored; one whose AP holds under alignment was not.")
    return section
