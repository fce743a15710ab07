"""docs/adding-a-detector.md, executed: the example package in examples/my_detector is installed with pip
(into a folder on sys.path, as an install would make it visible to importlib.metadata; no network), its
detector is trained by `bench train`, evaluated by `bench run` on a tiny tree laid out like ForenSynths,
compared with the paper's NPR row by `bench table --compare`, and explained by `bench explain`.

The images are 256x256 (so the paper's resize leaves them as they are): random-noise reals, and fakes that
are nearest-neighbour up-sampled noise, whose NPR residual is exactly zero. The data is easy on purpose;
what the test checks is the path from an outside package through every verb, with the checkpoint that
`bench train` wrote (its training loss fell, its sha256 is the one run.json records)."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.cli import main
from detectors import registry

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "my_detector"
FORENSYNTHS = ["progan", "stylegan", "stylegan2", "biggan", "cyclegan", "stargan", "gaugan", "deepfake"]
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def write_images(folder: Path, n: int, seed: int, size: int = 256) -> None:
    """n noise reals in folder/0_real and n fakes in folder/1_fake: noise at half size, each pixel repeated
    over a 2x2 block (what nearest-neighbour up-sampling makes)."""
    rng = np.random.default_rng(seed)
    for label in ("0_real", "1_fake"):
        (folder / label).mkdir(parents=True)
        for i in range(n):
            if label == "0_real":
                pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            else:
                pixels = rng.integers(0, 256, (size // 2, size // 2, 3), dtype=np.uint8).repeat(2, 0).repeat(2, 1)
            Image.fromarray(pixels).save(folder / label / f"{i:03d}.png")


def pip_install(source: Path, target: Path) -> None:
    """`pip install` of a copy of the example (the build writes build/ and *.egg-info beside its source)."""
    copy = target.parent / "src"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(target), str(copy)], capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


@pytest.fixture
def installed(tmp_path, monkeypatch) -> Path:
    """The example installed into tmp_path/site, visible to this process as to a fresh interpreter; the
    registry forgets it afterwards."""
    site = tmp_path / "site"
    pip_install(EXAMPLE, site)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    monkeypatch.setattr(registry, "_BUILDERS", dict(registry._BUILDERS))
    yield site
    for name in [m for m in sys.modules if m == "my_detector" or m.startswith("my_detector.")]:
        del sys.modules[name]


def bench(capsys, *argv: str) -> str:
    code = main(list(argv))
    out = capsys.readouterr()
    assert code == 0, f"bench {' '.join(argv)} exited {code}: {out.err[-3000:]}"
    return out.out


def reported(method: str, table: str = "forensynths") -> dict[str, tuple[float, float]]:
    """The paper's printed (ACC, AP) per generator, read from the package's CSV directly."""
    path = REPO / "bench" / "outputs" / "reported" / "lfm_bmvc2025.csv"
    with path.open(newline="", encoding="utf-8") as f:
        return {row["generator"]: (float(row["acc"]), float(row["ap"])) for row in csv.DictReader(f)
                if row["table"] == table and row["method"] == method}


def markdown_rows(text: str) -> dict[str, list[str]]:
    rows = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("| Method"):
            cells = [c.strip().replace("**", "") for c in line.strip().strip("|").split(" | ")]
            rows[cells[0].strip("*")] = cells[1:]
    return rows


def hand_gradcam(model: torch.nn.Module, layer: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    """Grad-CAM by its definition (Selvaraju et al.): the layer's channels weighted by the spatial mean of
    the explained score's gradient, summed, ReLU, then min-max scaled; the score is the logit for an image
    called fake and minus the logit for one called real. The scaling is pytorch-grad-cam's: `x - min` over
    `1e-7 + max`, once per layer and once after averaging the layers (twice for one layer), which moves
    a map whose raw maximum is near 1e-7 or below, as a small model's can be."""
    kept = {}
    handle = layer.register_forward_hook(lambda module, inputs, output: kept.update(a=output))
    logit = model(x)[0]
    handle.remove()
    score = logit if logit > 0 else -logit
    (grads,) = torch.autograd.grad(score, kept["a"])
    cam = torch.relu((grads.mean(dim=(2, 3), keepdim=True) * kept["a"]).sum(dim=1))[0].detach().numpy()
    for _ in range(2):
        cam = cam - cam.min()
        cam = cam / (1e-7 + cam.max())
    return cam


def test_the_page_shows_the_example_files_as_they_are():
    """docs/adding-a-detector.md quotes the example's files whole; the quotes may not drift from them."""
    import re

    page = (REPO / "docs" / "adding-a-detector.md").read_text(encoding="utf-8")
    quoted = dict(re.findall(r"<!-- (examples/\S+) -->\n```\w*\n(.*?)```", page, flags=re.S))
    assert set(quoted) == {"examples/my_detector/pyproject.toml", "examples/my_detector/my_detector/model.py",
                           "examples/my_detector/my_detector/detector.py"}
    for path, text in quoted.items():
        assert text == (REPO / path).read_text(encoding="utf-8"), f"docs/adding-a-detector.md quotes an old {path}"


@pytest.mark.slow
def test_the_example_detector_trains_evaluates_compares_and_explains(installed, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BENCH_RESULTS", str(tmp_path / "results"))
    data = tmp_path / "datasets"
    write_images(data / "blocks" / "train", 16, seed=1)
    write_images(data / "blocks" / "val", 4, seed=2)  # a folder named train validates on its sibling val
    forensynths = data / "Generalization_Test" / "ForenSynths_test"  # where bench looks for Test Set 1
    for i, generator in enumerate(FORENSYNTHS):
        write_images(forensynths / generator, 2, seed=10 + i)

    # a fresh interpreter finds the detector through the entry point, as after `pip install`
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(installed), str(REPO)])}
    listed = subprocess.run([sys.executable, "-m", "bench", "list", "detectors"], env=env, capture_output=True,
                            text=True, timeout=300)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert any(line.split()[:3] == ["tiny-npr", "Tiny", "NPR"] for line in listed.stdout.splitlines())

    # train: the detector's own learning rate; no crop, so that the 2x2 blocks stay aligned
    checkpoint_dir = tmp_path / "runs" / "tiny-npr"
    bench(capsys, "train", "--detector", "tiny-npr", "--train-set", str(data / "blocks" / "train"), "--epochs", "3",
          "--batch-size", "4", "--crop", "none", "--workers", "0", "--output", str(checkpoint_dir), "-q")
    config = json.loads((checkpoint_dir / "config.json").read_text())
    assert config["lr"] == 1e-2  # Detector.train_lr, declared by the example
    with (checkpoint_dir / "log.csv").open(newline="") as f:
        losses = [float(row["train_loss"]) for row in csv.DictReader(f)]
    assert len(losses) == 3 and losses[-1] < losses[0] - 0.05, losses
    weights = checkpoint_dir / "last.pth"
    state = torch.load(weights, map_location="cpu", weights_only=True)
    assert sorted(state) == ["conv.bias", "conv.weight", "head.bias", "head.weight"]  # a raw state dict

    # evaluate on the stand-in Test Set 1, with the checkpoint loaded strictly
    out = bench(capsys, "run", "--detector", "tiny-npr", "--weights", str(weights), "--suite", "forensynths",
                "--data-root", str(data), "--json", "-q")
    metrics = json.loads(out)["tiny-npr"]
    run_json = next((tmp_path / "results" / "runs").glob("*/run.json"))
    info = json.loads(run_json.read_text())
    assert json.loads((run_json.parent / "metrics.json").read_text()) == metrics
    assert info["detector"] == "tiny-npr" and info["reported_method"] == "NPR"
    assert info["weights"]["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert info["preprocessing"]["mean"] == list(IMAGENET_MEAN) and info["protocol"] == {"forensynths": "resize256"}
    generators = metrics["suites"]["forensynths"]["generators"]
    assert list(generators) == FORENSYNTHS
    assert metrics["mean"]["acc"] > 0.9 and metrics["mean"]["ap"] > 0.9, metrics["mean"]

    # the reproduced row beside the paper's NPR row, with reproduced-minus-reported deltas
    table = bench(capsys, "table", "--suite", "forensynths", "--compare", "--results", str(tmp_path / "results"))
    rows = markdown_rows(table)
    mine = next(label for label in rows if label.startswith("Tiny NPR"))
    labels = list(rows)
    assert labels[labels.index(mine) + 1] == "Δ vs NPR [11]"
    paper = reported("NPR")
    assert rows["NPR [11]"][:2] == [f"{paper['progan'][0]:.1f}", f"{paper['progan'][1]:.1f}"]  # paper row kept
    deltas = [float(cell) for cell in rows["Δ vs NPR [11]"]]
    expected = []
    for generator in FORENSYNTHS:
        for i, metric in enumerate(("acc", "ap")):
            expected.append(100 * generators[generator][metric] - paper[generator][i])
    expected += [100 * metrics["suites"]["forensynths"]["mean"][m] - paper["mean"][i] for i, m in enumerate(("acc", "ap"))]
    assert np.allclose(deltas, expected, atol=0.1 + 1e-9), (deltas, expected)  # cells are rounded to 0.1

    # explain: a Grad-CAM map on the declared layer, for the image as scoring decodes it
    image = forensynths / "progan" / "0_real" / "000.png"  # a fake's residual is zero: its map is flat
    out = bench(capsys, "explain", "--detector", "tiny-npr", "--weights", str(weights), str(image),
                "--output", str(tmp_path / "explain"), "--json", "-q")
    record = json.loads(out)["images"][0]
    maps = np.load(tmp_path / "explain" / record["folder"] / "tiny-npr.npy")
    assert maps.shape == (256, 256) and maps.dtype == np.float32 and maps.std() > 0.05
    from my_detector import TinyNPR

    model = TinyNPR()
    model.load_state_dict(state)
    model.eval()
    pixels = np.asarray(Image.open(image).convert("RGB").resize((256, 256), Image.BILINEAR), dtype=np.float32) / 255
    x = ((torch.from_numpy(pixels).permute(2, 0, 1) - torch.tensor(IMAGENET_MEAN).view(3, 1, 1))
         / torch.tensor(IMAGENET_STD).view(3, 1, 1)).unsqueeze(0)
    with torch.no_grad():
        assert record["detectors"]["tiny-npr"]["logit"] == pytest.approx(float(model(x)[0]), abs=1e-4)
    assert np.abs(maps - hand_gradcam(model, model.conv, x)).max() < 1e-3
