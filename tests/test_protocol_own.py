"""`--protocol own` for the new detectors: SAFE scored through the one evaluation path under its own
CenterCrop(256) equals the model on hand-cropped images, the protocol is in run.json and in the cache key,
and tables mark own-protocol rows apart in their labels and notes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from test_tables import markdown_rows, write_run

from bench import api
from bench.cli import main
from detectors import get_detector
from detectors.safe import SAFENet


def _suite(root, n=1, size=(300, 280)):
    rng = np.random.default_rng(0)
    for label in ("0_real", "1_fake"):
        (root / label).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(root / label / f"{i}.png")
    return root


@pytest.mark.slow
def test_safe_own_protocol_through_the_one_evaluation_path(tmp_path):
    torch.manual_seed(0)
    model = SAFENet().eval()
    weights = tmp_path / "safe.pth"
    torch.save({"model": model.state_dict(), "epoch": "best"}, weights)
    suite = _suite(tmp_path / "suite")
    options = dict(weights=str(weights), output=str(tmp_path / "results"), workers=0, batch_size=4, device="cpu")
    own = api.evaluate("safe", str(suite), protocol="own", **options)["safe"]
    assert own.info["protocol_choice"] == "own"
    decode = json.loads((own.folder / "run.json").read_text())["decode"]
    assert (decode[next(iter(decode))]["resize"], decode[next(iter(decode))]["center_crop"]) == (None, 256)
    # by hand: CenterCrop(256) of each file, ToTensor, the model (SAFE's eval transform and forward)
    expected = {}
    for path in sorted(suite.rglob("*.png")):
        pixels = np.asarray(Image.open(path).convert("RGB"))
        top, left = round((300 - 256) / 2), round((280 - 256) / 2)
        crop = torch.from_numpy(pixels[top:top + 256, left:left + 256].copy()).permute(2, 0, 1).float() / 255
        with torch.no_grad():
            expected[path.relative_to(suite).as_posix()] = float(model(crop[None])[0])
    got = dict(zip(own.scores["path"], own.scores["logit"], strict=True))
    assert set(got) == set(expected)
    for path, logit in expected.items():
        assert abs(got[path] - logit) < 1e-4, path
    # the paper's protocol (Resize((256, 256))) is another unit of work: recomputed, not read from the cache
    paper = api.evaluate("safe", str(suite), protocol="paper", **options)["safe"]
    assert paper.info["protocol_choice"] == "paper"
    assert not np.allclose(sorted(paper.scores["logit"]), sorted(own.scores["logit"]))


def test_own_protocol_falls_back_to_the_papers_for_detectors_without_one():
    from bench.engine.decode import DecodeSpec

    npr = get_detector("npr").preprocessing
    assert DecodeSpec.for_detector(256, npr, own_protocol=True) == DecodeSpec.for_detector(256, npr)
    vit = get_detector("timm:test_vit").preprocessing
    assert DecodeSpec.for_detector(256, vit, own_protocol=True).center_crop == 160


def test_tables_keep_own_protocol_rows_apart_and_say_so(tmp_path, capsys):
    root = tmp_path / "results"
    suites = ("progan", "stylegan", "stylegan2", "biggan", "cyclegan", "stargan", "gaugan", "deepfake")
    for run_id, acc, protocol in (("20261122-010000-univfd", 0.8, "paper"), ("20261122-020000-univfd", 0.6, "own")):
        folder = write_run(root, run_id, {"forensynths": {g: (acc, 0.9) for g in suites}}, detector="univfd",
                           display_name="UnivFD", weights="univfd:official", sha256="ab" * 32,
                           finished_at=f"2026-11-22T0{1 if protocol == 'paper' else 2}:00:00+00:00")
        info = json.loads((folder / "run.json").read_text())
        info["protocol_choice"] = protocol
        (folder / "run.json").write_text(json.dumps(info))
    assert main(["table", "--suite", "forensynths", "--compare", "--results", str(root)]) == 0
    out = capsys.readouterr().out
    rows = markdown_rows(out)
    assert rows["UnivFD (official weights, reproduced)"][0] == "80.0"
    assert rows["UnivFD (official weights, reproduced, own protocol)"][0] == "60.0"
    assert "rows marked 'own protocol'" in out


# CNNDetection's data/datasets.py (github.com/PeterWang512/CNNDetection): transforms.Normalize(mean=[0.485,
# 0.456, 0.406], std=[0.229, 0.224, 0.225]), after CenterCrop(224) with no resize under eval.py
CNNDETECTION_OFFICIAL_MEAN = [0.485, 0.456, 0.406]
CNNDETECTION_OFFICIAL_STD = [0.229, 0.224, 0.225]


@pytest.mark.slow
def test_cnndetection_own_protocol_is_eval_py_center_crop_without_resize(tmp_path):
    """eval.py sets no_resize, so a test image is CenterCrop(224) of the file as it is. The expected logits
    come from torchvision's own CenterCrop on the PIL image and its ToTensor + Normalize with the official
    constants; the sizes have odd differences to 224 (77 and 7: offsets round(38.5) = 38, round(3.5) = 4), and
    the old Resize((256, 256)) path gives other logits on these non-square images."""
    from torchvision import transforms

    from detectors.cnndetection import CNNDetectionNet

    torch.manual_seed(0)
    model = CNNDetectionNet().eval()
    weights = tmp_path / "cnndetection.pth"
    torch.save({"model": model.net.state_dict()}, weights)  # the official layout: torchvision keys under 'model'
    suite = _suite(tmp_path / "suite", size=(231, 301))  # numpy (H, W): a 301 x 231 image
    options = dict(weights=str(weights), output=str(tmp_path / "results"), workers=0, batch_size=4, device="cpu",
                   progress=False)
    own = api.evaluate("cnndetection", str(suite), protocol="own", **options)["cnndetection"]
    official = transforms.Compose([transforms.CenterCrop(224), transforms.ToTensor(),
                                   transforms.Normalize(CNNDETECTION_OFFICIAL_MEAN, CNNDETECTION_OFFICIAL_STD)])
    old = transforms.Compose([transforms.Resize((256, 256)), transforms.ToTensor(),
                              transforms.Normalize(CNNDETECTION_OFFICIAL_MEAN, CNNDETECTION_OFFICIAL_STD)])
    expected, resized = {}, {}
    for path in sorted(suite.rglob("*.png")):
        image = Image.open(path).convert("RGB")
        with torch.no_grad():
            expected[path.relative_to(suite).as_posix()] = float(model(official(image)[None])[0])
            resized[path.relative_to(suite).as_posix()] = float(model(old(image)[None])[0])
    got = dict(zip(own.scores["path"], own.scores["logit"], strict=True))
    assert set(got) == set(expected)
    for path, logit in expected.items():
        assert abs(got[path] - logit) < 1e-4, (path, got[path], logit)
        assert abs(resized[path] - logit) > 1e-2, path  # the old path would fail the line above
