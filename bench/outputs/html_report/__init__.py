"""`bench report`: one self-contained HTML page from finished run folders (and sweep, explanation and
figure folders beside them, see `bench.outputs.html_report.extras`).

Everything comes from the folders (run.json, metrics.json, scores.parquet, skipped.csv) and the reported
numbers bundled in `bench.outputs.reported`; figures are PNGs embedded as data URIs, so the file opens offline,
without a server, and can be mailed or attached as it is. Several run folders are compared side by side.
"""

from __future__ import annotations

import logging
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cache
from pathlib import Path

import jinja2
from tqdm import tqdm

import bench
from bench.engine.metrics import CALIBRATED_KEYS, METRICS, TIE_NOTE_PREFIX
from bench.engine.store import atomic_write_bytes, require_writable_file
from bench.engine.suites import WILD_SUITES
from bench.outputs.html_report import charts
from bench.outputs.html_report.extras import folder_kind, read_extra
from bench.outputs.html_report.paper import reported_method, reported_values
from bench.outputs.html_report.runs import ReportRun, label_runs, read_report_run
from bench.outputs.html_report.wild import read_audit, wild_section

log = logging.getLogger(__name__)

DETAIL_METRICS = ("acc", "ap", "r_acc", "f_acc", "auc", "eer", "oracle_acc", "tpr_at_fpr1", "tpr_at_fpr5")
"""The "all metrics" columns (names and headers from bench.engine.metrics.METRICS); `ap_exact` joins them in a
run where float32 ties move AP, and ACC@cal and the per-class ACC@cal in a calibrated run."""
KNOWN_INFO_KEYS = {
    "run_id", "status", "detector", "display_name", "weights", "suites", "suite_roots", "data_root", "protocol",
    "even_crop", "perturbation", "truncated_images", "limit_per_class", "package_version", "git_commit",
    "torch_version", "device", "started_at", "finished_at", "note", "n_images", "n_skipped", "work_keys",
    "reported_method", "prob_precision", "calibration", "align", "resolution_choice",
}


def percent(value) -> str:
    return "–" if value is None or value != value else f"{100 * float(value):.1f}"


@dataclass
class Cell:
    text: str
    best: bool = False
    paper: bool = False
    interval: str = ""
    """The value's confidence interval, "[low, high]" in %, from metrics.json."""


def interval_text(values: dict, metric: str) -> str:
    """"[low, high]" (%) of a metric's interval in a metrics.json block, "" where it has none."""
    entry = (values.get("intervals") or {}).get(metric) or {}
    if entry.get("low") is None:
        return ""
    return f"[{percent(entry['low'])}, {percent(entry['high'])}]"


def interval_percent(values: dict, metric: str) -> tuple[float, float] | None:
    entry = (values.get("intervals") or {}).get(metric) or {}
    return None if entry.get("low") is None else (100 * entry["low"], 100 * entry["high"])


def uncertainty_sentence(runs: list[ReportRun]) -> str:
    """How the intervals shown were computed (metrics.json's `uncertainty`), once per distinct setting."""
    settings = {}
    for run in runs:
        block = run.metrics.get("uncertainty") or {}
        if block.get("method"):
            settings.setdefault((block["method"], block["level"], block["resamples"], block["seed"]), []).append(run.label)
    parts = [f"{100 * level:g}% {method} bootstrap, {resamples} resamples, seed {seed}"
             + (f" ({', '.join(labels)})" if len(settings) > 1 else "")
             for (method, level, resamples, seed), labels in settings.items()]
    return "; ".join(parts)


def tied(values: dict) -> bool:
    """The generator's (or mean's) notes say float32 ties move its AP (bench.engine.metrics.tie_note)."""
    return any(str(note).startswith(TIE_NOTE_PREFIX) for note in values.get("notes") or [])


def detail_columns(run: ReportRun) -> list[str]:
    """The run's "all metrics" columns: DETAIL_METRICS, `ap_exact` where ties move AP, the calibrated ones."""
    blocks = [b for b in run.metrics.get("suites", {}).values()]
    generators = [v for b in blocks for v in [*b.get("generators", {}).values(), b.get("mean") or {}]]
    columns = list(DETAIL_METRICS)
    if any(tied(values) for values in generators):
        columns.insert(2, "ap_exact")
    if run.metrics.get("calibration"):
        columns += [key for key in CALIBRATED_KEYS if any(key in values for values in generators)]
    return columns


@dataclass
class SuiteSection:
    name: str
    generators: list[str]
    header: list[tuple[str, bool]]  # (run label, has paper columns)
    rows: list[tuple[str, list[Cell]]]
    details: list[tuple[ReportRun, list[str], list[list[str]]]]
    """(run, column headers, rows) of the "all metrics" tables."""
    bars: str
    roc: str
    pr: str
    spread: list[tuple[ReportRun, list[str]]] = field(default_factory=list)
    """(run, one sentence per metric): mean +- SD over the generators and the worst one."""
    quality: list[tuple[ReportRun, list[str], list[list[str]]]] = field(default_factory=list)
    """(run, headers, rows) of the calibration-quality tables."""
    roc_legends: list[tuple[str, str]] = field(default_factory=list)
    pr_legends: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[ReportRun, str]] = field(default_factory=list)
    """(run, note) of metrics.json's top-level notes that concern this suite (ties, the calibration set)."""
    runs_missing: list[str] = field(default_factory=list)


def _suite_order(runs: list[ReportRun]) -> list[str]:
    order: dict[str, None] = {}
    for run in runs:
        for suite in run.suites:
            order.setdefault(suite)
    return list(order)


def _generator_order(runs: list[ReportRun], suite: str) -> list[str]:
    order: dict[str, None] = {}
    for run in runs:
        for generator in run.metrics["suites"].get(suite, {}).get("generators", {}):
            order.setdefault(generator)
    return list(order)


def _suite_section(suite: str, runs: list[ReportRun]) -> SuiteSection:
    present = [run for run in runs if suite in run.metrics["suites"]]
    generators = _generator_order(present, suite)
    per_run = {}
    paper = {}
    for run in present:
        block = run.metrics["suites"][suite]
        table = {g: block["generators"].get(g) or {} for g in generators}
        table["mean"] = block.get("mean") or {}
        per_run[run.label] = table
        method = reported_method(run.info)
        paper[run.label] = reported_values(method, suite, list(block["generators"]))
    percent_tables = {
        label: {g: {k: None if v.get(k) is None else 100 * float(v[k]) for k in ("acc", "ap")} for g, v in t.items()}
        for label, t in per_run.items()
    }
    header = [(run.label, bool(paper[run.label])) for run in present]
    rows = []
    for generator in [*generators, "mean"]:
        cells: list[Cell] = []
        best = {}
        for metric in ("acc", "ap"):
            values = [per_run[r.label][generator].get(metric) for r in present]
            values = [v for v in values if v is not None]
            best[metric] = max(values) if len(present) > 1 and values else None
        for run in present:
            values = per_run[run.label][generator]
            for metric in ("acc", "ap"):
                value = values.get(metric)
                star = "*" if metric == "ap" and tied(values) else ""
                cells.append(Cell(percent(value) + star, best=value is not None and value == best[metric],
                                  interval=interval_text(values, metric)))
            if paper[run.label]:
                reported_cell = paper[run.label].get(generator, {})
                for metric in ("acc", "ap"):
                    value = reported_cell.get(metric)
                    cells.append(Cell("–" if value is None else f"{value:.1f}", paper=True))
        rows.append((generator, cells))
    details = []
    for run in present:
        block = run.metrics["suites"][suite]
        columns = detail_columns(run)
        lines = []
        for name, values in [*block["generators"].items(), ("mean", block.get("mean") or {})]:
            lines.append([name, *(percent(values.get(k)) + ("*" if k == "ap" and tied(values) else "") for k in columns),
                          str(values.get("n_real", "–")), str(values.get("n_fake", "–"))])
        details.append((run, [METRICS[k].display for k in columns], lines))
    roc, roc_legends = charts.curves_figure("roc", suite, generators, present)
    pr, pr_legends = charts.curves_figure("pr", suite, generators, present)
    notes = [(run, note) for run in present for note in run.metrics.get("notes") or []
             if note.startswith((f"{suite}/", f"{suite} (mean)"))]
    errors = {label: {g: {k: interval_percent(v, k) for k in ("acc", "ap")} for g, v in t.items()}
              for label, t in per_run.items()}
    return SuiteSection(
        name=suite, generators=generators, header=header, rows=rows, details=details,
        bars=charts.data_uri(charts.bars_figure(suite, generators, present, percent_tables, paper, errors)),
        spread=[(run, _spread_sentences(run.metrics["suites"][suite])) for run in present],
        quality=[(run, *_quality_table(run.metrics["suites"][suite])) for run in present
                 if (run.metrics["suites"][suite].get("mean") or {}).get("calibration_quality")],
        roc=charts.data_uri(roc), pr=charts.data_uri(pr), roc_legends=roc_legends, pr_legends=pr_legends,
        notes=notes, runs_missing=[run.label for run in runs if run not in present],
    )


def _spread_sentences(block: dict) -> list[str]:
    """ACC and AP of a suite beyond its mean (metrics.json's `spread`): mean +- SD over the generators and
    the worst generator."""
    sentences = []
    for key in ("acc", "ap"):
        entry = (block.get("spread") or {}).get(key)
        mean = (block.get("mean") or {}).get(key)
        if entry is None or mean is None:
            continue
        sentences.append(f"{METRICS[key].display} {percent(mean)} ± {100 * entry['std']:.1f} (SD over "
                         f"{entry['generators']} generators), worst {entry['worst']} {percent(entry['worst_value'])}")
    return sentences


QUALITY_HEADERS = {"ece": "ECE (%)", "brier": "Brier", "nll": "NLL (nats)", "cllr": "Cllr (bits)"}


def _quality_table(block: dict) -> tuple[list[str], list[list[str]]]:
    """Per generator and mean: ECE (%), Brier, NLL and Cllr, and the same after a fitted calibration map."""
    names = ["calibration_quality"] + (["calibration_quality_cal"] if "calibration_quality_cal" in
                                       (block.get("mean") or {}) else [])

    def show(key: str, value) -> str:
        if value is None or value != value:
            return "–"
        return percent(value) if key == "ece" else f"{value:.3f}"

    headers = [f"{QUALITY_HEADERS[k]}{' after map' if name.endswith('_cal') else ''}" for name in names
               for k in QUALITY_HEADERS]
    rows = []
    for generator, values in [*block["generators"].items(), ("mean", block.get("mean") or {})]:
        rows.append([generator, *(show(k, (values.get(name) or {}).get(k)) for name in names for k in QUALITY_HEADERS)])
    return headers, rows


def _provenance(run: ReportRun) -> list[tuple[str, str]]:
    info = run.info
    weights = info.get("weights") or {}
    protocol = info.get("protocol")
    if isinstance(protocol, dict):
        protocol = ", ".join(f"{suite}: {name}" for suite, name in protocol.items())
    images = info.get("n_images")
    if isinstance(images, dict):
        images = ", ".join(f"{suite}: {n:,}" for suite, n in images.items())
    rows = [
        ("detector", f"{info.get('detector')} ({run.display_name})"),
        ("paper row", reported_method(info) or "none (no reported values)"),
        ("weights", str(weights.get("name") or "(file)")),
        ("weights sha256", str(weights.get("sha256") or "–")),
        ("weights file", str(weights.get("path") or "–")),
        ("suites", ", ".join(info.get("suites") or run.suites)),
        ("protocol", str(protocol or "–")),
        ("even crop", str(info.get("even_crop", "–"))),
        ("perturbation", str(info.get("perturbation") or "none (clean images)")),
        ("alignment", str(info.get("align") or "raw (files as published)")),
        ("resolution", str(info.get("resolution_choice") or "each suite's own policy")),
        ("truncated files", str(info.get("truncated_images", "–"))),
        ("limit per class", str(info.get("limit_per_class") or "none (every image)")),
        ("probabilities", _precision(run)),
        ("calibration", _calibration(run.metrics.get("calibration") or info.get("calibration"))),
        ("images scored", str(images or "–")),
        ("files skipped", str(info.get("n_skipped", len(run.skipped)))),
        ("lfm-bench", f"{info.get('package_version', '?')} (git {info.get('git_commit') or 'unknown'})"),
        ("torch", str(info.get("torch_version", "?"))),
        ("device", str(info.get("device", "?"))),
        ("started / finished", f"{info.get('started_at', '?')} / {info.get('finished_at', '?')}"),
        ("run folder", str(run.folder)),
    ]
    if info.get("note"):
        rows.append(("note", str(info["note"])))
    for key in sorted(set(info) - KNOWN_INFO_KEYS):
        value = info[key]
        if isinstance(value, (str, int, float, bool)) or value is None:
            rows.append((key.replace("_", " "), str(value)))
    return rows


def _precision(run: ReportRun) -> str:
    precision = run.metrics.get("prob_precision")
    if precision == "float32":
        return ("float32 sigmoid, as the official validate.py (ACC and AP); AUC, EER, oracle ACC and TPR@FPR "
                "from the exact order of the logits" if run.metrics.get("exact_order_metrics") else
                "float32 sigmoid, as the official validate.py")
    if precision == "float64":
        return "float64: the exact order of the logits (ACC is logit > 0)"
    return "float64 sigmoid (a run from before the choice was recorded)"


def _calibration(calibration: dict | None) -> str:
    """The calibrated threshold (or map) and where it came from, or "none"."""
    if not calibration:
        return "none (ACC at the 0.5 threshold only)"
    if calibration.get("method", "threshold") != "threshold":  # a fitted map: its parameters and source
        from bench.engine.calibration import Calibration

        return Calibration.from_description(calibration).sentence()
    rule = ("the logit that keeps 95% of its real images real" if calibration.get("rule") == "real95"
            else "its equal-error point")
    return (f"threshold logit {calibration['threshold_logit']:.4g} (prob {calibration['threshold_prob']:.4g}), "
            f"{rule}, on {', '.join(calibration.get('suites') or [str(calibration.get('on'))])} "
            f"({calibration.get('n_real')} real, {calibration.get('n_fake')} fake)"
            + (f"; WARNING: {calibration['note']}" if calibration.get("note") else ""))


_KIND = re.compile(r"^([^:(\[]{1,60})")


def _skipped_summary(run: ReportRun, examples: int = 3) -> list[tuple[str, int, list[str]]]:
    """(kind of reason, count, first example paths), most frequent first. The kind is the reason's leading
    clause, so that e.g. "cannot be scored at 31x17: ..." and "... at 9x9: ..." are counted together."""
    if run.skipped.empty:
        return []
    groups: dict[str, list[str]] = {}
    for path, reason in zip(run.skipped["path"], run.skipped["reason"]):
        match = _KIND.match(str(reason).strip())
        kind = re.sub(r"\s+at\s+\d+x\d+$", "", match.group(1).strip()) if match else str(reason)
        groups.setdefault(kind, []).append(f"{path}: {reason}")
    ordered = sorted(groups.items(), key=lambda item: -len(item[1]))
    return [(kind, len(items), items[:examples]) for kind, items in ordered]


def run_notes(run: ReportRun) -> list[str]:
    """metrics.json's top-level notes that concern the whole run (e.g. a calibration set from another
    domain), not one suite's generator or mean."""
    prefixes = tuple(p for suite in run.suites for p in (f"{suite}/", f"{suite} (mean)"))
    return [note for note in run.metrics.get("notes") or [] if not note.startswith(prefixes)]


def _overview(runs: list[ReportRun], suites: list[str]) -> list[tuple[ReportRun, list[str]]]:
    rows = []
    for run in runs:
        cells = []
        for suite in suites:
            mean = run.metrics["suites"].get(suite, {}).get("mean") or {}
            cells += [Cell(percent(mean.get("acc")), interval=interval_text(mean, "acc")),
                      Cell(percent(mean.get("ap")) + ("*" if tied(mean) else ""), interval=interval_text(mean, "ap"))]
        overall = run.metrics.get("mean") or {}
        cells += [Cell(percent(overall.get("acc")), interval=interval_text(overall, "acc")),
                  Cell(percent(overall.get("ap")) + ("*" if tied(overall) else ""), interval=interval_text(overall, "ap"))]
        rows.append((run, cells))
    return rows


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("bench.outputs.html_report", "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    )


def render_report(folders: list[str | Path], title: str | None = None, progress: bool = False) -> str:
    """The HTML text of the report on these run folders (in this order). `progress`: bars with an ETA on
    stderr (on a terminal) while the folders are read and each suite's section is drawn."""
    runs, extras, audits = [], [], []
    unique: dict[Path, Path] = {}
    for folder in map(Path, folders):
        if folder.resolve() in unique:  # the same run twice would be two columns of one run
            log.warning("%s is given twice (as %s): shown once", folder, unique[folder.resolve()])
            continue
        unique[folder.resolve()] = folder
    for folder in tqdm(list(unique.values()), unit="folder", desc="report: reading", file=sys.stderr, leave=False,
                       disable=not progress or None):
        kind = folder_kind(folder)
        if kind in (None, "run"):
            runs.append(read_report_run(folder))  # says what is wrong when it is not a run folder
        elif kind == "audit":
            audits += read_audit(folder)  # shown in the wild section
        else:
            extras.append(read_extra(folder, kind))
    label_runs(runs)
    for index, run in enumerate(runs):
        run.colour = charts.colour(index)
    suites = _suite_order(runs)
    sections = [_suite_section(suite, runs) for suite in tqdm(suites, unit="suite", desc="report: drawing",
                                                              file=sys.stderr, leave=False,
                                                              disable=not progress or None)]
    wild = wild_section(runs, audits, set(WILD_SUITES))
    if title is None:
        title = "lfm-bench report: " + ", ".join([run.label for run in runs] + [extra.title for extra in extras])
    return _environment().get_template("report.html.j2").render(
        title=title,
        generated_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        version=bench.__version__,
        runs=[(run, run.colour, _provenance(run), _skipped_summary(run)) for run in runs],
        suites=suites,
        overview=_overview(runs, suites),
        caveats=[(run, note) for run in runs for note in run_notes(run)],
        sections=sections,
        uncertainty=uncertainty_sentence(runs),
        reliability=charts.data_uri(charts.reliability_figure(runs)) if runs else None,
        reliability_legends=charts.reliability_legends(runs),
        extras=extras,
        wild=wild,
        demo=any("demo" in str(run.info.get("note") or "") for run in runs),
    )


def write_report(folders: list[str | Path], output: str | Path, title: str | None = None,
                 progress: bool = True) -> Path:
    """Write the report on these run folders to `output` (see render_report); returns its path."""
    output = require_writable_file(output, "report")  # before reading anything, as bench run checks its output
    html = render_report(folders, title, progress)
    atomic_write_bytes(output, html.encode("utf-8"))
    log.debug("wrote %s (%.1f MB)", output, output.stat().st_size / 1e6)
    return output
