"""bench.demo: the offline synthetic demo suites.

One module-scoped fixture builds the default tree once (marked slow); the other tests build small trees
through `counts`, which take about a second each.
"""

from __future__ import annotations

import csv
import hashlib
import json
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.demo import (
    DEFAULT_COUNTS,
    DEMO_NOTE,
    DEMO_SUITES,
    IMAGE_SIZE,
    demo_suite_root,
    ensure_demo_data,
    real,
)
from bench.demo import build as demo_build
from bench.demo import staging as demo_staging
from bench.demo.generators import GENERATORS
from bench.errors import BenchError, UnknownNameError

SMALL = {"demo-gan": 12, "demo-diffusion": 12, "demo-train": 20, "demo-val": 12}


def tree_digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def grey_stack(folder: Path) -> np.ndarray:
    return np.stack(
        [np.asarray(Image.open(p), dtype=np.float64).mean(axis=2) for p in sorted(folder.glob("*.png"))]
    )


def auc(negatives: np.ndarray, positives: np.ndarray) -> float:
    """ROC-AUC of "positives score higher" (Mann-Whitney; no ties in these float statistics)."""
    ranks = np.concatenate([negatives, positives]).argsort().argsort() + 1.0
    rank_sum = ranks[len(negatives) :].sum()
    return float((rank_sum - len(positives) * (len(positives) + 1) / 2) / (len(negatives) * len(positives)))


def npr_asymmetry(g: np.ndarray) -> np.ndarray:
    """How differently neighbouring pixels relate inside a 2x2 cell and across cells (the relation NPR
    looks at). A photograph is the same at every phase (about 0); a 2x up-sampler is not."""

    def ratio(inside: np.ndarray, across: np.ndarray) -> np.ndarray:
        return np.abs(np.log(inside.mean(axis=(1, 2)) / across.mean(axis=(1, 2))))

    cols = ratio(np.abs(g[:, :, 0:-1:2] - g[:, :, 1::2]), np.abs(g[:, :, 1:-1:2] - g[:, :, 2::2]))
    rows = ratio(np.abs(g[:, 0:-1:2] - g[:, 1::2]), np.abs(g[:, 1:-1:2] - g[:, 2::2]))
    return cols + rows


def sharpness(g: np.ndarray) -> np.ndarray:
    """Laplacian energy relative to gradient energy: lower for smoothed (denoised, interpolated) images."""
    lap = 4 * g[:, 1:-1, 1:-1] - g[:, :-2, 1:-1] - g[:, 2:, 1:-1] - g[:, 1:-1, :-2] - g[:, 1:-1, 2:]
    return np.log(np.abs(lap).mean(axis=(1, 2)) / np.abs(np.diff(g, axis=2)).mean(axis=(1, 2)))


def blockiness(g: np.ndarray, period: int) -> np.ndarray:
    """Steps across the borders of a `period`-pixel grid relative to steps inside it (latent grids)."""
    steps = np.abs(np.diff(g, axis=2))
    at_border = np.arange(steps.shape[2]) % period == period - 1
    return np.log(steps[:, :, at_border].mean(axis=(1, 2)) / steps[:, :, ~at_border].mean(axis=(1, 2)))


# ---- the default tree, built once --------------------------------------------------------------------


@pytest.fixture(scope="module")
def default_tree(tmp_path_factory) -> tuple[Path, float]:
    data_root = tmp_path_factory.mktemp("demo-default")
    started = time.perf_counter()
    root = ensure_demo_data(data_root, quiet=True)
    return root, time.perf_counter() - started


@pytest.mark.slow
def test_default_layout_counts_and_labels(default_tree):
    root, seconds = default_tree
    assert {p.name for p in root.iterdir() if p.is_dir()} == set(DEMO_SUITES)
    for suite, generators in DEMO_SUITES.items():
        suite_root = demo_suite_root(root.parent, suite)
        assert sorted(p.name for p in suite_root.iterdir()) == sorted(generators)
        for generator in generators:
            for label in ("0_real", "1_fake"):
                files = list((suite_root / generator / label).iterdir())
                assert len(files) == DEFAULT_COUNTS[suite] and all(f.suffix == ".png" for f in files)
    assert DEFAULT_COUNTS == {"demo-gan": 150, "demo-diffusion": 150, "demo-train": 1000, "demo-val": 150}
    assert len(DEMO_SUITES["demo-gan"]) >= 4 and len(DEMO_SUITES["demo-diffusion"]) >= 4
    assert DEMO_SUITES["demo-train"] == DEMO_SUITES["demo-val"] == ["tconv"]
    assert {GENERATORS[g].family for g in DEMO_SUITES["demo-gan"]} == {"gan"}
    assert {GENERATORS[g].family for g in DEMO_SUITES["demo-diffusion"]} == {"diffusion"}

    manifest = json.loads((root / "manifest.json").read_text())
    assert "synthetic demo data" in manifest["note"] and "synthetic demo data" in DEMO_NOTE
    assert manifest["content_hash"] == demo_build.content_hash()
    assert manifest["suites"]["demo-train"]["generators"]["tconv"] == {
        "family": "gan",
        "description": GENERATORS["tconv"].description,
        "n_real": 1000,
        "n_fake": 1000,
    }
    assert "synthetic demo data" in (root / "README.txt").read_text()
    print(f"default demo build: {seconds:.1f} s")


@pytest.mark.slow
def test_images_are_rgb_squares_of_the_demo_size(default_tree):
    root, _ = default_tree
    for folder in sorted(root.glob("*/*/*_*")):
        for path in sorted(folder.glob("*.png"))[:5]:
            with Image.open(path) as image:
                assert (image.format, image.mode, image.size) == ("PNG", "RGB", (IMAGE_SIZE, IMAGE_SIZE))


@pytest.mark.slow
def test_second_call_reuses_the_tree(default_tree, monkeypatch):
    root, _ = default_tree
    before = (root / "manifest.json").stat().st_mtime_ns

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the demo tree was built again")

    monkeypatch.setattr(demo_build, "_build", no_rebuild)
    assert ensure_demo_data(root.parent, quiet=True) == root
    assert (root / "manifest.json").stat().st_mtime_ns == before


@pytest.mark.slow
def test_train_val_and_test_reals_come_from_disjoint_halves(default_tree):
    root, _ = default_tree
    with open(root / "provenance.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == sum(2 * DEFAULT_COUNTS[s] * len(g) for s, g in DEMO_SUITES.items())
    for row in rows:
        suite = row["path"].split("/")[0]
        if suite in ("demo-gan", "demo-diffusion"):
            assert row["half"] == "test", row
        elif suite == "demo-train":
            assert row["half"] == "train" and row["photo"] not in real.VAL_PHOTOS, row
        else:
            assert row["half"] == "train" and row["photo"] in real.VAL_PHOTOS, row
    # The halves really are disjoint in the photographs (and together cover them).
    for name, _, _ in real.PHOTOS:
        (a, b) = [h.box for h in real.all_halves() if h.photo == name]
        overlap_w = min(a[2], b[2]) - max(a[0], b[0])
        overlap_h = min(a[3], b[3]) - max(a[1], b[1])
        assert overlap_w <= 0 or overlap_h <= 0
    # And no test image repeats a train or val image byte for byte.
    test_reals = {hashlib.sha256(p.read_bytes()).digest() for p in root.glob("demo-[gd]*/*/0_real/*.png")}
    train_reals = {hashlib.sha256(p.read_bytes()).digest() for p in root.glob("demo-[tv]*/*/0_real/*.png")}
    assert len(test_reals) == 8 * 150 and len(train_reals) == 1150
    assert not test_reals & train_reals


@pytest.mark.slow
def test_gan_fakes_carry_period_two_upsampling_artefacts(default_tree):
    """The NPR-like statistic separates every GAN-style generator's fakes from its reals, and separates
    the GAN family better than the diffusion family."""
    root, _ = default_tree
    scores = {}
    for suite in ("demo-gan", "demo-diffusion", "demo-train"):
        for generator in DEMO_SUITES[suite]:
            folder = root / suite / generator
            reals, fakes = grey_stack(folder / "0_real"), grey_stack(folder / "1_fake")
            scores[suite, generator] = auc(npr_asymmetry(reals), npr_asymmetry(fakes))
    for (suite, generator), value in scores.items():
        if suite != "demo-diffusion":
            assert value > 0.85, (suite, generator, value)
    gan = np.mean([v for (s, _), v in scores.items() if s == "demo-gan"])
    diffusion = np.mean([v for (s, _), v in scores.items() if s == "demo-diffusion"])
    assert gan > diffusion + 0.15, scores


@pytest.mark.slow
def test_diffusion_fakes_carry_their_own_artefacts(default_tree):
    root, _ = default_tree

    def family_auc(generator: str, statistic) -> float:
        folder = root / "demo-diffusion" / generator
        return auc(statistic(grey_stack(folder / "0_real")), statistic(grey_stack(folder / "1_fake")))

    # Interpolation plus smoothing, and denoising, leave images smoother than photographs.
    assert family_auc("bicubic-smooth", sharpness) < 0.15
    assert family_auc("noise-denoise", sharpness) < 0.3
    # The autoencoder (4x latent) and the latent decoder (8x latent) leave steps on their latent grid.
    assert family_auc("autoencoder", lambda g: blockiness(g, 4)) > 0.7
    assert family_auc("latent-decoder", lambda g: blockiness(g, 8)) > 0.75


@pytest.mark.slow
def test_small_build_matches_the_start_of_the_default_one(default_tree, small_tree):
    """Counts change how many images a folder has, never the images themselves."""
    root, _ = default_tree
    for name, digest in tree_digest(small_tree).items():
        if name.endswith(".png"):
            assert hashlib.sha256((root / name).read_bytes()).hexdigest() == digest, name


# ---- small trees ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_tree(tmp_path_factory) -> Path:
    return ensure_demo_data(tmp_path_factory.mktemp("demo-small"), quiet=True, counts=SMALL)


def test_build_is_deterministic(small_tree, tmp_path):
    again = ensure_demo_data(tmp_path, quiet=True, counts=SMALL)
    first, second = tree_digest(small_tree), tree_digest(again)
    assert first == second
    assert sum(name.endswith(".png") for name in first) == sum(
        2 * SMALL[s] * len(g) for s, g in DEMO_SUITES.items()
    )
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".demo-") and p.is_dir()]


def test_fakes_are_their_sources_with_artefacts_not_noise(small_tree):
    """Every generator keeps its source's content while changing its pixels; checked against the sources
    cut again from the windows that provenance.csv records."""
    with open(small_tree / "provenance.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    halves = {(h.photo, h.side): h for h in real.all_halves()}
    for suite in ("demo-gan", "demo-diffusion"):
        for generator in DEMO_SUITES[suite]:
            fakes = [r for r in rows if r["path"].startswith(f"{suite}/{generator}/1_fake/")][:8]
            windows = [
                real.Window(
                    halves[r["photo"], r["half"]],
                    float(r["x"]),
                    float(r["y"]),
                    float(r["window"]),
                    r["flip"] == "1",
                )
                for r in fakes
            ]
            # The recorded windows are rounded to 1/1000 px, so compare loosely.
            sources = np.stack([w.cut(IMAGE_SIZE) for w in windows]).astype(np.float64)
            made = np.stack([np.asarray(Image.open(small_tree / r["path"])) for r in fakes]).astype(
                np.float64
            )
            error = np.abs(made - sources).mean(axis=(1, 2, 3))
            assert np.all((error > 1.0) & (error < 20.0)), (generator, error)
            # Closer to its own source than to the other sources: the content survives.
            others = np.abs(made - np.roll(sources, 1, axis=0)).mean(axis=(1, 2, 3))
            assert np.all(error < others), (generator, error, others)


def test_changed_hash_triggers_a_rebuild(small_tree, tmp_path):
    root = ensure_demo_data(tmp_path, quiet=True, counts=SMALL)
    manifest = json.loads((root / "manifest.json").read_text())
    (root / "marker").write_text("from the old tree")
    manifest["content_hash"] = "0" * 64  # as if the generator code had changed
    (root / "manifest.json").write_text(json.dumps(manifest))
    assert ensure_demo_data(tmp_path, quiet=True, counts=SMALL) == root
    assert not (root / "marker").exists()
    assert tree_digest(root) == tree_digest(small_tree)


def test_code_change_changes_the_hash(monkeypatch, tmp_path):
    before = demo_build.content_hash(SMALL)
    assert before == demo_build.content_hash(SMALL)
    assert demo_build.content_hash({**SMALL, "demo-val": 13}) != before
    fake_sources = tmp_path / "src"
    fake_sources.mkdir()
    here = Path(demo_staging.__file__).parent
    for name in ("real.py", "generators.py", "build.py", "staging.py"):
        (fake_sources / name).write_bytes((here / name).read_bytes())
    (fake_sources / "generators.py").write_bytes((here / "generators.py").read_bytes() + b"\n# changed\n")
    monkeypatch.setattr(demo_staging, "__file__", str(fake_sources / "staging.py"))
    assert demo_build.content_hash(SMALL) != before


def test_missing_file_triggers_a_rebuild(small_tree, tmp_path):
    root = ensure_demo_data(tmp_path, quiet=True, counts=SMALL)
    victim = next((root / "demo-gan" / "tconv" / "1_fake").glob("*.png"))
    victim.unlink()
    ensure_demo_data(tmp_path, quiet=True, counts=SMALL)
    assert victim.exists()
    assert tree_digest(root) == tree_digest(small_tree)


def test_interrupted_build_leaves_nothing_that_is_trusted(monkeypatch, tmp_path):
    calls = {"n": 0}
    original = demo_build.save_png

    def failing_save(pixels, path):
        calls["n"] += 1
        if calls["n"] > 50:
            raise KeyboardInterrupt
        original(pixels, path)

    monkeypatch.setattr(demo_build, "save_png", failing_save)
    with pytest.raises(KeyboardInterrupt):
        ensure_demo_data(tmp_path, quiet=True, counts=SMALL)
    assert not (tmp_path / "demo").exists()
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]
    monkeypatch.setattr(demo_build, "save_png", original)
    root = ensure_demo_data(tmp_path, quiet=True, counts=SMALL)
    assert (root / "manifest.json").is_file()


def test_leftover_staging_folders_are_cleaned_up(small_tree, tmp_path):
    (tmp_path / ".demo-build-crashed" / "demo-gan").mkdir(parents=True)
    ensure_demo_data(tmp_path, quiet=True, counts=SMALL)
    assert not (tmp_path / ".demo-build-crashed").exists()


def test_refuses_to_replace_a_folder_it_did_not_make(tmp_path):
    mine = tmp_path / "demo" / "my-images"
    mine.mkdir(parents=True)
    with pytest.raises(BenchError, match="not demo data made by bench.demo"):
        ensure_demo_data(tmp_path, quiet=True, counts=SMALL)
    assert mine.is_dir()


def test_bad_names_and_counts_are_usage_errors(tmp_path):
    with pytest.raises(UnknownNameError, match="demo-gan"):
        demo_suite_root(tmp_path, "demo-gans")
    with pytest.raises(UnknownNameError):
        ensure_demo_data(tmp_path, counts={"demo-foo": 3})
    with pytest.raises(BenchError, match="positive integer"):
        ensure_demo_data(tmp_path, counts={"demo-gan": 0})
    assert demo_suite_root(tmp_path, "demo-val") == tmp_path / "demo" / "demo-val"


def test_photographs_load_from_the_installed_packages_without_a_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("bench.demo tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    for name, package, loader in real.PHOTOS:
        image = real._load_photo(package, loader)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3, name
        assert min(image.shape[:2]) >= 2 * IMAGE_SIZE, name
