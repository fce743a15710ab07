"""LAE: the model's decision and map, the loss terms against hand formulas, the interpretation
regulariser's gradient, and mask selection (random, active) in `bench train`."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from bench.errors import BenchError
from bench.train import TrainConfig, TrainImages, train
from bench.train import masks as mask_selection
from detectors import Preprocessing, get_detector
from lae import LAE, LAEConfig, interpretation_loss, lae_loss, mask_targets
from lae.model import npr_residual

REPO = Path(__file__).resolve().parents[1]


def test_lae_package_does_not_import_the_harness():
    code = "import sys, lae; sys.exit(any(m == 'bench' or m.startswith(('bench.', 'detectors')) for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def test_decision_is_the_mean_of_the_local_logits_and_the_map_is_their_sigmoid():
    torch.manual_seed(0)
    model = LAE(LAEConfig(channels=(8, 8, 8), latent_channels=4)).eval()
    x = torch.randn(2, 3, 64, 48)
    logit = model(x)
    latent = model.encoder(x - F.interpolate(x[..., ::2, ::2], scale_factor=2, mode="nearest"))  # the NPR residual
    real, fake = latent[:, :4], latent[:, 4:]
    local = fake.mean(1) - real.mean(1)
    assert logit.shape == (2,) and torch.allclose(logit, local.mean(dim=(1, 2)), atol=1e-6)
    heat = model.interpret(x)
    assert heat.shape == (2, 64, 48) and heat.min() >= 0 and heat.max() <= 1
    coarse = torch.sigmoid(local)  # one cell per 8x8 pixels: the up-sampled map averages back to it
    assert torch.allclose(F.avg_pool2d(heat[:, None], 8)[:, 0], coarse, atol=0.05)
    model.train()
    output = model(x)
    assert output.reconstruction.shape == x.shape and torch.equal(output.input, npr_residual(x))
    rgb = LAE(LAEConfig(channels=(8, 8, 8), latent_channels=4, input="rgb")).train()
    assert torch.equal(rgb(x).input, x)


def test_npr_residual_matches_interpolate_and_handles_odd_sizes():
    x = torch.randn(2, 3, 10, 14)
    expected = x - F.interpolate(x[..., ::2, ::2], scale_factor=2, mode="nearest")
    assert torch.equal(npr_residual(x), expected)
    odd = torch.randn(1, 3, 7, 9)
    residual = npr_residual(odd)
    assert residual.shape == odd.shape and torch.equal(residual[..., :6, :8], npr_residual(odd[..., :6, :8]))
    assert torch.equal(residual[..., 6, 0], odd[..., 6, 0] - odd[..., 6, 0])  # its own block's top-left


def test_registered_detector_declares_masks_and_its_map():
    detector = get_detector("lae")
    assert detector.uses_masks and detector.train_loss is not None and detector.interpretation == "interpret"
    model = detector.build()
    assert dict(model.named_modules()).get(detector.cam_target_layer) is not None
    assert model(torch.zeros(1, 3, 128, 128)).shape == (1,)


def test_loss_is_classification_plus_weighted_reconstruction_plus_interpretation():
    torch.manual_seed(1)
    config = LAEConfig(channels=(8, 8), latent_channels=4, reconstruction_weight=0.3, interpretation_weight=2.0)
    model = LAE(config).train()
    x = torch.randn(3, 3, 32, 32)
    target = torch.tensor([1.0, 0.0, 1.0])
    masks = torch.zeros(3, 32, 32, dtype=torch.bool)
    masks[0, :16, :8] = True
    has_mask = torch.tensor([True, False, False])
    output = model(x)
    p = torch.sigmoid(output.logit)
    bce = -(target * p.log() + (1 - target) * (1 - p).log()).mean()
    recon = (output.reconstruction - npr_residual(x)).abs().mean()
    cell_target = torch.zeros(8, 8)
    cell_target[:4, :2] = 1.0
    q = torch.sigmoid(output.local[0])
    interp = -(cell_target * q.log() + (1 - cell_target) * (1 - q).log()).mean()
    expected = bce + 0.3 * recon + 2.0 * interp
    assert torch.allclose(lae_loss(output, target, config, masks, has_mask), expected, atol=1e-5)
    # no masks (--mask-selection none): no interpretation term at all
    assert torch.allclose(lae_loss(output, target, config), bce + 0.3 * recon, atol=1e-5)
    assert torch.allclose(lae_loss(output, target, config, masks, torch.zeros(3, dtype=torch.bool)),
                          bce + 0.3 * recon, atol=1e-5)


def test_regulariser_gradient_is_zero_where_map_and_mask_agree_and_points_to_the_mask_elsewhere():
    # a 16x16 image, 2x2 map cells of 8x8 pixels; targets per cell: 1, 0, 1, 1/4
    mask = torch.zeros(1, 16, 16, dtype=torch.bool)
    mask[0, :8, :8] = True
    mask[0, 8:, :8] = True
    mask[0, 8:12, 8:10] = True  # 8 of the cell's 64 pixels... plus 8 more below
    mask[0, 12:16, 8:10] = True
    target = mask_targets(mask, (2, 2))[0]
    assert target.tolist() == [[1.0, 0.0], [1.0, 0.25]]
    agree = torch.tensor([[30.0, -30.0], [-2.0, math.log(0.25 / 0.75)]])  # cell (1, 0) disagrees
    local = agree[None].clone().requires_grad_(True)
    interpretation_loss(local, mask, torch.tensor([True])).backward()
    grad = local.grad[0]
    hand = (torch.sigmoid(agree) - target) / 4  # d BCE / d logit, averaged over 4 cells
    assert torch.allclose(grad, hand, atol=1e-7)
    assert grad[0, 0].abs() < 1e-12 and grad[0, 1].abs() < 1e-12 and grad[1, 1].abs() < 1e-7
    assert grad[1, 0] < -0.1  # descent raises the map where the mask says forged
    # one descent step moves the disagreeing cell's map towards its mask, the others stay put
    with torch.no_grad():
        stepped = torch.sigmoid(agree - 10.0 * grad)
    before = (torch.sigmoid(agree) - target).abs()
    after = (stepped - target).abs()
    assert after[1, 0] < before[1, 0] - 0.05
    assert torch.allclose(after[[0, 0, 1], [0, 1, 1]], before[[0, 0, 1], [0, 1, 1]], atol=1e-6)
    # and where the map says forged but the mask does not, descent lowers it
    local = torch.tensor([[[3.0, 3.0], [3.0, 3.0]]], requires_grad=True)
    interpretation_loss(local, torch.zeros(1, 16, 16, dtype=torch.bool), torch.tensor([True])).backward()
    assert (local.grad > 0).all()


def test_regulariser_without_masks_contributes_nothing():
    local = torch.randn(4, 6, 6, requires_grad=True)
    loss = interpretation_loss(local, torch.ones(4, 48, 48, dtype=torch.bool), torch.zeros(4, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0 and torch.count_nonzero(local.grad) == 0
    # an image without a mask in a batch with one gets no gradient from the regulariser
    local = torch.randn(2, 6, 6, requires_grad=True)
    interpretation_loss(local, torch.ones(2, 48, 48, dtype=torch.bool), torch.tensor([True, False])).backward()
    assert torch.count_nonzero(local.grad[1]) == 0 and torch.count_nonzero(local.grad[0]) == 36


def test_budget_and_selection_rules():
    assert mask_selection.budget_count(0.03, 600, 300) == 18
    assert mask_selection.budget_count(0.03, 20, 10) == 1  # a positive budget gets at least one mask
    assert mask_selection.budget_count(0.0, 600, 300) == 0
    assert mask_selection.budget_count(1.0, 600, 300) == 300  # never more than the pool
    pool = list(range(100, 160))
    first = mask_selection.select_random(pool, 7, seed=3)
    assert len(first) == len(set(first)) == 7 and set(first) <= set(pool)
    assert first == mask_selection.select_random(list(reversed(pool)), 7, seed=3)
    assert first != mask_selection.select_random(pool, 7, seed=4)
    scores = {10: 0.9, 11: 0.2, 12: 0.2, 13: 0.05, 14: 0.6, 15: 0.2}
    assert mask_selection.select_active(scores, 3) == [11, 12, 13]  # lowest p(fake); ties to the lower index
    assert mask_selection.select_active(scores, 0) == []


def test_train_images_crop_and_flip_the_mask_with_the_image(tmp_path):
    rng = np.random.default_rng(0)
    items, masks = [], {}
    for i in range(4):
        truth = np.zeros((40, 50), dtype=bool)
        top, left = rng.integers(0, 20, size=2)
        truth[top:top + 15, left:left + 25] = True
        image = np.zeros((40, 50, 3), dtype=np.uint8)
        image[truth] = 255
        path = tmp_path / "1_fake" / f"{i}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(image).save(path)
        mask_file = tmp_path / "1_fake_masks" / f"{i}.png"
        mask_file.parent.mkdir(exist_ok=True)
        Image.fromarray(truth.astype(np.uint8) * 255).save(mask_file)
        items.append((path, 1))
        if i != 3:
            masks[i] = mask_file
    dataset = TrainImages(items, None, 24, True, seed=5, preprocessing=Preprocessing(), masks=masks)
    flipped = 0
    for epoch in range(3):
        for i in range(4):
            pixels, label, mask, has_mask = dataset[(epoch, i)]
            assert has_mask == (i != 3) and mask.shape == (24, 24) and label == 1.0
            if has_mask:
                assert torch.equal(mask, pixels[0] > 127)
                flipped += not torch.equal(mask, dataset.__class__(items, None, 24, False, 5, Preprocessing(),
                                                                   masks)[(epoch, i)][2])
            else:
                assert not mask.any()
    assert flipped > 0  # some samples were flipped, and their masks with them
    plain = TrainImages(items, None, 24, True, seed=5, preprocessing=Preprocessing())
    assert len(plain[(0, 0)]) == 2  # no masks asked for: the batches are as before


@pytest.fixture(scope="module")
def local_data(tmp_path_factory) -> Path:
    from bench.demo.local import ensure_local_data

    root = tmp_path_factory.mktemp("lae-data")
    ensure_local_data(root, quiet=True, counts={"demo-local-train": 10, "demo-local-val": 4, "demo-local": 2})
    return root


def tiny(local_data, output, **changes) -> TrainConfig:
    values = dict(detector="lae", train_set="demo-local-train", data_root=str(local_data), output=str(output),
                  epochs=2, batch_size=8, resize=None, crop=64, max_steps_per_epoch=1, workers=0, seed=0)
    return TrainConfig(**{**values, **changes})


@pytest.mark.slow
def test_active_learning_requests_exactly_the_budget_deterministically(local_data, tmp_path):
    records = []
    for name in ("a", "b"):
        train(tiny(local_data, tmp_path / name, mask_selection="active", mask_budget=0.1), progress=False)
        records.append(json.loads((tmp_path / name / "masks.json").read_text()))
    first, second = records
    assert first["n_granted"] == 2 and first["n_pool"] == 10 and first["n_train_images"] == 20
    assert first["requested_after_epoch"] == 1 and first["selection"] == "active"
    assert [r["image"] for r in first["granted"]] == [r["image"] for r in second["granted"]]
    assert all(r["image"].startswith("tconv/1_fake/") and r["mask"].startswith("tconv/1_fake_masks/")
               for r in first["granted"])
    # the granted ones are the least-fake-looking of the candidates the model scored
    granted = {r["index"]: r["p_fake"] for r in first["granted"]}
    others = [p for index, p in first["candidate_scores"].items() if int(index) not in granted]
    assert len(others) == 8 and max(granted.values()) <= min(others)
    state = torch.load(tmp_path / "a" / "state.pt", weights_only=False)
    assert sorted(granted) == state["masks"]


@pytest.mark.slow
def test_random_and_all_selection_and_refusals(local_data, tmp_path):
    train(tiny(local_data, tmp_path / "r", mask_selection="random", mask_budget=0.2, epochs=1), progress=False)
    record = json.loads((tmp_path / "r" / "masks.json").read_text())
    assert record["n_granted"] == 4 and record["requested_after_epoch"] is None
    train(tiny(local_data, tmp_path / "all", mask_selection="all", epochs=1), progress=False)
    assert json.loads((tmp_path / "all" / "masks.json").read_text())["n_granted"] == 10
    train(tiny(local_data, tmp_path / "none", epochs=1), progress=False)
    assert not (tmp_path / "none" / "masks.json").exists()
    with pytest.raises(BenchError, match="no mask-regularised loss"):
        train(tiny(local_data, tmp_path / "npr", detector="npr", mask_selection="random"), progress=False)
    plain = tmp_path / "plain"
    for split in ("train", "val"):
        for label in ("0_real", "1_fake"):
            for i in range(2):
                path = plain / split / "gen" / label / f"{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.full((64, 64, 3), 40 * i, dtype=np.uint8)).save(path)
    with pytest.raises(BenchError, match="has no forgery masks"):
        train(tiny(local_data, tmp_path / "plain-run", train_set=str(plain / "train"), mask_selection="all"),
              progress=False)


@pytest.mark.slow
def test_a_resumed_active_run_keeps_its_masks_and_ends_with_the_same_weights(local_data, tmp_path):
    full = tiny(local_data, tmp_path / "full", mask_selection="active", mask_budget=0.1, epochs=3)
    train(full, progress=False)

    class Interrupted(Exception):
        pass

    def stop_after_second(record):
        if record["epoch"] == 2:
            raise Interrupted

    cut = tiny(local_data, tmp_path / "cut", mask_selection="active", mask_budget=0.1, epochs=3)
    with pytest.raises(Interrupted):
        train(cut, progress=False, on_epoch_end=stop_after_second)
    assert train(cut, resume=True, progress=False).resumed_from == 2
    assert json.loads((tmp_path / "cut" / "masks.json").read_text()) == json.loads(
        (tmp_path / "full" / "masks.json").read_text())
    a = torch.load(tmp_path / "full" / "state.pt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "state.pt", weights_only=True)
    assert a["masks"] == b["masks"] and len(a["masks"]) == 2
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
