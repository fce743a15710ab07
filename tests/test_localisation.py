"""Localisation metrics against hand computations, and end to end on a small suite with masks where the
right answer is known (a map that is the forged region, and one that is its complement)."""

from __future__ import annotations

import math
from itertools import product
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from bench.engine import localisation
from bench.engine.suites import suite_for_path
from detectors import Detector, LoadedDetector, Preprocessing, get_detector


def hand_auc(scores: np.ndarray, truth: np.ndarray) -> float:
    """Mann-Whitney: P(score of a forged pixel > score of a clean one) + half the ties."""
    positives, negatives = scores[truth], scores[~truth]
    wins = sum((p > n) + 0.5 * (p == n) for p, n in product(positives, negatives))
    return wins / (len(positives) * len(negatives))


def test_pixel_auc_and_iou_match_hand_computations():
    rng = np.random.default_rng(0)
    heat = rng.random((6, 7)).round(1)  # rounded: ties
    mask = rng.random((6, 7)) < 0.3
    assert localisation.pixel_auc(heat, mask) == pytest.approx(hand_auc(heat.ravel(), mask.ravel()))
    predicted = heat >= 0.5
    assert localisation.iou(heat, mask) == pytest.approx((predicted & mask).sum() / (predicted | mask).sum())
    assert math.isnan(localisation.pixel_auc(heat, np.zeros_like(mask)))
    assert math.isnan(localisation.iou(np.zeros((3, 3)), np.zeros((3, 3), dtype=bool)))


def test_summaries_leave_undefined_values_out():
    rows = [{"pixel_auc": 1.0, "iou": 0.5, "energy": 0.2, "pointing": 1.0},
            {"pixel_auc": math.nan, "iou": 0.0, "energy": 0.4, "pointing": 0.0}]
    summary = localisation.summarise(rows)
    assert summary == {"n_masks": 2, "pixel_auc": 1.0, "iou": 0.25, "energy": pytest.approx(0.3), "pointing": 0.5}
    mean = localisation.mean_over_generators({"a": summary, "b": {**summary, "iou": None, "n_masks": 1}})
    assert mean["n_masks"] == 3 and mean["iou"] == 0.25 and mean["pointing"] == 0.5


class Brightness(nn.Module):
    """A 'detector' whose map is the brightness of the image (or its complement)."""

    def __init__(self, invert: bool) -> None:
        super().__init__()
        self.invert = invert
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x):
        return x.mean(dim=(1, 2, 3)) * self.scale

    def interpret(self, x):
        heat = (x.mean(dim=1) > 0).float()
        return 1 - heat if self.invert else heat


def loaded(invert: bool) -> LoadedDetector:
    detector = Detector(name="brightness", display_name="b", build_model=lambda: Brightness(invert),
                        weights_family="b",  # nearest: the image resized as its mask is, so the right map is exact
                        preprocessing=Preprocessing(mean=(0.5,) * 3, std=(0.5,) * 3, interpolation="nearest"),
                        interpretation="interpret")
    return LoadedDetector(detector, Brightness(invert), weights=None)


@pytest.fixture
def suite_root(tmp_path) -> Path:
    """White forged regions on dark images, with their masks; one generator without masks."""
    rng = np.random.default_rng(1)
    root = tmp_path / "masked"
    for generator, with_masks in (("local", True), ("plain", False)):
        for i in range(3):
            truth = np.zeros((40, 60), dtype=bool)
            top, left = rng.integers(0, 20, size=2)
            truth[top:top + 12, left:left + 20] = True
            image = np.full((40, 60, 3), 30, dtype=np.uint8)
            image[truth] = 230
            for label in ("0_real", "1_fake"):
                (root / generator / label).mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((40, 60, 3), 30, dtype=np.uint8)).save(root / generator / "0_real" / f"{i}.png")
            Image.fromarray(image).save(root / generator / "1_fake" / f"{i}.png")
            if with_masks:
                (root / generator / "1_fake_masks").mkdir(exist_ok=True)
                Image.fromarray(truth.astype(np.uint8) * 255).save(root / generator / "1_fake_masks" / f"{i}.png")
    return root


def test_a_map_that_is_the_region_scores_perfectly_and_its_complement_scores_nothing(suite_root):
    suite = suite_for_path(suite_root)  # an ad-hoc folder: resized to 256x256, the mask with it
    right = localisation.localise_suite(loaded(False), suite_root, suite, progress=False)
    assert list(right["generators"]) == ["local"]  # the generator without masks has no localisation
    assert right["generators"]["local"]["n_masks"] == 3
    for name in localisation.LOCALISATION_METRICS:
        assert right["mean"][name] == pytest.approx(1.0), name
    wrong = localisation.localise_suite(loaded(True), suite_root, suite, progress=False)
    assert wrong["mean"]["pixel_auc"] == pytest.approx(0.0) and wrong["mean"]["iou"] == 0.0
    assert wrong["mean"]["energy"] == 0.0 and wrong["mean"]["pointing"] == 0.0
    assert right["source"].startswith("interpretation")


def test_no_masks_no_localisation(suite_root):
    assert localisation.localise_suite(loaded(False), suite_root / "plain", suite_for_path(suite_root / "plain"),
                                       progress=False) is None


@pytest.mark.slow  # imports pytorch-grad-cam (cv2, scipy, matplotlib): seconds
def test_lae_uses_its_own_map_and_others_grad_cam(suite_root):
    lae = get_detector("lae")
    maker = localisation.MapMaker(LoadedDetector(lae, lae.build(), weights=None))
    heat = maker(torch.zeros(3, 64, 48, dtype=torch.uint8))
    assert maker.source.startswith("interpretation") and heat.shape == (64, 48) and 0 <= heat.min() <= heat.max() <= 1
    npr = get_detector("npr")
    torch.manual_seed(0)
    maker = localisation.MapMaker(LoadedDetector(npr, npr.build(), weights=None))
    heat = maker(torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8))
    assert maker.source.startswith("Grad-CAM") and heat.shape == (64, 64)


def test_bench_run_stores_and_shows_localisation_for_suites_with_masks(suite_root, tmp_path, capsys):
    """A random-weight LAE: the protocol test needs a fixed model; the numbers are whatever it gives,
    checked against the same maps computed here directly."""
    import json

    from bench.cli import main
    from detectors import export_state_dict

    torch.manual_seed(0)
    detector = get_detector("lae")
    model = detector.build()
    weights = tmp_path / "lae.pth"
    torch.save(export_state_dict(model, detector), weights)
    args = ["run", "--detector", "lae", "--weights", str(weights), "--suite", str(suite_root),
            "--output", str(tmp_path / "results"), "--workers", "0"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "localisation against the forgery masks (interpretation (interpret))" in out and "pixAUC" in out
    metrics_file = next((tmp_path / "results").rglob("metrics.json"))
    stored = json.loads(metrics_file.read_text())["localisation"]["masked"]
    assert list(stored["generators"]) == ["local"] and stored["generators"]["local"]["n_masks"] == 3
    direct = localisation.localise_suite(LoadedDetector(detector, model.eval(), weights=None), suite_root,
                                         suite_for_path(suite_root), progress=False)
    for name in localisation.LOCALISATION_METRICS:
        assert stored["mean"][name] == pytest.approx(direct["mean"][name], abs=1e-6), name
    assert main([*args, "--no-localisation"]) == 0
    assert "localisation" not in capsys.readouterr().out


@pytest.mark.slow
def test_bench_check_guards_localisation(suite_root, tmp_path, capsys):
    import json

    from bench.cli import main
    from detectors import export_state_dict

    torch.manual_seed(0)
    detector = get_detector("lae")
    torch.save(export_state_dict(detector.build(), detector), tmp_path / "lae.pth")
    baseline = tmp_path / "lae_masked.json"
    baseline.write_text(json.dumps({"kind": "metrics", "detector": "lae", "weights": {"path": "lae.pth"},
                                    "suite": str(suite_root), "metrics": ["acc"], "localisation": ["pixel_auc", "iou"],
                                    "tolerance": 0.1}))
    assert main(["check", "--baseline", str(baseline), "--update"]) == 0
    written = json.loads(baseline.read_text())
    assert set(written["expected_localisation"]["masked"]) == {"local", "mean"}
    assert main(["check", "--baseline", str(baseline)]) == 0
    written["expected_localisation"]["masked"]["local"]["iou"] += 0.01  # one point off
    baseline.write_text(json.dumps(written))
    capsys.readouterr()
    assert main(["check", "--baseline", str(baseline)]) == 1
    assert "local (localisation)" in capsys.readouterr().out
