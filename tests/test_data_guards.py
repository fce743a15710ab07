"""Files and folders that must not stop a run or change a result silently (issue 17): images too small
for the model or too large for native size, animated images, broken symlinks and symlink loops, empty
suites and misspelt label folders; and `bench data check` reporting each of them."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.cli import main
from bench.engine.decode import (
    DecodeSpec,
    UnusableImage,
    check_image,
    decode_image,
    model_min_side,
    parse_max_pixels,
)
from bench.engine.suites import check_layout, discover, meant_label_folder, scan_generator
from bench.errors import BenchError
from detectors import get_detector


def noise(path: Path, width: int, height: int, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
    return path


def png_claiming_size(path: Path, width: int, height: int) -> Path:
    """A PNG whose header says width x height and which holds the data of a 2x2 image: what the header
    promises is never decoded unless something reads past it."""
    buffer = path.with_suffix(".tmp.png")
    noise(buffer, 2, 2)
    data = buffer.read_bytes()
    buffer.unlink()
    ihdr = data[16:29]  # the 13 bytes of IHDR after its length and type
    patched = struct.pack(">II", width, height) + ihdr[8:]
    chunk = b"IHDR" + patched
    path.write_bytes(data[:12] + chunk + struct.pack(">I", zlib.crc32(chunk)) + data[33:])
    return path


@pytest.fixture(scope="module")
def lfm_model():
    return get_detector("lfm").build()  # the layers decide which sizes work, not the weights


@pytest.fixture(scope="module")
def lfm_side(lfm_model) -> int:
    return model_min_side(lfm_model)


def test_model_min_side_is_the_edge_where_the_model_starts_to_run(lfm_model, lfm_side):
    side = lfm_side
    assert 8 < side < 64  # LFM: about 24 px (a 2x2 pooling meets a 1x1 map below that)
    with torch.inference_mode():
        lfm_model(torch.zeros(1, 3, side, 256))
        lfm_model(torch.zeros(1, 3, 256, side))
        with pytest.raises(RuntimeError, match="[Kk]ernel size|[Oo]utput size"):
            lfm_model(torch.zeros(1, 3, side - 2, 256))


def test_an_image_too_small_for_the_model_is_skipped_with_a_reason(tmp_path, lfm_side):
    side = lfm_side
    small = noise(tmp_path / "small.png", side - 2, 300)
    spec = DecodeSpec(resize=None, min_side=side)
    with pytest.raises(UnusableImage, match=f"too small for the model .*{side - 2}x300.*at least {side} px"):
        spec.decode(small)
    # exactly the minimum decodes (to the file's own pixels), and the resized protocol is unaffected
    fits = noise(tmp_path / "fits.png", side, 300)
    assert torch.equal(spec.decode(fits).pixels, torch.from_numpy(np.array(Image.open(fits))).permute(2, 0, 1))
    assert DecodeSpec(resize=256, min_side=side).decode(small).pixels.shape == (3, 256, 256)
    with pytest.raises(UnusableImage, match="too small for the model"):
        check_image(small, None, min_side=side)


def test_an_image_too_large_for_native_size_is_skipped_before_decoding(tmp_path):
    huge = png_claiming_size(tmp_path / "huge.png", 9000, 9000)
    # judged from the header: decoding would fail differently (the data is that of a 2x2 image)
    with pytest.raises(UnusableImage, match=r"too large for native-size evaluation \(9000x9000 = 81.0 MP > "
                                            r"limit 16.8 MP\); raise the limit with \$BENCH_MAX_PIXELS"):
        DecodeSpec(resize=None).decode(huge)
    with pytest.raises(UnusableImage, match="too large"):
        check_image(huge, None)
    # the limit is the user's: below it an image decodes, and the resized protocol has none
    image = noise(tmp_path / "a.png", 40, 30)
    assert DecodeSpec(resize=None, max_pixels=1200).decode(image).pixels.shape == (3, 30, 40)
    with pytest.raises(UnusableImage, match="40x30 = 0.0 MP"):
        DecodeSpec(resize=None, max_pixels=1199).decode(image)
    assert DecodeSpec(resize=256, max_pixels=1199).decode(image).pixels.shape == (3, 256, 256)
    assert parse_max_pixels("4096x4096") == 4096 * 4096 and parse_max_pixels("none") is None
    with pytest.raises(BenchError, match="expected a number of pixels"):
        parse_max_pixels("lots")


def test_animated_images_are_skipped_with_a_reason_and_a_still_gif_is_scored(tmp_path):
    frames = [Image.fromarray(np.full((32, 32, 3), 40 * i, dtype=np.uint8)) for i in range(3)]
    animated = tmp_path / "anim.gif"
    frames[0].save(animated, save_all=True, append_images=frames[1:], duration=50)
    with pytest.raises(UnusableImage, match=r"animated image \(3 frames\)"):
        decode_image(animated, None)
    with pytest.raises(UnusableImage, match="animated image"):
        check_image(animated, 256)
    still = tmp_path / "still.gif"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(still)
    expected = torch.from_numpy(np.array(Image.open(still).convert("RGB"))).permute(2, 0, 1)
    assert torch.equal(decode_image(still, None).pixels, expected)
    # and a GIF is an image candidate of the folder scan (it used to be left out silently)
    (tmp_path / "g" / "0_real").mkdir(parents=True)
    (tmp_path / "g" / "1_fake").mkdir(parents=True)
    os.replace(animated, tmp_path / "g" / "1_fake" / "anim.gif")
    found = scan_generator(tmp_path / "g", "g")
    assert [p.name for p in found.fake] == ["anim.gif"] and found.other == []


def test_broken_symlinks_and_symlink_loops_are_unusable_files_not_a_crash(tmp_path):
    gen = tmp_path / "suite" / "gen"
    noise(gen / "0_real" / "a.png", 32, 32)
    noise(gen / "1_fake" / "b.png", 32, 32)
    (gen / "1_fake" / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    (gen / "1_fake" / "loop.png").symlink_to(gen / "1_fake" / "loop.png")
    (gen / "0_real" / "cycle").symlink_to(gen / "0_real")  # a folder loop: visited once
    [found] = discover(tmp_path / "suite")
    assert [p.name for p in found.fake] == ["b.png", "dangling.png", "loop.png"] and len(found.real) == 1
    with pytest.raises(UnusableImage, match="broken symlink"):
        decode_image(gen / "1_fake" / "dangling.png", 256)
    with pytest.raises(UnusableImage, match="symlink loop"):
        check_image(gen / "1_fake" / "loop.png", 256)


@pytest.mark.parametrize("name, meant", [("0_Real", "0_real"), ("real", "0_real"), ("1-fake", "1_fake"),
                                         ("1_fakes", "1_fake"), ("airplane", None), ("1_fake_masks", None),
                                         ("0_real", None)])
def test_near_miss_label_folder_names(name, meant):
    assert meant_label_folder(name) == meant


def test_an_empty_suite_or_one_without_label_folders_is_exit_2_with_the_layout(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BenchError, match="it is empty.*expected layout: SUITE/GENERATOR/0_real"):
        check_layout(empty, discover(empty))
    flat = tmp_path / "flat"
    noise(flat / "gen" / "images" / "a.png", 32, 32)
    with pytest.raises(BenchError, match=r"no generator folder with 0_real/1_fake below it \(it holds: gen\)"):
        check_layout(flat, discover(flat))


def test_a_misspelt_label_folder_is_exit_2_with_did_you_mean(tmp_path):
    suite = tmp_path / "suite"
    noise(suite / "good" / "0_real" / "a.png", 32, 32)
    noise(suite / "good" / "1_fake" / "a.png", 32, 32)
    noise(suite / "bad" / "0_Real" / "a.png", 32, 32)  # its reals would silently be left out
    noise(suite / "bad" / "1_fake" / "a.png", 32, 32)
    generators = discover(suite)
    with pytest.raises(BenchError, match=r"bad/0_Real: did you mean 0_real\?"):
        check_layout(suite, generators)
    # the root itself as the one generator, with both names misspelt
    only = tmp_path / "only"
    noise(only / "0_Real" / "a.png", 32, 32)
    noise(only / "1_Fake" / "a.png", 32, 32)
    with pytest.raises(BenchError, match=r"0_Real: did you mean 0_real\?; 1_Fake: did you mean 1_fake\?"):
        check_layout(only, discover(only))


@pytest.mark.slow  # builds LFM to find its smallest side (a few seconds)
def test_bench_data_check_reports_each_problem(tmp_path, capsys, lfm_side):
    side = lfm_side
    # a native-size suite (named as Test Set 2's folder), with one good generator and one of each problem
    suite = tmp_path / "GANGen-Detection"
    for label in ("0_real", "1_fake"):
        for i in range(2):
            noise(suite / "AttGAN" / label / f"{i}.png", 64, 64, seed=i)
    fake = suite / "AttGAN" / "1_fake"
    noise(fake / "tiny.png", side - 2, 64)
    png_claiming_size(fake / "huge.png", 9000, 9000)
    frames = [Image.new("RGB", (32, 32), (i, 0, 0)) for i in range(2)]
    frames[0].save(fake / "anim.gif", save_all=True, append_images=frames[1:])
    (fake / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    (fake / "loop.png").symlink_to(fake / "loop.png")
    assert main(["data", "check", "--suite", str(suite), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert f"native-size limits: at least {side} px a side (lfm), at most 16.8 MP" in out
    for name, reason in [("tiny.png", "too small for the model"), ("huge.png", "too large for native-size"),
                         ("anim.gif", "animated image (2 frames)"), ("dangling.png", "broken symlink"),
                         ("loop.png", "symlink loop")]:
        assert f"AttGAN/1_fake/{name}: {reason}" in out, name

    noise(suite / "BEGAN" / "0_Real" / "a.png", 64, 64)
    noise(suite / "BEGAN" / "1_fake" / "a.png", 64, 64)
    assert main(["data", "check", "--suite", str(suite), "--workers", "1"]) == 2
    captured = capsys.readouterr()
    assert "BEGAN/0_Real: did you mean 0_real?" in captured.out and "is unusable" in captured.err

    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["data", "check", "--suite", str(empty)]) == 2
    assert "UNUSABLE: the folder is empty" in capsys.readouterr().out
