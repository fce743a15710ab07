"""Resolution policies (bench.engine.protocol): centre and grid crops against torchvision's CenterCrop and
FiveCrop on the same PIL image, a multi-crop logit against the mean of its crops scored one by one, the
policy recorded per run, and bad policies refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import CenterCrop, FiveCrop

from bench.engine.config import EvalConfig
from bench.engine.decode import DecodeSpec
from bench.engine.protocol import parse_resolution, resolution_of_resize
from bench.engine.scoring import score_images
from bench.engine.suites import SUITES, suite_resolution
from bench.errors import BenchError


def noise_file(path, size):
    rng = np.random.default_rng(sum(size))
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def chw(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img.convert("RGB")).copy()).permute(2, 0, 1)


@pytest.mark.parametrize("size", [(300, 280), (301, 257), (200, 310)])  # larger, odd, and smaller than 256
def test_center_crop_is_torchvision_center_crop_at_native_resolution(tmp_path, size):
    path = noise_file(tmp_path / "x.png", size)
    spec = DecodeSpec.for_detector(None, _preprocessing(), resolution=parse_resolution("center-crop"))
    got = spec.decode(path).pixels
    assert torch.equal(got, chw(CenterCrop(256)(Image.open(path).convert("RGB"))))
    assert spec.protocol == "center-crop:size=256"


def test_grid_crops_are_torchvision_five_crop_corners_and_centre(tmp_path):
    path = noise_file(tmp_path / "x.png", (333, 290))
    img = Image.open(path).convert("RGB")
    top_left, top_right, bottom_left, bottom_right, centre = (chw(c) for c in FiveCrop(128)(img))
    four = DecodeSpec.for_detector(None, _preprocessing(), resolution=parse_resolution("multicrop:n=4,size=128"))
    pixels = four.decode(path).pixels
    assert pixels.shape == (4, 3, 128, 128)
    for got, want in zip(pixels, (top_left, top_right, bottom_left, bottom_right)):
        assert torch.equal(got, want)
    nine = DecodeSpec.for_detector(None, _preprocessing(), resolution=parse_resolution("multicrop:size=128"))
    pixels = nine.decode(path).pixels
    assert pixels.shape == (9, 3, 128, 128)
    for index, want in ((0, top_left), (2, top_right), (4, centre), (6, bottom_left), (8, bottom_right)):
        assert torch.equal(pixels[index], want)


def test_grid_crops_of_a_small_image_are_its_padded_centre(tmp_path):
    path = noise_file(tmp_path / "x.png", (100, 90))
    spec = DecodeSpec.for_detector(None, _preprocessing(), resolution=parse_resolution("multicrop:n=4,size=128"))
    want = chw(CenterCrop(128)(Image.open(path).convert("RGB")))  # torchvision pads it, centred, with black
    for got in spec.decode(path).pixels:
        assert torch.equal(got, want)


def test_multicrop_logit_is_the_mean_of_its_crops_logits(tmp_path):
    path = noise_file(tmp_path / "x.png", (260, 300))
    weights = torch.arange(3 * 64 * 64, dtype=torch.float32).reshape(3, 64, 64) / 1e5

    def scorer(pixels):  # any function of the pixels; a sum keeps the check exact enough
        return (pixels.float() * weights).flatten(1).sum(1)

    spec = DecodeSpec.for_detector(None, _preprocessing(), resolution=parse_resolution("multicrop:n=4,size=64"))
    (row,), = list(score_images([(path, 1)], {"s": scorer}, spec))
    crops = FiveCrop(64)(Image.open(path).convert("RGB"))[:4]
    expected = torch.stack([scorer(chw(c)[None])[0] for c in crops]).mean()
    assert row.values["s"] == pytest.approx(float(expected), rel=1e-6)


def test_policies_parse_and_bad_ones_are_refused():
    assert parse_resolution("multicrop").spec == "multicrop:n=9,size=256"
    assert parse_resolution("center-crop:size=224").spec == "center-crop:size=224"
    assert parse_resolution("resize256") == resolution_of_resize(256)
    for bad, message in (("crop", "unknown policy"), ("multicrop:n=5", "square number"),
                         ("center-crop:size=255", "even"), ("native:size=3", "takes no parameters"),
                         ("multicrop:n=x", "whole number")):
        with pytest.raises(BenchError, match=message):
            parse_resolution(bad)
    with pytest.raises(BenchError, match="choose one"):
        EvalConfig(resolution="native", protocol="own")
    assert EvalConfig(resolution="MULTICROP:n=4").resolution == "multicrop:n=4,size=256"


def test_paper_suites_keep_their_policy():
    assert suite_resolution(SUITES["forensynths"]).spec == "resize256"
    assert suite_resolution(SUITES["gangen"]).spec == "native"


def _preprocessing():
    from detectors import get_detector

    return get_detector("npr").preprocessing
