"""`bench compare` / `bench.api.compare`: paired differences of two runs on the same images, McNemar's
exact test on the right discordant cells, DeLong's test, Holm's correction, and the images only one side
scored. Run folders are written here by hand (run.json, metrics.json, scores.parquet)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bench.analyses import compare as C
from bench.cli import main
from bench.engine.uncertainty import UncertaintyOptions


def write_run(root: Path, run_id: str, frame: pd.DataFrame, *, detector="lfm", weights="lfm:demo",
              finished_at="2026-12-01T00:00:00+00:00", perturbation=None) -> Path:
    folder = root / "runs" / run_id
    folder.mkdir(parents=True)
    info = {"run_id": run_id, "status": "finished", "detector": detector, "display_name": detector.upper(),
            "weights": {"name": weights, "sha256": "ab" * 32, "path": "/w.pth"}, "suites": sorted(set(frame["suite"])),
            "perturbation": perturbation, "finished_at": finished_at}
    metrics = {"prob_precision": "float64",
               "suites": {s: {"generators": {g: {} for g in frame.loc[frame["suite"] == s, "generator"].unique()}}
                          for s in frame["suite"].unique()}}
    (folder / "run.json").write_text(json.dumps(info))
    (folder / "metrics.json").write_text(json.dumps(metrics))
    frame.assign(prob=1 / (1 + np.exp(-frame["logit"]))).to_parquet(folder / "scores.parquet")
    return folder


def cells(rng, generator, counts, suite="s"):
    """Images of one generator with given right/wrong patterns: counts[(label, a_right, b_right)] = n.
    A right image gets a logit of the label's sign, a wrong one the other sign, with random magnitudes."""
    rows = []
    for (label, a_right, b_right), n in counts.items():
        for _ in range(n):
            sign = 1 if label == 1 else -1
            rows.append((label, sign * (1 if a_right else -1) * rng.uniform(0.1, 3),
                         sign * (1 if b_right else -1) * rng.uniform(0.1, 3)))
    labels, a, b = map(np.array, zip(*rows))
    paths = [f"{generator}/{'1_fake' if y else '0_real'}/{i}.png" for i, y in enumerate(labels)]
    common = {"suite": suite, "generator": generator, "path": paths, "label": labels}
    return pd.DataFrame({**common, "logit": a}), pd.DataFrame({**common, "logit": b})


def discordant(a_only, b_only, both=20, neither=6):
    """Cells with the discordant images split evenly between the classes, at least 10 of each class."""
    counts = {}
    for label in (0, 1):
        counts[(label, True, False)] = a_only // 2 + (a_only % 2 if label else 0)
        counts[(label, False, True)] = b_only // 2 + (b_only % 2 if label else 0)
        counts[(label, True, True)] = both
        counts[(label, False, False)] = neither
    return counts


def two_runs(tmp_path, generators: dict[str, dict], rng=None):
    rng = rng or np.random.default_rng(0)
    a_frames, b_frames = zip(*(cells(rng, name, counts) for name, counts in generators.items()))
    root = tmp_path / "results"
    write_run(root, "a", pd.concat(a_frames, ignore_index=True))
    write_run(root, "b", pd.concat(b_frames, ignore_index=True), detector="lfm-gap", weights="lfm-gap:demo")
    return root


def test_mcnemar_reads_the_discordant_cells():
    """15 images only A gets right, 4 only B: p = P(|X - 9.5| >= 5.5), X ~ Bin(19, 1/2), summed by hand.
    The 200 images both get right and the 30 neither does say nothing about which is better."""
    a_right = np.array([True] * 15 + [False] * 4 + [True] * 200 + [False] * 30)
    b_right = np.array([False] * 15 + [True] * 4 + [True] * 200 + [False] * 30)
    p, cells_read = C.mcnemar_exact(a_right, b_right)
    by_hand = 2 * sum(math.comb(19, k) for k in range(0, 5)) / 2 ** 19
    assert cells_read == (15, 4)
    assert p == pytest.approx(by_hand)
    assert C.mcnemar_exact(a_right, a_right)[0] == 1.0


def test_holm_by_hand():
    # sorted: .01 x 4 = .04; .02 x 3 = .06; .03 x 2 = .06; .5 x 1 = .5
    assert C.holm([0.03, 0.01, None, 0.5, 0.02]) == pytest.approx([0.06, 0.04, None, 0.5, 0.06])


def test_holm_correction_decides_significance_across_generators(tmp_path):
    """Discordant cells (1, 10), (1, 9), (1, 8), (4, 8) give McNemar p = .0117, .0215, .0391, .388: three
    under .05 uncorrected, only the first after Holm (x4 = .047; x3 = .064; x2 = .078)."""
    root = two_runs(tmp_path, {"g1": discordant(1, 10), "g2": discordant(1, 9), "g3": discordant(1, 8),
                               "g4": discordant(4, 8)})
    comparison = C.compare_runs(root / "runs" / "a", root / "runs" / "b", options=UncertaintyOptions(resamples=200))
    acc = {r.generator: r for r in comparison.rows if r.metric == "acc"}
    raw = [2 * sum(math.comb(n, k) for k in range(low + 1)) / 2 ** n for low, n in ((1, 11), (1, 10), (1, 9), (4, 12))]
    assert raw == pytest.approx([0.01172, 0.02148, 0.03906, 0.3877], abs=1e-4)
    assert [acc[g].p for g in ("g1", "g2", "g3", "g4")] == pytest.approx(raw)
    assert [acc[g].discordant for g in ("g1", "g2", "g3", "g4")] == [(1, 10), (1, 9), (1, 8), (4, 8)]
    holm = [4 * raw[0], 3 * raw[1], 2 * raw[2], raw[3]]
    assert [acc[g].p_holm for g in ("g1", "g2", "g3", "g4")] == pytest.approx(holm)
    assert [acc[g].significant for g in ("g1", "g2", "g3", "g4")] == [True, False, False, False]
    assert sum(p < 0.05 for p in raw) == 3  # what skipping the correction would have called significant


def test_paired_acc_interval_matches_the_paired_variance_and_delong_matches_by_hand(tmp_path):
    """The paired bootstrap of ACC_A - ACC_B keeps the label strata: its variance is the sum over the two
    classes of n_k var(d_k) / n^2, d = right_A - right_B."""
    counts = {(0, True, False): 30, (0, False, True): 10, (0, True, True): 150, (0, False, False): 10,
              (1, True, False): 25, (1, False, True): 20, (1, True, True): 140, (1, False, False): 15}
    root = two_runs(tmp_path, {"g": counts})
    comparison = C.compare_runs(root / "runs" / "a", root / "runs" / "b", options=UncertaintyOptions(resamples=6000))
    row = next(r for r in comparison.rows if r.generator == "g" and r.metric == "acc")
    variance = 0.0
    for label in (0, 1):
        d = np.repeat([1, -1, 0, 0], [counts[(label, True, False)], counts[(label, False, True)],
                                      counts[(label, True, True)], counts[(label, False, False)]])
        variance += d.size * d.var()
    sd = math.sqrt(variance) / 400
    assert row.difference == pytest.approx((55 - 30) / 400)
    assert row.high - row.low == pytest.approx(2 * 1.96 * sd, rel=0.07)
    # DeLong's test on AUC, with the placements computed pair by pair here
    scores = pd.read_parquet(root / "runs" / "a" / "scores.parquet")
    other = pd.read_parquet(root / "runs" / "b" / "scores.parquet")
    labels = scores["label"].to_numpy()
    placements = []
    for values in (scores["logit"].to_numpy(), other["logit"].to_numpy()):
        reals, fakes = values[labels == 0], values[labels == 1]
        kernel = (fakes[:, None] > reals[None]) + 0.5 * (fakes[:, None] == reals[None])
        placements.append((kernel.mean(1), kernel.mean(0)))
    diff_v10 = placements[0][0] - placements[1][0]
    diff_v01 = placements[0][1] - placements[1][1]
    z = diff_v10.mean() / math.sqrt(diff_v10.var(ddof=1) / diff_v10.size + diff_v01.var(ddof=1) / diff_v01.size)
    auc = next(r for r in comparison.rows if r.generator == "g" and r.metric == "auc")
    assert auc.p == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-6)


def test_images_scored_by_one_side_are_named_and_the_rest_compared(tmp_path, capsys):
    rng = np.random.default_rng(1)
    a, b = cells(rng, "g", discordant(5, 5, both=30))
    root = tmp_path / "results"
    write_run(root, "a", a)
    write_run(root, "b", b.iloc[3:], detector="npr", weights="npr:demo")
    assert main(["compare", str(root / "runs" / "a"), str(root / "runs" / "b"), "--ci-resamples", "200"]) == 0
    out = capsys.readouterr().out
    assert "3 images scored only by A, left out: " + ", ".join(sorted("s/" + p for p in a["path"][:3])) in out
    assert f"{len(a) - 3} images scored by both" in out
    assert main(["compare", str(root / "runs" / "a"), str(root / "runs" / "b"), "--json", "--ci-resamples", "200"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["only_a"] == sorted("s/" + p for p in a["path"][:3]) and payload["only_b"] == []
    row = next(r for r in payload["rows"] if r["generator"] == "g" and r["metric"] == "ap")
    assert row["low"] < row["difference"] < row["high"] and row["n_real"] + row["n_fake"] == len(a) - 3


def test_no_image_in_common_is_a_usage_error_naming_both_runs(tmp_path, capsys):
    rng = np.random.default_rng(2)
    a, _ = cells(rng, "g", discordant(2, 2))
    b, _ = cells(rng, "h", discordant(2, 2))
    root = tmp_path / "results"
    write_run(root, "run-one", a)
    write_run(root, "run-two", b)
    assert main(["compare", str(root / "runs" / "run-one"), str(root / "runs" / "run-two")]) == 2
    err = capsys.readouterr().err
    assert "run-one" in err and "run-two" in err and "no image in common" in err


def test_bad_options_and_unknown_names_exit_2(tmp_path, capsys):
    root = two_runs(tmp_path, {"g": discordant(2, 2)})
    a, b = str(root / "runs" / "a"), str(root / "runs" / "b")
    assert main(["compare", a, b, "--ci-resamples", "50"]) == 2
    assert "at least 100" in capsys.readouterr().err
    assert main(["compare", a, b, "--ci-level", "95"]) == 2
    assert "between 0 and 1" in capsys.readouterr().err
    assert main(["compare", "nope:demo", b, "--results", str(root)]) == 2
    assert "lfm-gap:demo" in capsys.readouterr().err  # says what the store holds


def test_names_resolve_to_the_latest_run_in_the_store(tmp_path):
    rng = np.random.default_rng(3)
    a, b = cells(rng, "g", discordant(4, 1, both=30))
    root = tmp_path / "results"
    write_run(root, "old", b, finished_at="2026-11-01T00:00:00+00:00")
    write_run(root, "new", a, finished_at="2026-12-01T00:00:00+00:00")
    write_run(root, "gap", b, detector="lfm-gap", weights="lfm-gap:demo")
    write_run(root, "jpeg", b, perturbation="jpeg:q=75", finished_at="2026-12-02T00:00:00+00:00")
    comparison = C.compare_runs("lfm:demo", "lfm-gap", results=root, options=UncertaintyOptions(resamples=200))
    assert (comparison.a.run_id, comparison.b.run_id) == ("new", "gap")


def _require_pdflatex() -> str:
    path = shutil.which("pdflatex")
    if path is None:
        pytest.skip("pdflatex is not on PATH (Debian: apt-get install texlive-latex-recommended)")
    return path


def test_latex_table_compiles(tmp_path):
    pdflatex = _require_pdflatex()
    root = two_runs(tmp_path, {"g_1": discordant(1, 11), "nearest-conv": discordant(3, 9)})
    comparison = C.compare_runs(root / "runs" / "a", root / "runs" / "b", options=UncertaintyOptions(resamples=200))
    (tmp_path / "t.tex").write_text(C.render_latex(comparison), encoding="utf-8")
    (tmp_path / "doc.tex").write_text("\n".join([r"\documentclass{article}", r"\usepackage{booktabs}",
                                                 r"\usepackage{graphicx}", r"\begin{document}", r"\input{t.tex}",
                                                 r"\end{document}", ""]), encoding="utf-8")
    result = subprocess.run([pdflatex, "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Overfull" not in result.stdout


def test_a_pool_of_reals_shared_by_generators_is_matched_per_generator_and_counted_once(tmp_path):
    """0_real/ beside 1_fake/<generator>/: each shared real is a row of every generator in scores.parquet.
    Matching by path alone paired each such row with all of them (a generator's reals counted twice, its ACC
    and AP moved); the rows must be each generator's own, the totals count each image once, and the mean rows
    say that their intervals treat the pool's images as different ones."""
    from sklearn.metrics import accuracy_score, average_precision_score

    rng = np.random.default_rng(5)
    reals = [f"0_real/r{i}.png" for i in range(12)]
    logits = {run: {path: rng.normal(-0.5, 1.0) for path in reals} for run in "ab"}  # one logit per image and run
    frames = {"a": [], "b": []}
    for generator in ("g1", "g2"):
        fakes = [f"1_fake/{generator}/f{i}.png" for i in range(12)]
        for run in "ab":
            logits[run].update({path: rng.normal(1.5 if run == "a" else 0.5, 1.0) for path in fakes})
            frames[run].append(pd.DataFrame({"suite": "own", "generator": generator, "path": reals + fakes,
                                             "label": [0] * 12 + [1] * 12,
                                             "logit": [logits[run][p] for p in reals + fakes]}))
    folder_a = write_run(tmp_path, "a", pd.concat(frames["a"], ignore_index=True))
    folder_b = write_run(tmp_path, "b", pd.concat(frames["b"], ignore_index=True), detector="npr")
    comparison = C.compare_runs(folder_a, folder_b, options=UncertaintyOptions(resamples=200))
    assert comparison.n_both == 12 + 24 and comparison.only_a == comparison.only_b == []
    for row in comparison.rows:
        frame = frames["a"][0] if row.generator == "g1" else frames["a"][1] if row.generator == "g2" else None
        if frame is None:  # the suite's mean: 12 reals once, 24 fakes
            assert (row.n_real, row.n_fake) == (12, 24)
            continue
        assert (row.n_real, row.n_fake) == (12, 12)
        if row.metric == "acc":  # float64 run: the logit's sign decides, as scikit-learn on the rows
            assert row.a == pytest.approx(accuracy_score(frame["label"], frame["logit"] > 0))
        if row.metric == "ap":
            assert row.a == pytest.approx(average_precision_score(frame["label"], frame["logit"]))
    assert comparison.shared_reals == {"own": 12}
    assert "own: 12 real images belong to several generators" in C.render_markdown(comparison)
