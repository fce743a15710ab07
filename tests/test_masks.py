"""Forgery masks as suite data: the layout, discovery, the protocol carrying a mask like its image, and
`bench data check` listing missing and mismatched masks."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.commands import data as data_command
from bench.engine.decode import DecodeSpec, UnusableImage, decode_mask
from bench.engine.suites import discover, mask_path
from detectors import Preprocessing


def save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def rectangle(height: int, width: int, top: int, left: int, bottom: int, right: int) -> np.ndarray:
    mask = np.zeros((height, width), dtype=bool)
    mask[top:bottom, left:right] = True
    return mask


def test_mask_path_layout():
    assert mask_path(Path("s/gen/1_fake/x.jpg")) == Path("s/gen/1_fake_masks/x.png")
    assert mask_path(Path("s/gen/cat/1_fake/sub/y.png")) == Path("s/gen/cat/1_fake_masks/sub/y.png")
    assert mask_path(Path("s/gen/0_real/x.png")) is None
    assert mask_path(Path("s/gen/1_fake/0_real/x.png")) is None  # the innermost label folder decides
    assert mask_path(Path("elsewhere/x.png")) is None


def test_discover_lists_masks_and_does_not_count_them_as_images(tmp_path):
    pixels = np.zeros((8, 8, 3), dtype=np.uint8)
    for name in ("a", "b"):
        save(tmp_path / "local" / "0_real" / f"{name}.png", pixels)
        save(tmp_path / "local" / "1_fake" / f"{name}.png", pixels)
        save(tmp_path / "plain" / "0_real" / f"{name}.png", pixels)
        save(tmp_path / "plain" / "1_fake" / f"{name}.png", pixels)
    save(tmp_path / "local" / "1_fake_masks" / "a.png", np.zeros((8, 8), dtype=np.uint8))
    found = {g.name: g for g in discover(tmp_path)}
    local, plain = found["local"], found["plain"]
    assert (len(local.real), len(local.fake)) == (2, 2)  # the mask is not an image of the suite
    assert local.has_masks and local.masks == {
        tmp_path / "local" / "1_fake" / "a.png": tmp_path / "local" / "1_fake_masks" / "a.png"}
    assert not plain.has_masks and plain.masks == {}


def expected_nearest(mask: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resize by hand: output pixel i samples source floor((i + 0.5) * n / size)."""
    height, width = mask.shape
    rows = np.floor((np.arange(size) + 0.5) * height / size).astype(int)
    cols = np.floor((np.arange(size) + 0.5) * width / size).astype(int)
    return mask[rows][:, cols]


@pytest.mark.parametrize(("resize", "center_crop"), [(256, None), (None, None), (64, 48), (None, 40)])
def test_mask_lands_on_the_pixels_of_its_image(tmp_path, resize, center_crop):
    height, width = 91, 151  # odd: the native protocol crops the last row and column
    truth = rectangle(height, width, 20, 30, 61, 150) | rectangle(height, width, 85, 0, 91, 10)
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[truth] = 255
    image_file = save(tmp_path / "1_fake" / "x.png", image)
    mask_file = save(tmp_path / "1_fake_masks" / "x.png", truth.astype(np.uint8) * 255)
    spec = DecodeSpec(resize=resize, interpolation="nearest", center_crop=center_crop)

    decoded = spec.decode(image_file)
    mask = spec.decode_mask(mask_file, decoded.original_size)

    # the image under the same protocol (nearest, so that its white pixels stay white) marks the same pixels
    assert mask.dtype == torch.bool and tuple(mask.shape) == tuple(decoded.pixels.shape[1:])
    assert np.array_equal(mask.numpy(), decoded.pixels[0].numpy() > 127)
    # and an independent computation of where the rectangles go
    if resize is not None:
        expected = expected_nearest(truth, resize)
    else:
        expected = truth[: height - 1, : width - 1]
    if center_crop is not None:
        top = int(round((expected.shape[0] - center_crop) / 2))
        left = int(round((expected.shape[1] - center_crop) / 2))
        expected = expected[top:top + center_crop, left:left + center_crop]
    assert np.array_equal(mask.numpy(), expected)
    assert 0 < expected.sum() < expected.size


def test_mask_follows_a_bilinear_image_protocol_with_nearest(tmp_path):
    """A detector's own interpolation applies to its image; the mask is always resized with NEAREST."""
    truth = rectangle(40, 60, 5, 7, 30, 33)
    spec = DecodeSpec.for_detector(256, Preprocessing(interpolation="bicubic"))
    mask = spec.decode_mask(save(tmp_path / "m.png", truth.astype(np.uint8) * 255), (60, 40))
    assert np.array_equal(mask.numpy(), expected_nearest(truth, 256))


def test_greyscale_mask_is_binarised_and_a_missing_one_is_all_zero(tmp_path):
    grey = np.array([[0, 127, 128, 255]], dtype=np.uint8).repeat(2, axis=0)
    mask = decode_mask(save(tmp_path / "m.png", grey), (4, 2), None)
    assert mask.tolist() == [[False, False, True, True]] * 2
    empty = decode_mask(None, (6, 4), None)
    assert tuple(empty.shape) == (4, 6) and not empty.any()


def test_mask_of_another_size_is_refused(tmp_path):
    path = save(tmp_path / "m.png", np.zeros((10, 12), dtype=np.uint8))
    with pytest.raises(UnusableImage, match="mask is 12x10, its image 12x11"):
        decode_mask(path, (12, 11), 256)


def check(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="bench data")
    data_command.add_arguments(parser)
    return data_command.run(parser.parse_args(["check", *argv]))


def test_data_check_lists_missing_and_mismatched_masks(tmp_path, capsys):
    suite = tmp_path / "mysuite"
    pixels = np.zeros((16, 20, 3), dtype=np.uint8)
    for name in ("a", "b", "c"):
        save(suite / "gen" / "0_real" / f"{name}.png", pixels)
        save(suite / "gen" / "1_fake" / f"{name}.png", pixels)
    save(suite / "gen" / "1_fake_masks" / "a.png", np.zeros((16, 20), dtype=np.uint8))  # fits
    save(suite / "gen" / "1_fake_masks" / "b.png", np.zeros((20, 16), dtype=np.uint8))  # transposed
    assert check("--suite", str(suite), "--workers", "1") == 0
    out = capsys.readouterr().out
    assert "forgery masks (1_fake_masks): gen 2/3" in out
    assert "missing or mismatched masks: 2" in out
    assert "gen/1_fake/b.png: mask is 16x20, the image 20x16" in out
    assert "gen/1_fake/c.png: no mask" in out
    assert "1_fake/a.png:" not in out


def test_data_check_says_nothing_about_masks_for_a_suite_without_them(tmp_path, capsys):
    suite = tmp_path / "plain"
    for label in ("0_real", "1_fake"):
        save(suite / "gen" / label / "a.png", np.zeros((8, 8, 3), dtype=np.uint8))
    assert check("--suite", str(suite), "--workers", "1") == 0
    assert "mask" not in capsys.readouterr().out
