"""Raw and aligned results side by side (`bench run --align both`, the report's wild section).

One row per detector, suite and generator (and each suite's mean); per metric a column for each alignment
policy and, for every policy after the first (raw), its difference from the first. The values are the
run folders' metrics.json as computed by bench.engine.metrics; nothing here recomputes a metric.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PAIRED_METRICS = ("acc", "ap")
MEAN_ROW = "mean"


@dataclass
class PairedRow:
    detector: str
    suite: str
    generator: str
    """A generator, or `mean` (the suite's mean over its generators)."""
    values: dict[str, dict[str, float | None]]
    """metric -> policy -> value (fraction in [0, 1], None when undefined)."""

    def delta(self, metric: str, policy: str, baseline: str) -> float | None:
        """`policy` minus `baseline` for a metric (None when either is undefined)."""
        a, b = self.values[metric].get(policy), self.values[metric].get(baseline)
        return None if a is None or b is None else a - b


@dataclass
class PairedTable:
    policies: tuple[str, ...]
    """The first is the baseline (raw) the others are compared with."""
    rows: list[PairedRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _value(block: dict | None, metric: str) -> float | None:
    value = None if block is None else block.get(metric)
    return None if value is None else float(value)


def paired_table(metrics_by_policy: dict[str, dict[str, dict]]) -> PairedTable:
    """`{policy: {detector: metrics.json}}` (policies in order, the first the baseline) -> the paired rows.
    Generators are those of the baseline's runs, in their order."""
    policies = tuple(metrics_by_policy)
    if not policies:
        raise ValueError("no results to pair")
    baseline = metrics_by_policy[policies[0]]
    table = PairedTable(policies)
    for detector, metrics in baseline.items():
        for suite, block in (metrics.get("suites") or {}).items():
            names = [*(block.get("generators") or {}), MEAN_ROW]
            for generator in names:
                values: dict[str, dict[str, float | None]] = {m: {} for m in PAIRED_METRICS}
                for policy in policies:
                    other = ((metrics_by_policy[policy].get(detector) or {}).get("suites") or {}).get(suite) or {}
                    source = other.get("mean") if generator == MEAN_ROW else (other.get("generators") or {}).get(generator)
                    for metric in PAIRED_METRICS:
                        values[metric][policy] = _value(source, metric)
                table.rows.append(PairedRow(detector, suite, generator, values))
    if len(policies) > 1:
        table.notes.append(
            f"delta = aligned minus {policies[0]}, in points. A large AP drop under alignment means the {policies[0]} "
            "number leaned on how the files were stored (format, JPEG quality), not on what they show.")
    return table


def paired_text_rows(table: PairedTable) -> tuple[list[str], list[list[str]]]:
    """Header and rows for a text table (values x100, one decimal; deltas signed)."""
    baseline = table.policies[0]
    header = ["detector", "suite", "generator"]
    for metric in PAIRED_METRICS:
        header += [f"{metric.upper()} {policy}" for policy in table.policies]
        header += [f"{metric.upper()} delta {policy}" for policy in table.policies[1:]]
    rows = []
    for row in table.rows:
        cells = [row.detector, row.suite, row.generator]
        for metric in PAIRED_METRICS:
            cells += [_pct(row.values[metric][policy]) for policy in table.policies]
            cells += [_pct(row.delta(metric, policy, baseline), signed=True) for policy in table.policies[1:]]
        rows.append(cells)
    return header, rows


def _pct(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{100 * value:+.1f}" if signed else f"{100 * value:.1f}"
