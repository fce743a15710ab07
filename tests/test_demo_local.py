"""The local-forgery demo suites: exact masks, forged pixels only inside them, deterministic, discoverable."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter

from bench.demo import local
from bench.demo.build import IMAGE_SIZE
from bench.engine.suites import discover, resolve_suites

SMALL = {"demo-local-train": 6, "demo-local-val": 3, "demo-local": 4}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    data_root = tmp_path_factory.mktemp("local")
    local.ensure_local_data(data_root, quiet=True, counts=SMALL)
    return data_root


def tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.png")):
        digest.update(path.relative_to(root).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()


def test_every_fake_has_an_exact_binary_mask_of_its_size(built):
    resolved = {r.suite.name: r for r in resolve_suites("demo-local,demo-local-train,demo-local-val", built)}
    assert [g.name for g in discover(resolved["demo-local"].root)] == local.LOCAL_SUITES["demo-local"]
    for name, r in resolved.items():
        for generator in discover(r.root, r.suite):
            assert generator.has_masks and len(generator.fake) == len(generator.real) == SMALL[name]
            assert sorted(generator.masks) == generator.fake
            for mask_file in generator.masks.values():
                mask = np.asarray(Image.open(mask_file))
                assert mask.shape == (IMAGE_SIZE, IMAGE_SIZE) and set(np.unique(mask)) == {0, 255}
                assert 0.02 < (mask > 0).mean() < 0.45


def test_a_fake_is_its_source_patch_outside_the_mask_and_differs_inside(built):
    """Re-draw the source windows of one folder independently and compare pixel by pixel."""
    from bench.demo import real

    for suite, folder in (("demo-local", "pixel-shuffle"), ("demo-local-train", "tconv")):
        windows = real.draw_windows(local.SUITE_POOL[suite], local._stream(suite, folder, 1), SMALL[suite], IMAGE_SIZE)
        base = built / local.LOCAL_FOLDER / suite / folder
        for index, window in enumerate(windows):
            name = f"{index:04d}-{window.half.photo}.png"
            fake = np.asarray(Image.open(base / "1_fake" / name)).astype(int)
            mask = np.asarray(Image.open(base / "1_fake_masks" / name)) > 0
            source = window.cut(IMAGE_SIZE).astype(int)
            assert np.array_equal(fake[~mask], source[~mask])
            assert np.abs(fake[mask] - source[mask]).mean() > 0.5  # the generator changed the region


def test_feathered_blend_marks_where_the_fake_weighs_at_least_half():
    real = np.zeros((32, 32, 3), dtype=np.uint8)
    fake = np.full((32, 32, 3), 200, dtype=np.uint8)
    region = np.zeros((32, 32), dtype=bool)
    region[8:24, 8:24] = True
    image, mask = local.composite(real, fake, region, "feather")
    weight = gaussian_filter(region.astype(float), local.FEATHER_SIGMA, mode="nearest", truncate=3.0)
    assert np.array_equal(mask, weight >= 0.5)
    assert np.abs(image[..., 0] - 200 * weight).max() <= 0.51
    assert 0 < image[7, 16, 0] < 150 < image[16, 16, 0] and image[0, 0, 0] == 0
    pasted, same = local.composite(real, fake, region, "paste")
    assert np.array_equal(same, region) and np.array_equal(pasted[..., 0] == 200, region)


@pytest.mark.parametrize("shape", ["rectangle", "ellipse", "blob"])
def test_region_shapes_cover_the_stated_area_anywhere(shape):
    rng = np.random.default_rng(0)
    regions = [local.region(shape, 128, rng) for _ in range(40)]
    areas = np.array([r.mean() for r in regions])
    assert areas.min() > local.LOCAL_AREA[0] * 0.5 and areas.max() < local.LOCAL_AREA[1] * 1.5
    centres = np.array([np.argwhere(r).mean(axis=0) for r in regions])
    assert centres.std(axis=0).min() > 10  # placed at varied positions


@pytest.mark.slow
def test_build_is_deterministic(built, tmp_path):
    local.ensure_local_data(tmp_path, quiet=True, counts=SMALL)
    assert tree_digest(tmp_path / local.LOCAL_FOLDER) == tree_digest(built / local.LOCAL_FOLDER)


def test_blended_folder_is_feathered_and_the_others_are_not(built):
    """tconv-blend leaks (less than half) fake weight just outside its mask; pasted folders never do."""
    from bench.demo import real

    suite = "demo-local"
    for folder in ("tconv-blend", "tconv"):
        windows = real.draw_windows(local.SUITE_POOL[suite], local._stream(suite, folder, 1), SMALL[suite], IMAGE_SIZE)
        changed_outside = 0
        for index, window in enumerate(windows):
            name = f"{index:04d}-{window.half.photo}.png"
            base = built / local.LOCAL_FOLDER / suite / folder
            fake = np.asarray(Image.open(base / "1_fake" / name)).astype(int)
            mask = np.asarray(Image.open(base / "1_fake_masks" / name)) > 0
            changed_outside += int((fake != window.cut(IMAGE_SIZE))[~mask].any(axis=-1).sum())
        assert (changed_outside > 0) == (folder == "tconv-blend")
