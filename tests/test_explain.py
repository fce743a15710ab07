"""Grad-CAM and feature-hook declarations: every registered detector's layers exist and work; maps land
where a model looks; features are exactly what the head reads; localisation numbers match hand values."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from bench.analyses.explain import explain_images, localisation_summary, true_label
from bench.engine.cam import CAM_METHODS, class_activation_maps
from bench.engine.inference import prepare_scorer
from bench.engine.map_metrics import energy_in_mask, pointing_hit
from detectors import Detector, LoadedDetector, ResolvedWeights, get_detector, list_detectors
from detectors.layers import FeatureTap, cam_target, feature_module, get_layer, logits_and_features

# non-square, so that a transposed map cannot pass; just large enough for LFM's Top-K with K=64 (7 x 10 maps)
HEIGHT, WIDTH = 72, 96


def _head(model: nn.Module, dim: int) -> nn.Linear:
    """The linear layer that reads a D-dim vector: the detector's head."""
    heads = [m for m in model.modules() if isinstance(m, nn.Linear) and m.in_features == dim]
    assert heads, f"no nn.Linear reads {dim} features in {type(model).__name__}"
    return heads[-1]


def _input(detector: Detector, batch: int, seed: int) -> torch.Tensor:
    size = detector.preprocessing.input_size
    height, width = (size, size) if size else (HEIGHT, WIDTH)
    return torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))


def _built(name: str) -> tuple[Detector, nn.Module]:
    torch.manual_seed(0)
    detector = get_detector(name)
    # randomly initialised: these tests check wiring (names, shapes, hooks), not what a trained model says
    return detector, detector.build()


WITHOUT_A_LEARNED_HEAD = {"lae"}
"""Detectors whose decision is no learned layer over a pooled vector (LAE: the mean of its latent's fake
half minus its real half, per pixel), so no feature layer feeds a head; every other detector declares one."""


def with_feature_layer() -> list[str]:
    return [n for n in list_detectors() if n not in WITHOUT_A_LEARNED_HEAD]


def test_only_the_listed_detectors_lack_a_feature_layer():
    lacking = {n for n in list_detectors() if not get_detector(n).feature_layer}
    assert lacking == WITHOUT_A_LEARNED_HEAD


@pytest.mark.slow
@pytest.mark.parametrize("name", list_detectors())
def test_every_detector_declares_a_cam_layer_that_gives_a_full_size_varying_map(name):
    detector, model = _built(name)
    assert detector.cam_target_layer, f"{name} declares no Grad-CAM layer"
    layer = cam_target(detector, model)
    x = _input(detector, 1, seed=1)
    result = class_activation_maps(model, layer, x, method="gradcam")
    assert result.maps.shape == (1, *x.shape[-2:])
    spread = result.maps.std()
    if spread == 0:
        # random weights can give a map that is negative everywhere for the predicted class, which
        # Grad-CAM's ReLU flattens to zero; then the other class's map is its mirror and must vary
        other = "fake" if result.explained[0] == 0 else "real"
        spread = class_activation_maps(model, layer, x, method="gradcam", target=other).maps.std()
    assert spread > 1e-3, f"{name}: flat Grad-CAM map for both classes"
    with torch.no_grad():
        assert result.logits[0] == pytest.approx(float(model(x)[0]), abs=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("name", with_feature_layer())
def test_every_detector_feature_hook_is_what_its_head_reads(name):
    detector, model = _built(name)
    x = _input(detector, 2, seed=2)
    with torch.no_grad(), FeatureTap(feature_module(detector, model)) as tap:
        logits = model(x)
    features = tap.features
    assert features.dim() == 2 and features.shape[0] == 2, f"{name}: {tuple(features.shape)}"
    with torch.no_grad():
        out = _head(model, features.shape[1])(features)
    # a two-class head (SAFE) gives the binary logit as fake minus real, the softmax's log-odds
    again = out[:, 1] - out[:, 0] if out.shape[1] == 2 else out.squeeze(1)
    torch.testing.assert_close(again, logits, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["lfm", "npr"])
def test_logits_and_features_on_the_fast_path_split_and_join_batches(name):
    """The scoring path scores CPU batches two images at a time: 5 images = 3 forward passes, all kept;
    each row is the image's logit, then the vector the head read in that pass."""
    detector, model = _built(name)
    pixels = torch.randint(0, 256, (5, 3, 48, 48), dtype=torch.uint8)  # the smallest LFM takes (K=16)
    scorer = prepare_scorer(model, detector.preprocessing, "cpu")
    both = logits_and_features(detector, scorer, scorer.model)
    with torch.inference_mode():
        fast = both(pixels)
        with FeatureTap(feature_module(detector, model)) as tap:
            plain_logits = model(detector.preprocessing.normalize(pixels)).reshape(-1)
    assert fast.shape == (5, 1 + tap.features.shape[1])
    torch.testing.assert_close(fast[:, 1:], tap.features, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(fast[:, 0], plain_logits, rtol=1e-4, atol=1e-4)


def test_unknown_layer_names_close_matches():
    from bench.errors import BenchError

    model = get_detector("lfm").build()
    with pytest.raises(BenchError, match="no module 'reduc'.*Did you mean: reduce"):
        get_layer(model, "reduc")


class QuadrantGate(nn.Module):
    """Zeroes every activation outside one quadrant: the model cannot see the rest of the image."""

    def __init__(self, quadrant: tuple[int, int]) -> None:
        super().__init__()
        self.quadrant = quadrant

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        gate = torch.zeros(h, w, dtype=x.dtype, device=x.device)
        row, col = self.quadrant
        gate[row * h // 2:(row + 1) * h // 2, col * w // 2:(col + 1) * w // 2] = 1
        return x * gate


class QuadrantNet(nn.Module):
    """A tiny detector whose logit depends only on one quadrant of the image."""

    def __init__(self, quadrant: tuple[int, int]) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.conv = nn.Conv2d(3, 8, kernel_size=3, padding=1)
        self.relu = nn.ReLU()
        self.gate = QuadrantGate(quadrant)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(8, 1)
        with torch.no_grad():  # positive weights: the evidence for "fake" is the activations themselves
            self.head.weight.uniform_(0.5, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.gate(self.relu(self.conv(x)))).flatten(1)).squeeze(1)


def _quadrant_share(cam_map: np.ndarray, quadrant: tuple[int, int]) -> float:
    h, w = cam_map.shape
    row, col = quadrant
    inside = cam_map[row * h // 2:(row + 1) * h // 2, col * w // 2:(col + 1) * w // 2]
    return float(inside.sum() / cam_map.sum())


@pytest.mark.parametrize("quadrant", [(0, 0), (0, 1), (1, 0), (1, 1)])
@pytest.mark.parametrize("method", CAM_METHODS)
def test_a_model_that_looks_at_one_quadrant_gets_its_map_energy_there(quadrant, method):
    model = QuadrantNet(quadrant).eval()
    x = torch.randn(1, 3, 48, 64, generator=torch.Generator().manual_seed(4))
    result = class_activation_maps(model, model.gate, x, method=method, target="fake")
    share = _quadrant_share(result.maps[0], quadrant)
    assert share > 0.9, f"{method}: only {share:.2f} of the map in quadrant {quadrant}"


def _write_png(path, pixels):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def test_a_newly_registered_detector_gets_maps_and_mask_numbers_by_declaring_names(tmp_path):
    """The whole explain path (decode as scoring does, normalise, map, mask) on a Detector that only
    declares its layer names; the mask covers the quadrant the model looks at."""
    detector = Detector(name="quadrant", display_name="Quadrant", build_model=lambda: QuadrantNet((1, 0)),
                        weights_family="quadrant", cam_target_layer="gate", feature_layer="pool")
    weights = tmp_path / "w.pth"
    torch.save(detector.build().state_dict(), weights)
    loaded = LoadedDetector(detector, detector.build(), ResolvedWeights(None, weights, hashlib.sha256(b"").hexdigest()))
    rng = np.random.default_rng(5)
    image = _write_png(tmp_path / "gen" / "1_fake" / "a.png", rng.integers(0, 256, (61, 83, 3), dtype=np.uint8))
    mask = np.zeros((61, 83), dtype=np.uint8)
    mask[30:, :41] = 255  # bottom-left, in the file's own size: the decode must carry it through the resize
    _write_png(tmp_path / "gen" / "1_fake_masks" / "a.png", mask)
    real = _write_png(tmp_path / "gen" / "0_real" / "b.png", rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
    explanations = list(explain_images([loaded], [image, real], resize=64, target="fake"))
    fake_map = explanations[0].maps["quadrant"]
    assert explanations[0].truth == 1 and explanations[1].truth == 0
    assert fake_map.cam.shape == (64, 64) and fake_map.pixels.shape == (64, 64, 3)
    assert fake_map.mask is not None and explanations[1].maps["quadrant"].mask is None
    assert fake_map.energy > 0.9 and fake_map.hit
    summary = localisation_summary(explanations, ["quadrant"])["quadrant"]
    assert summary["n_masks"] == 1 and summary["pointing_game"] == 1.0
    assert summary["mask_area"] == pytest.approx(0.25, abs=0.02)


def test_localisation_numbers_by_hand():
    cam_map = np.array([[0.0, 1.0, 0.5], [0.25, 0.25, 0.0]], dtype=np.float32)
    mask = np.array([[False, False, True], [True, True, False]])
    assert energy_in_mask(cam_map, mask) == pytest.approx((0.5 + 0.25 + 0.25) / 2.0)
    assert pointing_hit(cam_map, mask) is False  # the peak (1.0) is outside
    assert pointing_hit(cam_map, ~mask) is True
    assert np.isnan(energy_in_mask(np.zeros((2, 3)), mask))
    with pytest.raises(ValueError, match="differ in size"):
        energy_in_mask(cam_map, mask[:, :2])


def test_true_label_from_the_innermost_label_folder(tmp_path):
    assert true_label(tmp_path / "0_real" / "x" / "1_fake" / "a.png") == 1
    assert true_label(tmp_path / "gen" / "0_real" / "a.png") == 0
    assert true_label(tmp_path / "a.png") is None


@pytest.mark.slow
def test_explain_command_writes_overlays_maps_panel_and_json(tmp_path, capsys):
    from bench.cli import main

    rng = np.random.default_rng(6)
    fake = _write_png(tmp_path / "in" / "1_fake" / "f.png", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[:32, :32] = 255
    _write_png(tmp_path / "in" / "1_fake_masks" / "f.png", mask)
    _write_png(tmp_path / "in" / "0_real" / "r.png", rng.integers(0, 256, (64, 66, 3), dtype=np.uint8))
    (tmp_path / "in" / "0_real" / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    code = main(["explain", "--detector", "lfm,npr", "--weights", "demo", "--protocol", "native",
                 str(tmp_path / "in" / "0_real"), str(fake), "--output", str(out), "--json"])
    assert code == 0
    document = json.loads(capsys.readouterr().out)
    assert document == json.loads((out / "explain.json").read_text())
    by_name = {Path(r["path"]).name: r for r in document["images"]}
    assert set(by_name) == {"f.png", "r.png", "broken.png"}
    assert by_name["broken.png"]["detectors"] == {} and "lfm" in by_name["broken.png"]["skipped"]
    for image, size in (("f.png", (64, 64)), ("r.png", (64, 66))):
        record = by_name[image]
        for name in ("lfm", "npr"):
            entry = record["detectors"][name]
            assert np.load(out / entry["map"]).shape == size
            assert Image.open(out / entry["overlay"]).size == (size[1], size[0])
        assert Image.open(out / record["panel"]).size[0] > 3 * size[1]
    assert by_name["f.png"]["truth"] == 1 and by_name["r.png"]["truth"] == 0
    localisation = document["localisation"]
    assert localisation["lfm"]["n_masks"] == 1 and localisation["npr"]["n_masks"] == 1
    assert localisation["lfm"]["mask_area"] == pytest.approx(0.25)
    expected_energy = float(np.load(out / by_name["f.png"]["detectors"]["lfm"]["map"])[:32, :32].sum()
                            / np.load(out / by_name["f.png"]["detectors"]["lfm"]["map"]).sum())
    assert localisation["lfm"]["energy_in_mask"] == pytest.approx(expected_energy, rel=1e-5)


def test_explain_command_rejects_mismatched_weights_list(tmp_path, capsys):
    from bench.cli import main

    _write_png(tmp_path / "a.png", np.zeros((8, 8, 3), dtype=np.uint8))
    code = main(["explain", "--detector", "lfm,npr", "--weights", "demo,demo,demo", str(tmp_path / "a.png"),
                 "--output", str(tmp_path / "out")])
    assert code == 2
    assert "--weights demo,demo,demo: 3 entries for 2 detectors" in capsys.readouterr().err
