"""Perturbation parameters are bounded and checked before any work, `bench run` takes one --perturb, and an
enlarging perturbation is held to the pixel limit before it allocates anything (issue 21, Reliability)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from tests_support import write_suite

from bench.cli import main
from bench.engine.decode import UnusableImage, decode_image
from bench.engine.perturb import REGISTRY, parse, parse_sweep
from bench.errors import BenchError
from detectors import export_state_dict, get_detector


def numeric_parameters():
    for name, cls in sorted(REGISTRY.items()):
        for field in dataclasses.fields(cls):
            kind = field.type if isinstance(field.type, str) else field.type.__name__
            if kind == "float":
                yield name, field.name


@pytest.mark.parametrize(("family", "parameter"), list(numeric_parameters()))
@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
def test_no_float_parameter_takes_a_non_finite_value(family, parameter, value):
    with pytest.raises(BenchError, match=f"{family}: {parameter} must be a finite number"):
        parse(f"{family}:{parameter}={value}")


@pytest.mark.parametrize("spec", [
    "blur:sigma=1e6", "blur:sigma=20.5", "blur:sigma=-1", "resize:scale=1000", "resize:scale=0", "resize:scale=-2",
    "noise:std=256", "noise:std=-1", "crop:keep=0", "crop:keep=1.5", "jpeg:q=0", "jpeg:q=101", "webp:q=101",
    "jpeg-cv2:q=0", "reencode:jpeg:q=0", "fit:side=0",
])
def test_out_of_range_levels_are_refused(spec):
    with pytest.raises(BenchError, match="must be a finite number in"):
        parse(spec)


@pytest.mark.parametrize("spec", ["blur:sigma=20", "blur:sigma=0", "resize:scale=100", "resize:scale=0.01",
                                  "noise:std=255", "crop:keep=1", "jpeg:q=1", "fit:side=1"])
def test_the_bounds_themselves_are_accepted(spec):
    assert parse(spec) is not None


def test_a_sweep_refuses_a_bad_level_before_scoring_anything(tmp_path, capsys):
    with pytest.raises(BenchError, match="sigma must be a finite number"):
        parse_sweep("blur:sigma=1,2,3,inf")
    suite = write_suite(tmp_path / "s", {"gen": 1}, size=(24, 24))
    code = main(["sweep", "--detector", "lfm", "--weights", "demo", "--suite", str(suite), "--output",
                 str(tmp_path / "r"), "--perturb", "jpeg:q=90", "--perturb", "resize:scale=0.5,1,inf"])
    assert code == 2
    assert "resize: scale must be a finite number in (0, 100], not inf" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # nothing scored, cached or written


@pytest.mark.parametrize(("flags", "message"), [
    (["--perturb", "jpeg:q=50", "--perturb", "blur:sigma=1"], "--perturb given twice ('jpeg:q=50', then 'blur:sigma=1')"),
    (["--suite", "a", "--suite", "b"], "--suite given twice ('a', then 'b')"),
    (["--limit", "2", "--limit", "3"], "--limit given twice"),
])
def test_bench_run_refuses_a_value_option_given_twice(flags, message, capsys, tmp_path):
    # a missing suite folder: were the repeat let through, the run would stop there, not score the demo
    where = [] if "--suite" in flags else ["--suite", str(tmp_path / "missing")]
    with pytest.raises(SystemExit) as stopped:
        main(["run", "--detector", "lfm", *where, *flags])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    if "--perturb" in flags:
        assert "bench sweep --perturb" in err


# ------------------------------------------------------------------------- the pixel limit after it


def save(path, size) -> None:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)


@pytest.mark.parametrize("resize", [None, 256])
@pytest.mark.parametrize(("spec", "enlarges"), [("resize:scale=20", True), ("resize:scale=20,back=1", True),
                                                ("chain:repost", False)])  # repost: 0.75x, then JPEG twice
def test_an_enlarging_perturbation_over_the_limit_is_refused_before_it_allocates(tmp_path, monkeypatch, resize, spec,
                                                                                 enlarges):
    path = tmp_path / "x.png"
    save(path, (48, 40))
    perturbation = parse(spec)
    if not enlarges:
        assert decode_image(path, resize, perturbation=perturbation, max_pixels=48 * 40).pixels.dtype == torch.uint8
        return
    # resize:scale=20 makes round(48 * 20) x round(40 * 20) = 960 x 800 (on the way back too, with back=1)

    def no_resize(*args, **kwargs):
        raise AssertionError("an image was resized before the size was checked")

    monkeypatch.setattr(Image.Image, "resize", no_resize)
    with pytest.raises(UnusableImage, match=r"too large after resize:scale=20.* \(48x40 would become 960x800 = "
                                            r"0\.768 MP > limit 0\.7 MP\)"):
        decode_image(path, resize, perturbation=perturbation, max_pixels=700_000)


def test_an_enlarging_perturbation_under_the_limit_decodes_to_the_size_pil_gives(tmp_path):
    path = tmp_path / "x.png"
    save(path, (48, 40))
    decoded = decode_image(path, None, perturbation=parse("resize:scale=2"), max_pixels=96 * 80)
    with Image.open(path) as img:
        expected = np.asarray(img.convert("RGB").resize((96, 80), Image.BILINEAR))
    np.testing.assert_array_equal(decoded.pixels.permute(1, 2, 0).numpy(), expected)


def test_bench_run_skips_images_an_enlarging_perturbation_takes_past_the_limit(tmp_path, monkeypatch, capsys):
    torch.manual_seed(3)
    detector = get_detector("lfm")
    weights = tmp_path / "weights.pth"
    torch.save(export_state_dict(detector.build(), detector), weights)
    suite = tmp_path / "GANGen-Detection"  # native size
    write_suite(suite, {"AttGAN": 2}, size=(48, 48))
    save(suite / "AttGAN" / "1_fake" / "big.png", (100, 100))
    monkeypatch.setenv("BENCH_MAX_PIXELS", "12000")  # up to 104x104 passes, 200x200 does not
    code = main(["run", "--detector", "lfm", "--suite", str(suite), "--weights", str(weights), "--output",
                 str(tmp_path / "r"), "--workers", "0", "--perturb", "resize:scale=2", "--json"])
    assert code == 0
    [folder] = (tmp_path / "r" / "runs").iterdir()
    skipped = pd.read_csv(folder / "skipped.csv")
    assert list(skipped["path"]) == ["gangen/AttGAN/1_fake/big.png"]
    assert skipped["reason"][0].startswith("too large after resize:scale=2,back=0,interp=bilinear (100x100 would "
                                           "become 200x200 = 0.04 MP > limit 0.012 MP)")
    info = json.loads((folder / "run.json").read_text())
    assert info["n_images"] == {"gangen": 4}
