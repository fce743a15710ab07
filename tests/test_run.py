"""`bench run` end to end: the paper's protocol image by image, odd files, resume after SIGKILL, reuse."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from sklearn.metrics import average_precision_score
from tests_support import write_suite

from bench.cli import main
from detectors import export_state_dict, get_detector

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def random_lfm(tmp_path) -> Path:
    """A randomly initialised LFM, saved: a protocol test needs a fixed model, not a trained one."""
    torch.manual_seed(0)
    detector = get_detector("lfm")
    model = detector.build()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    path = tmp_path / "random_lfm.pth"
    torch.save(export_state_dict(model, detector), path)
    return path


def run_json(args: list[str], capsys) -> dict:
    assert main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_scores_equal_the_plain_torchvision_pipeline(tmp_path, random_lfm, capsys):
    from torchvision import datasets, transforms

    suite = write_suite(tmp_path / "suite", {"gen": 6})
    results = tmp_path / "results"
    metrics = run_json(["run", "--detector", "lfm", "--suite", str(suite / "gen"), "--weights", str(random_lfm),
                        "--output", str(results), "--workers", "0", "--batch-size", "4"], capsys)
    run_dir = next((results / "runs").iterdir())
    scores = pd.read_parquet(run_dir / "scores.parquet")

    transform = transforms.Compose([
        transforms.Resize((256, 256)), transforms.ToTensor(),
        transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    ])
    folder = datasets.ImageFolder(str(suite / "gen"), transform=transform)
    model = get_detector("lfm").build()
    from detectors.checkpoints import load_state_dict_strict, read_state_dict
    load_state_dict_strict(model, read_state_dict(random_lfm), get_detector("lfm"), random_lfm)
    with torch.no_grad():
        plain = {Path(p).relative_to(suite / "gen").as_posix(): torch.sigmoid(model(x[None]))[0].item()
                 for (p, _), (x, _) in zip(folder.samples, folder)}
    labels = {Path(p).relative_to(suite / "gen").as_posix(): y for p, y in folder.samples}
    assert sorted(plain) == sorted(scores["path"])
    for row in scores.itertuples():
        assert abs(row.prob - plain[row.path]) <= 1e-6, row.path
        assert row.label == labels[row.path]
    probs = np.array([plain[p] for p in scores["path"]])
    truth = np.array([labels[p] for p in scores["path"]])
    got = metrics["lfm"]["suites"]["gen"]["generators"]["gen"]
    assert got["acc"] == pytest.approx(((probs > 0.5) == truth).mean(), abs=0)
    assert got["ap"] == pytest.approx(average_precision_score(truth, probs), abs=1e-12)


def make_odd_folder(root: Path) -> dict[str, str | None]:
    """Every kind of awkward file; value = expected skip reason fragment (None = must be scored)."""
    real, fake = root / "0_real", root / "1_fake"
    real.mkdir(parents=True)
    fake.mkdir(parents=True)
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)  # big enough for LFM at native size
    expected: dict[str, str | None] = {}
    (real / "empty.png").write_bytes(b"")
    expected["0_real/empty.png"] = "empty"
    (real / "text.png").write_text("this is not an image")
    expected["0_real/text.png"] = "not an image"
    Image.fromarray(rgb).save(real / "whole.png")
    (real / "truncated.png").write_bytes((real / "whole.png").read_bytes()[:300])
    expected["0_real/truncated.png"] = "truncated"
    Image.fromarray(rgb).save(real / "whole.jpg", quality=90)
    (real / "truncated.jpg").write_bytes((real / "whole.jpg").read_bytes()[:700])
    expected["0_real/truncated.jpg"] = "truncated"
    Image.new("1", (15000, 15000)).save(real / "huge.png")
    expected["0_real/huge.png"] = "decompression bomb"
    expected["0_real/whole.png"] = expected["0_real/whole.jpg"] = None
    Image.fromarray(rgb).convert("CMYK").save(fake / "cmyk.jpg")
    Image.fromarray(rng.integers(0, 65535, (70, 90)).astype(np.uint16)).save(fake / "sixteen.png")
    Image.fromarray(rgb).convert("P").save(fake / "palette.png")
    Image.fromarray(rgb).convert("RGBA").save(fake / "rgba.png")
    Image.fromarray(rgb).convert("L").save(fake / "grey.png")
    Image.fromarray(rgb[:1, :1]).save(fake / "one.png")
    Image.fromarray(rgb[:67, :81]).save(fake / "odd.png")
    Image.fromarray(rgb).save(fake / "fälschung_画像.png")
    for name in ("cmyk.jpg", "sixteen.png", "palette.png", "rgba.png", "grey.png", "one.png", "odd.png",
                 "fälschung_画像.png"):
        expected[f"1_fake/{name}"] = None
    return expected


@pytest.mark.parametrize("protocol_suite", ["resize", "native"])
def test_awkward_files_run_to_the_end(tmp_path, random_lfm, capsys, protocol_suite):
    if protocol_suite == "resize":
        root = tmp_path / "odd"
    else:  # a folder named like GANGen-Detection is evaluated at native size
        root = tmp_path / "GANGen-Detection" / "AttGAN"
    expected = make_odd_folder(root)
    suite_arg = root if protocol_suite == "resize" else root.parent
    results = tmp_path / "results"
    assert main(["run", "--detector", "lfm", "--suite", str(suite_arg), "--weights", str(random_lfm),
                 "--output", str(results), "--workers", "0"]) == 0
    run_dir = next((results / "runs").iterdir())
    skipped = pd.read_csv(run_dir / "skipped.csv")
    scores = pd.read_parquet(run_dir / "scores.parquet")
    reasons = {"/".join(p.split("/")[-2:]): r for p, r in zip(skipped["path"], skipped["reason"])}
    scored = {"/".join(p.split("/")[-2:]) for p in scores["path"]}
    for name, reason in expected.items():
        if reason is None and not (protocol_suite == "native" and name == "1_fake/one.png"):
            assert name in scored, name
        elif reason is not None:
            assert reason in reasons[name], (name, reasons.get(name))
    if protocol_suite == "native":  # a 1x1 image cannot be cropped to an even size
        assert "1_fake/one.png" in reasons
    assert len(scored) + len(reasons) == len(expected)
    assert np.isfinite(scores["logit"]).all()


@pytest.mark.slow
def test_killed_run_resumes_to_identical_scores(tmp_path, random_lfm):
    # a folder named like GANGen-Detection is scored at native size: small images keep this test fast
    suite = write_suite(tmp_path / "GANGen-Detection", {"AttGAN": 150}, size=(64, 64))
    env = {**os.environ, "BENCH_PART_EVERY": "16", "PYTHONUNBUFFERED": "1"}
    base = [sys.executable, "-m", "bench", "run", "--detector", "lfm", "--suite", str(suite),
            "--weights", str(random_lfm), "--workers", "0", "--batch-size", "4"]
    killed_root = tmp_path / "killed"
    process = subprocess.Popen([*base, "--output", str(killed_root)], env=env, cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    parts: list[Path] = []
    while time.time() < deadline and process.poll() is None:
        parts = list(killed_root.glob("cache/*/part-*.parquet"))
        if len(parts) >= 2:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the run finished before it could be killed; make the suite bigger"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert parts and not list(killed_root.glob("cache/*/scores.parquet"))  # killed mid-generator
    subprocess.run([*base, "--output", str(killed_root)], env=env, cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run([*base, "--output", str(tmp_path / "clean")], env=env, cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    resumed = pd.read_parquet(next((killed_root / "runs").iterdir()) / "scores.parquet")
    clean = pd.read_parquet(next((tmp_path / "clean" / "runs").iterdir()) / "scores.parquet")
    assert not resumed["path"].duplicated().any()
    assert len(resumed) == 300
    pd.testing.assert_frame_equal(resumed, clean)


def test_second_run_reuses_stored_scores_and_fresh_recomputes(tmp_path, random_lfm, capsys):
    suite = write_suite(tmp_path / "suite", {"a": 3, "b": 3}, size=(32, 32))
    args = ["run", "--detector", "lfm", "--suite", str(suite), "--weights", str(random_lfm),
            "--output", str(tmp_path / "results"), "--workers", "0"]
    first = run_json(args, capsys)
    cached = sorted((tmp_path / "results" / "cache").glob("*/scores.parquet"))
    stamps = [p.stat().st_mtime_ns for p in cached]
    assert run_json(args, capsys) == first
    assert [p.stat().st_mtime_ns for p in cached] == stamps  # reused, not rewritten
    assert run_json([*args, "--fresh"], capsys) == first
    assert [p.stat().st_mtime_ns for p in cached] != stamps


def test_named_missing_suite_is_exit_2(tmp_path, capsys):
    assert main(["run", "--detector", "lfm", "--suite", "forensynths", "--data-root", str(tmp_path),
                 "--weights", "x.pth"]) == 2
    assert main(["run", "--detector", "lfm", "--suite", "forensynth", "--data-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "Did you mean: forensynths" in err


def test_unknown_detector_and_bad_weights_are_exit_2(tmp_path, capsys):
    suite = write_suite(tmp_path / "suite", {"a": 1}, size=(32, 32))
    assert main(["run", "--detector", "lfn", "--suite", str(suite)]) == 2
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"\x00" * 10)
    assert main(["run", "--detector", "lfm", "--suite", str(suite), "--weights", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "Did you mean: lfm" in err and "cannot read" in err


def test_one_class_generator_gives_null_metrics_and_valid_json(tmp_path, random_lfm, capsys):
    suite = write_suite(tmp_path / "suite", {"a": 2, "b": 2}, size=(32, 32))
    for image in (suite / "b" / "0_real").iterdir():  # b has fakes only
        image.unlink()
    assert main(["run", "--detector", "lfm", "--suite", str(suite), "--weights", str(random_lfm),
                 "--output", str(tmp_path / "results"), "--workers", "0", "--json"]) == 0

    def reject(constant):
        raise AssertionError(f"{constant} is not JSON")

    metrics = json.loads(capsys.readouterr().out, parse_constant=reject)["lfm"]["suites"]["suite"]
    assert metrics["generators"]["b"]["ap"] is None and metrics["generators"]["b"]["f_acc"] is not None
    assert metrics["generators"]["a"]["ap"] is not None
    assert metrics["mean"]["ap"] == metrics["generators"]["a"]["ap"]  # the mean skips the undefined value
