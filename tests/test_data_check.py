"""`bench data check` on a small tree: one good suite, one broken, one missing."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.commands import data as data_command


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (8, 6), seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(buffer, fmt)
    return buffer.getvalue()


def write(root: Path, relative: str, data: bytes) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@pytest.fixture
def data_root(tmp_path) -> Path:
    png = image_bytes()
    good = tmp_path / "Generalization_Test" / "ForenSynths_test"
    for relative in ("progan/car/0_real/1.png", "progan/car/1_fake/1.png", "progan/cat/0_real/2.png",
                     "progan/cat/1_fake/2.png", "biggan/0_real/1.png", "biggan/1_fake/1.png",
                     "crn/0_real/1.png", "crn/1_fake/1.png"):
        write(good, relative, png)
    write(good, "biggan/1_fake/broken.png", b"plain text, not a PNG")
    write(good, "biggan/0_real/list.txt", b"a stray file")

    broken = tmp_path / "Generalization_Test" / "GANGen-Detection"
    write(broken, "AttGAN/0_real/1.png", png)  # one class only
    write(broken, "BEGAN/0_real/1.png", png)
    write(broken, "BEGAN/1_fake/1.png", png[: len(png) // 2])  # truncated: no usable fake left
    for i in range(24):
        write(broken, f"STGAN/1_fake/{i:02d}.png", b"")  # empty files
    write(broken, "STGAN/0_real/1.png", png)
    return tmp_path


def check(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="bench data")
    data_command.add_arguments(parser)
    return data_command.run(parser.parse_args(["check", *argv]))


def test_good_suite(data_root, capsys):
    assert check("--data-root", str(data_root), "--suite", "forensynths", "--workers", "2") == 0
    out = capsys.readouterr().out
    assert "## forensynths (testset1)" in out and "found at" in out and "resized to 256x256" in out
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.split()}
    assert lines["progan"][1:5] == ["2", "2", "0", "0"]
    assert lines["biggan"][1:5] == ["1", "2", "1", "1"]  # real, fake, unusable (broken.png), not images
    # as bench run says it: a paper suite's folders that are not its columns are not scored (issue 21)
    assert "crn (not scored)" in out and "NOT SCORED by bench run: forensynths: not scoring crn" in out
    assert "missing generators (listed columns not on disk): stylegan, stylegan2, cyclegan" in out
    assert "biggan/1_fake/broken.png: not an image (cannot identify image file)" in out
    assert "biggan/0_real/list.txt: not an image file (.txt)" in out
    assert "summary: 1 of 1 suites usable" in out


def test_broken_suite_named_explicitly_fails(data_root, capsys):
    # npr takes any size: the 8x6 images are then usable at native size (lfm needs 24 px a side)
    assert check("--data-root", str(data_root), "--suite", "testset2", "--detector", "npr") == 2
    captured = capsys.readouterr()
    assert "one class only: no usable fake image" in captured.out
    assert "BEGAN/1_fake/1.png: truncated image" in captured.out
    assert "STGAN/1_fake/00.png: empty file" in captured.out
    assert "unusable files: 25" in captured.out and "... and 5 more" in captured.out
    assert "UNUSABLE: no generator has both usable real and usable fake images" in captured.out
    assert "gangen is unusable" in captured.err


def test_missing_suite_named_explicitly_fails_and_says_where_to_get_it(data_root, capsys):
    assert check("--data-root", str(data_root), "--suite", "forensynths", "--suite", "ufd") == 2
    captured = capsys.readouterr()
    assert "MISSING: expected at" in captured.out and "UniversalFakeDetect" in captured.out
    assert "https://github.com/WisconsinAIVision/UniversalFakeDetect" in captured.out
    assert "ufd is missing" in captured.err


def test_group_and_default_listing_report_without_failing(data_root, capsys):
    assert check("--data-root", str(data_root), "--suite", "gan") == 0
    assert "summary: 1 of 2 suites usable" in capsys.readouterr().out
    assert check("--data-root", str(data_root)) == 0
    out = capsys.readouterr().out
    for name in ("forensynths", "gangen", "diffusionforensics", "ufd", "diffusion1kstep"):
        assert f"## {name}" in out
    assert out.count("MISSING") == 3 and "demo-gan" not in out
    assert "summary: 1 of 5 suites usable" in out


def test_default_listing_adds_demo_and_training_sets_that_are_present(data_root, capsys):
    write(data_root, "demo/demo-gan/gen/0_real/1.png", image_bytes())
    write(data_root, "demo/demo-gan/gen/1_fake/1.png", image_bytes(seed=1))
    assert check("--data-root", str(data_root)) == 0
    out = capsys.readouterr().out
    assert "## demo-gan" in out and "native size" in out and "demo-diffusion" not in out


def test_nothing_usable_fails(tmp_path, capsys):
    assert check("--data-root", str(tmp_path / "empty")) == 2
    captured = capsys.readouterr()
    assert "(does not exist)" in captured.out and "no usable suite" in captured.err


def test_path_suite_without_label_folders(tmp_path, capsys):
    write(tmp_path, "loose/a.png", image_bytes())
    assert check("--suite", str(tmp_path / "loose")) == 2
    assert "no generator folder with 0_real/1_fake" in capsys.readouterr().out


def test_full_decode_catches_a_truncated_jpeg(tmp_path, capsys):
    jpeg = image_bytes("JPEG", size=(64, 48))
    write(tmp_path, "mine/0_real/ok.jpg", jpeg)
    write(tmp_path, "mine/1_fake/ok.jpg", jpeg)
    write(tmp_path, "mine/1_fake/cut.jpg", jpeg[: int(len(jpeg) * 0.7)])
    assert check("--suite", str(tmp_path / "mine")) == 0
    assert "cut.jpg" not in capsys.readouterr().out  # verify() does not read JPEG data
    assert check("--suite", str(tmp_path / "mine"), "--full") == 0
    assert "1_fake/cut.jpg: truncated image" in capsys.readouterr().out
