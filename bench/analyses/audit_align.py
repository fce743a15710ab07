"""What each `--align` policy (bench.engine.align) leaves of a suite's file-format shortcuts, and which policy
`bench audit` recommends.

The audit's trivial scores read only file headers, and an alignment changes exactly what the headers say:
after `jpeg96` every file is a JPEG of quality 96; after `fakes-jpeg96` every fake is; after
`match-real-quality` each fake is a JPEG at the quality the engine draws for it (the same draw:
`bench.engine.align.Alignment.quality_for` with the file's path relative to the suite root, from the pool of
its generator's real JPEG qualities). Sizes are unchanged. So the trivial AP after a policy is the trivial AP
of the files as the policy writes them, computed by the same functions as before alignment (format, size,
JPEG quality; bench.analyses.audit.shortcuts): about 50 once nothing in the headers tells the classes apart.

The recommendation is the first policy, in the order match-real-quality (the reals stay as published),
jpeg96, fakes-jpeg96, after which no format or JPEG-quality score warns on any generator. No re-encoding
removes a size shortcut; for that the audit points at a crop resolution policy (`--resolution center-crop`:
every image the same input size at native resolution, no resampling).
"""

from __future__ import annotations

import dataclasses

from bench.analyses.audit import WARN_AUC, FileFacts, SuiteAudit, audit_suites, shortcuts
from bench.engine.align import ALIGN_QUALITY, Alignment

PREFERENCE = ("match-real-quality", "jpeg96", "fakes-jpeg96")
HEADER_PROPS = ("format", "jpeg quality")
"""The shortcuts an alignment can remove (a re-encode changes the container and quality, not the size)."""


def aligned_facts(facts: list[FileFacts], policy: str) -> list[FileFacts]:
    """The files' header facts as the policy writes them (unreadable files stay unreadable)."""
    pool = tuple(sorted(f.jpeg_quality for f in facts if f.label == 0 and f.jpeg_quality is not None))
    alignment = Alignment(policy, pool if policy == "match-real-quality" else ())
    out = []
    for f in facts:
        quality = None if f.width is None else alignment.quality_for(f.label, f.path)
        out.append(f if quality is None else dataclasses.replace(f, format="JPEG", jpeg_quality=quality, quality_exact=True))
    return out


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def alignment_audit(audit: SuiteAudit) -> dict:
    """Per policy: the mean trivial AP over generators of each property and the warnings that remain; the
    recommended policy (None when nothing warns); advice for what alignment cannot remove."""
    warned_before = sorted({s.prop for g in audit.generators for s in g.warnings})
    effects = {}
    for policy in PREFERENCE:
        after = {g.name: shortcuts(aligned_facts(g.facts, policy)) for g in audit.generators}
        remaining = sorted({s.prop for found in after.values() for s in found if s.warn})
        effects[policy] = {
            "mean_trivial_ap": {prop: _mean([s.ap for found in after.values() for s in found if s.prop == prop])
                                for prop in ("format", "size", "jpeg quality")},
            "warnings": remaining,
            "removes_header_shortcuts": not any(prop in HEADER_PROPS for prop in remaining),
        }
    header_warned = [prop for prop in warned_before if prop in HEADER_PROPS]
    recommended = None
    if header_warned:
        recommended = next((p for p in PREFERENCE if effects[p]["removes_header_shortcuts"]), "jpeg96")
    advice = []
    if header_warned:
        advice.append(f"--align {recommended}: " + ("no format or JPEG-quality score warns after it"
                                                    if effects[recommended]["removes_header_shortcuts"]
                                                    else "the least shortcut left, but one is still found"))
    if "size" in warned_before:
        advice.append("size: no re-encoding removes it; evaluate with --resolution center-crop (every image the "
                      "same input size at native resolution, no resampling) and read the size column with care")
    return {"before": warned_before, "policies": effects, "recommended": recommended, "advice": advice,
            "quality": ALIGN_QUALITY, "warn_auc": WARN_AUC}


def audit_with_alignment(*args, **kwargs) -> list[SuiteAudit]:
    """`bench.analyses.audit.audit_suites` (same arguments), each suite's audit with what every alignment policy
    leaves of its shortcuts and the recommended policy (`SuiteAudit.alignment`)."""
    audits = audit_suites(*args, **kwargs)
    for audit in audits:
        audit.alignment = alignment_audit(audit)
    return audits
