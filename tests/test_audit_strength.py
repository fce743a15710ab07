"""bench audit in proportion (issue 22, item 2): every trivial score's AP and ROC-AUC, moderate and strong
warnings, no direction claimed for a score that does not separate, and `--run`: a detector's accuracy per
class by file format and size, with an exact test of whether its errors follow the format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy.stats import fisher_exact
from sklearn.metrics import average_precision_score, roc_auc_score

from bench.analyses.audit import FileFacts, audit_run, shortcuts
from bench.cli import main


def write_mixed(root: Path, real_jpeg: int, real_png: int, fake_jpeg: int, fake_png: int) -> list[tuple[str, int, str]]:
    """root/{0_real,1_fake}/ with the given numbers of JPEG and PNG files; returns (relative path, label, format)."""
    rng = np.random.default_rng(0)
    made = []
    for label, folder, counts in ((0, "0_real", (real_jpeg, real_png)), (1, "1_fake", (fake_jpeg, fake_png))):
        for fmt, n in zip(("JPEG", "PNG"), counts):
            for i in range(n):
                rel = f"{folder}/{fmt.lower()}_{i:03d}.{'jpg' if fmt == 'JPEG' else 'png'}"
                (root / folder).mkdir(parents=True, exist_ok=True)
                size = (32 + 16 * (i % 3), 32)
                Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(root / rel, fmt)
                made.append((rel, label, fmt))
    return made


def facts(formats_by_label: dict[int, list[str]]) -> list[FileFacts]:
    return [FileFacts(f"{label}/{i}", label, fmt, 32, 32) for label, formats in formats_by_label.items()
            for i, fmt in enumerate(formats)]


def test_strength_is_graded_and_figures_are_sklearns():
    # the folder: reals 58% JPEG, fakes 95% PNG
    files = facts({0: ["JPEG"] * 35 + ["PNG"] * 25, 1: ["JPEG"] * 3 + ["PNG"] * 57})
    (fmt, size) = shortcuts(files)
    labels = np.array([f.label for f in files])
    is_png = np.array([f.format == "PNG" for f in files], dtype=float)
    assert fmt.auc == pytest.approx(roc_auc_score(labels, is_png))
    assert fmt.ap == pytest.approx(max(average_precision_score(labels, is_png), average_precision_score(labels, -is_png)))
    assert 0.65 <= fmt.auc < 0.9 and fmt.strength == "moderate" and fmt.warn  # the old 0.90 threshold hid it
    assert size.strength == "none" and size.direction == "does not separate" and not size.warn
    strong = shortcuts(facts({0: ["JPEG"] * 20, 1: ["PNG"] * 20}))[0]
    assert strong.strength == "strong" and strong.ap == pytest.approx(1.0) and strong.direction == "JPEG -> real"


def test_a_score_below_its_chance_level_claims_no_direction(tmp_path, capsys):
    # JPEG quality over the JPEG files only: 3 fakes among 38 files, the same quality in both classes
    root = tmp_path / "mixed"
    write_mixed(root, real_jpeg=35, real_png=25, fake_jpeg=3, fake_png=57)
    assert main(["audit", "--suite", str(root), "--json"]) == 0
    (generator,) = json.loads(capsys.readouterr().out)[0]["generators"]
    quality = next(s for s in generator["shortcuts"] if s["prop"] == "jpeg quality")
    assert quality["ap"] < 0.5 and quality["ap"] == pytest.approx(quality["chance_ap"])
    assert quality["direction"] == "does not separate" and quality["strength"] == "none"
    assert main(["audit", "--suite", str(root)]) == 0
    out = capsys.readouterr().out
    assert "quality -> fake" not in out and f"{100 * quality['ap']:.1f} / 50.0 (no separation)" in out
    assert "WARNING (moderate shortcut): mixed/mixed: format alone partly separates the classes (JPEG -> real)" in out
    assert "no shortcut" not in out


def write_run(folder: Path, root: Path, rows: list[tuple[str, int, float]]) -> Path:
    """A finished run folder as `bench run` lays it out, over files under `root`, with the given logits."""
    folder.mkdir(parents=True)
    scores = pd.DataFrame([{"suite": "mixed", "generator": "mixed", "path": rel, "label": label, "logit": logit,
                            "prob": 1 / (1 + np.exp(-logit))} for rel, label, logit in rows])
    scores.to_parquet(folder / "scores.parquet", index=False)
    (folder / "metrics.json").write_text(json.dumps({"schema_version": 2, "prob_precision": "float32",
                                                     "suites": {}, "mean": {}}))
    (folder / "run.json").write_text(json.dumps({
        "schema_version": 2, "status": "finished", "detector": "lfm", "weights": {"name": "lfm:official"},
        "suites": ["mixed"], "suite_roots": {"mixed": str(root)}, "n_images": {"mixed": len(rows)}}))
    pd.DataFrame(columns=["path", "reason"]).to_csv(folder / "skipped.csv", index=False)
    return folder


def test_run_breakdown_finds_errors_that_follow_the_format(tmp_path, capsys):
    root = tmp_path / "mixed"
    made = write_mixed(root, real_jpeg=30, real_png=20, fake_jpeg=2, fake_png=40)
    rng = np.random.default_rng(1)
    # a detector that learnt the container: PNG reals called fake 18 times in 20, JPEG reals 6 in 30
    called_fake = {("PNG", 0): set(range(18)), ("JPEG", 0): set(range(6))}
    rows = []
    for rel, label, fmt in made:
        index = int(rel.split("_")[-1].split(".")[0])
        fake = index in called_fake.get((fmt, label), set()) if label == 0 else True
        rows.append((rel, label, float(rng.uniform(2, 9) if fake else rng.uniform(-9, -2))))
    run = write_run(tmp_path / "run", root, rows)
    audit = audit_run(run, workers=2)
    by = {(g.label, g.by, g.group): g for g in audit.groups}
    assert (by["real", "format", "PNG"].n, by["real", "format", "PNG"].correct) == (20, 2)
    assert (by["real", "format", "JPEG"].n, by["real", "format", "JPEG"].correct) == (30, 24)
    assert by["fake", "format", "PNG"].accuracy == 1.0
    # size buckets from PIL's own reading of each file
    sizes = {}
    for rel, label, _ in made:
        with Image.open(root / rel) as image:
            bucket = "< 0.1 MP" if image.size[0] * image.size[1] < 1e5 else "other"
        sizes[label, bucket] = sizes.get((label, bucket), 0) + 1
    assert by["real", "size", "< 0.1 MP"].n == sizes[0, "< 0.1 MP"] == 50
    p = fisher_exact([[2, 18], [24, 6]]).pvalue
    (finding,) = audit.findings
    assert "real images' accuracy follows the file format" in finding and f"p = {p:.2g}" in finding
    assert "10.0% on PNG (n=20)" in finding and "80.0% on JPEG (n=30)" in finding
    assert main(["audit", "--run", str(run), "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert f"WARNING: {finding}" in out and "## run" in out and "## mixed" not in out  # --run alone: no suite audit
    assert main(["audit", "--run", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["runs"][0]["findings"] == [finding]


def test_run_breakdown_is_quiet_when_errors_do_not_follow_the_format(tmp_path):
    root = tmp_path / "mixed"
    made = write_mixed(root, real_jpeg=20, real_png=20, fake_jpeg=20, fake_png=20)
    # every third file of each (class, format) is wrong: the same accuracy in every group
    rows = [(rel, label, (1.0 if label else -1.0) * (-1 if int(rel.split("_")[-1][:3]) % 3 == 0 else 1))
            for rel, label, _ in made]
    assert audit_run(write_run(tmp_path / "run", root, rows), workers=2).findings == []


def test_run_breakdown_counts_a_pool_of_shared_reals_once(tmp_path):
    """A pool of reals shared by two generators (0_real/ beside 1_fake/<generator>/) is a row of each in
    scores.parquet; the breakdown counts files, so each real once (it read 60 reals for a pool of 30)."""
    root = tmp_path / "mixed"
    made = write_mixed(root, real_jpeg=10, real_png=6, fake_jpeg=0, fake_png=12)
    rows = [(rel, label, 3.0 if label else -3.0) for rel, label, _ in made]
    run = write_run(tmp_path / "run", root, rows)
    scores = pd.read_parquet(run / "scores.parquet")
    fakes = scores[scores["label"] == 1]
    pooled = pd.concat([scores[scores["label"] == 0].assign(generator="g1"), fakes.iloc[:6].assign(generator="g1"),
                        scores[scores["label"] == 0].assign(generator="g2"), fakes.iloc[6:].assign(generator="g2")])
    pooled.to_parquet(run / "scores.parquet", index=False)
    by = {(g.label, g.by, g.group): g.n for g in audit_run(run, workers=2).groups}
    assert (by["real", "format", "JPEG"], by["real", "format", "PNG"], by["fake", "format", "PNG"]) == (10, 6, 12)
