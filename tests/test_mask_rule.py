"""Forgery masks are binarised by one documented rule (issue 21, Reliability): a 0/1 mask or a colour mask
gives the same region as its 0/255 grey form, odd masks are warned about by `bench run` and `bench data
check`, and localisation is computed under a perturbation, each mask carried through its geometry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_localisation import loaded

from bench.cli import main
from bench.engine import localisation
from bench.engine.decode import binarise_mask
from bench.engine.suites import suite_for_path

REGION = np.zeros((40, 60), dtype=bool)
REGION[8:20, 10:30] = True


def encodings() -> dict[str, Image.Image]:
    """The one region written the ways masks are found in the wild."""
    red = np.zeros((40, 60, 3), dtype=np.uint8)
    red[REGION] = (255, 0, 0)
    grey_rgb = np.repeat(REGION[:, :, None].astype(np.uint8) * 255, 3, axis=2)
    return {
        "0/255 grey": Image.fromarray(REGION.astype(np.uint8) * 255),
        "0/1 grey": Image.fromarray(REGION.astype(np.uint8)),
        "1-bit": Image.fromarray(REGION),
        "red on black": Image.fromarray(red),
        "white RGB": Image.fromarray(grey_rgb),
        "0/65535 16-bit": Image.fromarray(REGION.astype(np.uint16) * 65535),
    }


@pytest.mark.parametrize("name", list(encodings()))
def test_every_encoding_of_a_region_gives_that_region(name):
    forged, kind = binarise_mask(encodings()[name])
    np.testing.assert_array_equal(forged, REGION)
    assert kind == {"0/1 grey": "0/1", "red on black": "colour"}.get(name, "0/255")


def test_empty_and_grey_level_masks_are_named():
    assert binarise_mask(Image.fromarray(np.zeros((4, 4), np.uint8)))[1] == "empty"
    assert binarise_mask(Image.fromarray(np.full((4, 4), 100, np.uint8)))[1] == "empty"  # nothing above 127
    levels = np.array([[0, 100], [200, 255]], dtype=np.uint8)
    forged, kind = binarise_mask(Image.fromarray(levels))
    assert kind == "levels" and forged.tolist() == [[False, False], [True, True]]


def write_suite(root: Path, encoding: str) -> Path:
    """White forged regions on dark images (the Brightness detector's map is exactly the region), each
    mask written in `encoding`."""
    mask = encodings()[encoding]
    for i in range(3):
        image = np.full((40, 60, 3), 30, dtype=np.uint8)
        image[REGION] = 230
        for label in ("0_real", "1_fake", "1_fake_masks"):
            (root / "gen" / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((40, 60, 3), 30, dtype=np.uint8)).save(root / "gen" / "0_real" / f"{i}.png")
        Image.fromarray(image).save(root / "gen" / "1_fake" / f"{i}.png")
        mask.save(root / "gen" / "1_fake_masks" / f"{i}.png")
    return root


@pytest.mark.parametrize("encoding", ["0/1 grey", "red on black"])
def test_localisation_of_a_0_1_or_colour_mask_equals_its_0_255_form_and_is_noted(tmp_path, encoding, caplog):
    reference = write_suite(tmp_path / "grey", "0/255 grey")
    other = write_suite(tmp_path / "other", encoding)
    expected = localisation.localise_suite(loaded(False), reference, suite_for_path(reference), progress=False)
    found = localisation.localise_suite(loaded(False), other, suite_for_path(other), progress=False)
    assert expected["mean"]["energy"] == pytest.approx(1.0)  # the map is the region: all its energy inside
    assert found["generators"] == expected["generators"]
    assert expected["mask_notes"] == []
    [note] = found["mask_notes"]
    assert note.startswith("other/gen: 3 of 3 masks are " + ("valued 0/1" if encoding == "0/1 grey" else "in colour"))
    assert note in caplog.text


def test_bench_data_check_warns_about_odd_masks(tmp_path, capsys):
    suite = write_suite(tmp_path / "s", "0/1 grey")
    Image.fromarray(np.zeros((40, 60), np.uint8)).save(suite / "gen" / "1_fake_masks" / "2.png")
    assert main(["data", "check", "--suite", str(suite)]) == 0
    out = capsys.readouterr().out
    assert "WARNING: 3 mask(s) are not 0/255 grey" in out
    assert "gen/1_fake_masks/0.png: valued 0/1" in out
    assert "gen/1_fake_masks/2.png: all zero (no forged pixel" in out


@pytest.mark.parametrize(("spec", "shape", "forged"), [
    ("crop:keep=0.5", (20, 30), 10 * 15),  # rows 10-29, columns 15-44: rows 10-19, columns 15-29 of the region
    ("resize:scale=0.5,interp=nearest", (20, 30), 6 * 10),  # NEAREST halves the 12 x 20 region
    ("noise:std=5", (40, 60), 12 * 20),
])
def test_localisation_is_computed_under_a_perturbation_with_the_masks_carried_along(tmp_path, monkeypatch, spec,
                                                                                   shape, forged):
    from dataclasses import replace

    suite = write_suite(tmp_path / "s", "0/255 grey")
    seen = []
    scores = localisation.image_scores

    def record(heat, mask):
        seen.append((heat.shape, int(mask.sum())))
        return scores(heat, mask)

    monkeypatch.setattr(localisation, "image_scores", record)
    native = replace(suite_for_path(suite), resize=None)  # the sizes the perturbation makes reach the map
    block = localisation.localise_suite(loaded(False), suite, native, progress=False, perturbation=spec)
    assert block["perturbation"].startswith(spec.split(",")[0])
    assert seen == [(shape, forged)] * 3
    # the map is the bright region of the perturbed image; the mask, carried through the same geometry,
    # is that region too (crop:keep=0.5 keeps rows 10-29 and columns 15-44: part of the region, all forged)
    assert block["generators"]["gen"]["n_masks"] == 3
    for name in localisation.LOCALISATION_METRICS:
        assert block["mean"][name] == pytest.approx(1.0), name


@pytest.mark.slow  # scores a small suite with LAE, then its maps
def test_bench_run_reports_localisation_under_a_perturbation(tmp_path, capsys):
    import json

    import torch

    from detectors import export_state_dict, get_detector

    suite = write_suite(tmp_path / "s", "0/1 grey")
    torch.manual_seed(0)
    detector = get_detector("lae")
    weights = tmp_path / "lae.pth"
    torch.save(export_state_dict(detector.build(), detector), weights)
    assert main(["run", "--detector", "lae", "--weights", str(weights), "--suite", str(suite), "--output",
                 str(tmp_path / "r"), "--workers", "0", "--perturb", "crop:keep=0.5"]) == 0
    out = capsys.readouterr().out
    assert "localisation against the forgery masks (interpretation (interpret), under crop:keep=0.5)" in out
    assert "note: s/gen: 3 of 3 masks are valued 0/1" in out
    [folder] = (tmp_path / "r" / "runs").iterdir()
    block = json.loads((folder / "metrics.json").read_text())["localisation"]["s"]
    assert block["perturbation"] == "crop:keep=0.5" and block["generators"]["gen"]["n_masks"] == 3
