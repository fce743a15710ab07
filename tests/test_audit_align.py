"""bench audit after alignment: the trivial classifier's AP on a JPEG-real/PNG-fake folder before (about 100)
and after each --align policy (about the share of fakes, 50 here, when the policy removes the shortcut), the recommended policy, the
headers the audit predicts against the files the engine's re-encoding actually writes, and the report's
wild section."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.analyses.audit import inspect_file
from bench.analyses.audit_align import aligned_facts
from bench.analyses.audit_align import audit_with_alignment as audit_suites
from bench.cli import main
from bench.engine.align import alignment_for


def folder(root: Path, real_format: str, fake_format: str, n: int = 16, qualities=(70, 80, 90),
           fake_qualities=(60,)) -> Path:
    rng = np.random.default_rng(0)
    for label, fmt, levels in (("0_real", real_format, qualities), ("1_fake", fake_format, fake_qualities)):
        (root / "gen" / label).mkdir(parents=True)
        for i in range(n):
            pixels = rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)
            extension = {"JPEG": "jpg", "PNG": "png"}[fmt]
            options = {"quality": levels[i % len(levels)]} if fmt == "JPEG" else {}
            Image.fromarray(pixels).save(root / "gen" / label / f"{i}.{extension}", format=fmt, **options)
    return root


def test_trivial_ap_is_about_100_before_and_about_50_after_alignment(tmp_path, capsys):
    root = folder(tmp_path / "s", "JPEG", "PNG")
    (audit,) = audit_suites(str(root), progress=False, quiet=True)
    assert audit.mean_ap("format") == pytest.approx(1.0)
    effects = audit.alignment["policies"]
    assert effects["jpeg96"]["mean_trivial_ap"]["format"] == pytest.approx(0.5)
    assert effects["jpeg96"]["mean_trivial_ap"]["jpeg quality"] == pytest.approx(0.5)  # all 96: no information
    assert effects["match-real-quality"]["mean_trivial_ap"]["format"] == pytest.approx(0.5)
    assert effects["match-real-quality"]["warnings"] == []
    assert 0.3 < effects["match-real-quality"]["mean_trivial_ap"]["jpeg quality"] < 0.75
    # DDA's variant leaves the reals at 70-90 and the fakes at 96: the quality alone still tells them apart
    assert effects["fakes-jpeg96"]["mean_trivial_ap"]["jpeg quality"] == pytest.approx(1.0)
    assert effects["fakes-jpeg96"]["warnings"] == ["jpeg quality"]
    assert audit.alignment["recommended"] == "match-real-quality"
    assert main(["audit", "--suite", str(root), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "RECOMMENDED: bench run --align match-real-quality" in out
    assert "--align jpeg96                50.0  50.0          50.0  none" in out
    # the level that means "the headers tell nothing" is the share of fakes (16 of 32 here), said beside it
    assert "(mean over generators; 50.0, the share of fakes = the headers tell nothing)" in out


def test_the_chance_level_named_is_the_share_of_fakes(tmp_path, capsys):
    root = folder(tmp_path / "s", "PNG", "PNG")
    for extra in range(8):  # 16 reals, 8 fakes: a random score's AP is 8 / 24
        (root / "gen" / "1_fake" / f"{extra}.png").unlink()
    assert main(["audit", "--suite", str(root), "--workers", "1"]) == 0
    assert "(mean over generators; 33.3, the share of fakes = the headers tell nothing)" in capsys.readouterr().out


def test_png_reals_and_jpeg_fakes_get_jpeg96(tmp_path):
    (audit,) = audit_suites(str(folder(tmp_path / "s", "PNG", "JPEG")), progress=False, quiet=True)
    effects = audit.alignment["policies"]
    assert effects["match-real-quality"]["warnings"] == ["format"]  # no real JPEG quality to match
    assert audit.alignment["recommended"] == "jpeg96"


def test_no_shortcut_no_recommendation(tmp_path):
    (audit,) = audit_suites(str(folder(tmp_path / "s", "PNG", "PNG")), progress=False, quiet=True)
    assert audit.alignment["before"] == [] and audit.alignment["recommended"] is None


@pytest.mark.parametrize("fakes", ["PNG", "JPEG"])  # JPEG fakes at 60: their quality must not enter the pool
@pytest.mark.parametrize("policy", ["jpeg96", "fakes-jpeg96", "match-real-quality"])
def test_predicted_headers_are_those_the_engine_writes(tmp_path, policy, fakes):
    root = folder(tmp_path / "s", "JPEG", fakes, n=6)
    (audit,) = audit_suites(str(root), progress=False, quiet=True)
    (generator,) = audit.generators
    predicted = {f.path: f for f in aligned_facts(generator.facts, policy)}
    alignment = alignment_for(policy, sorted((root / "gen" / "0_real").iterdir()))
    for facts in generator.facts:
        transform = alignment.transform_for(facts.label, facts.path)
        if transform is None:
            assert predicted[facts.path] == facts
            continue
        encoded = tmp_path / "encoded.jpg"  # what the engine's re-encode writes: PIL JPEG at its quality
        buffer = io.BytesIO()
        Image.open(root / facts.path).convert("RGB").save(buffer, format="JPEG", quality=transform.q)
        encoded.write_bytes(buffer.getvalue())
        written = inspect_file(encoded, facts.label, facts.path)
        assert (written.format, written.jpeg_quality) == (predicted[facts.path].format, predicted[facts.path].jpeg_quality)


@pytest.mark.slow
def test_report_wild_section_pairs_raw_and_aligned_with_the_audit(tmp_path):
    from bench.outputs.html_report import render_report

    root = folder(tmp_path / "s", "JPEG", "PNG", n=4)
    results = tmp_path / "results"
    assert main(["run", "--detector", "npr", "--weights", "demo", "--suite", str(root), "--align", "both",
                 "--resolution", "native", "--output", str(results), "--device", "cpu", "--workers", "0", "-q"]) == 0
    assert main(["audit", "--suite", str(root), "--output", str(tmp_path / "audit"), "-q"]) == 0
    audit = json.loads((tmp_path / "audit" / "audit.json").read_text())
    recommended = audit["audits"][0]["alignment"]["recommended"]
    # on 4 files a drawn quality can separate the classes by chance (a moderate score): then jpeg96 is advised
    assert recommended in ("match-real-quality", "jpeg96")
    runs = sorted((results / "runs").iterdir())
    html = render_report([*runs, tmp_path / "audit"])
    section = html[html.index('<section id="wild">'):]
    section = section[:section.index("</section>")]
    assert "Trivial-classifier AP per suite" in section and "<td class=\"\">100.0</td>" in section
    assert f"--align {recommended}" in section
    metrics = {json.loads((r / "run.json").read_text())["align"]: json.loads((r / "metrics.json").read_text())
               for r in runs}
    raw_ap = 100 * metrics["raw"]["suites"]["s"]["mean"]["ap"]
    aligned_ap = 100 * metrics["jpeg96"]["suites"]["s"]["mean"]["ap"]
    assert f"<td class=\"\">{raw_ap:.1f}</td><td class=\"\">{aligned_ap:.1f}</td>" in section
    assert "data:image/png;base64," in section and '<td class="left">mean</td>' in section
    assert f"as published {raw_ap:.1f}, --align jpeg96 {aligned_ap:.1f}" in section  # the bars' numbers (alt text)
