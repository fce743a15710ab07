"""Build (once) and find the synthetic demo suites under `<data_root>/demo/`.

    <data_root>/demo/manifest.json           content hash, counts, generators, the "synthetic demo data" note
    <data_root>/demo/README.txt              what this folder is and how it is made
    <data_root>/demo/provenance.csv          for every image: the photograph, half and window it came from
    <data_root>/demo/<suite>/<generator>/{0_real,1_fake}/<index>-<photo>.png

`ensure_demo_data` returns at once when the manifest's content hash matches this code and parameters and
every folder holds its images; otherwise it builds the whole tree in a temporary folder beside it and
renames it into place, so an interrupted build never leaves a tree that looks finished.

Every output folder has its own seeds, derived from the suite and generator names: the reals and the
fakes' sources are drawn from separate numpy streams, and a generator's weights depend on its name only
(demo-gan's `tconv` and demo-train's `tconv` are one generator, as ProGAN is in the paper's training set
and in Test Set 1). The fakes of a folder are made from patches drawn independently of its reals.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import sys
import zlib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bench.demo.staging import (
    build_in_place,
    code_and_params_hash,
    count_png,
    overlay_counts,
    read_manifest,
    save_png,
    single_threaded_torch,
)
from bench.errors import UnknownNameError

log = logging.getLogger(__name__)

DEMO_NOTE = "synthetic demo data (bench.demo; not a paper benchmark)"
FORMAT = 1
IMAGE_SIZE = 128
SEED = 20251124

GAN_GENERATORS = ["tconv", "nearest-conv", "pixel-shuffle", "bilinear-noise"]
DIFFUSION_GENERATORS = ["bicubic-smooth", "autoencoder", "noise-denoise", "latent-decoder"]
TRAIN_GENERATOR = "tconv"

DEMO_SUITES: dict[str, list[str]] = {
    "demo-gan": GAN_GENERATORS,
    "demo-diffusion": DIFFUSION_GENERATORS,
    "demo-train": [TRAIN_GENERATOR],
    "demo-val": [TRAIN_GENERATOR],
}
# Which real-patch pool each suite draws from (see bench.demo.real): test suites never see train halves.
SUITE_POOL = {"demo-gan": "test", "demo-diffusion": "test", "demo-train": "train", "demo-val": "val"}
# Real images per generator folder; each folder holds as many fakes.
DEFAULT_COUNTS: dict[str, int] = {"demo-gan": 150, "demo-diffusion": 150, "demo-train": 1000, "demo-val": 150}

LABELS = ("0_real", "1_fake")
_SOURCES = ("real.py", "generators.py", "build.py", "staging.py")  # the code whose change invalidates a built tree

README = f"""\
This folder holds {DEMO_NOTE}.

It was made by `bench.demo` on first use, offline and deterministically, and is rebuilt whenever the
code that makes it changes (see manifest.json). It is NOT one of the paper's benchmarks, and numbers
measured on it say nothing about a detector's accuracy on real generators. It exists so that
`bench run` shows a working result on a machine with no dataset.

Real images (0_real): {IMAGE_SIZE}x{IMAGE_SIZE} patches cut at random positions, scales and mirrorings
from the sample photographs bundled inside the scikit-image and scikit-learn packages. Every photograph
is split into two halves: demo-train and demo-val cut their patches from one half, demo-gan and
demo-diffusion from the other (provenance.csv says where each image comes from).

Fake images (1_fake): other real patches of the same pool, shrunk and rebuilt by small generator-like
pipelines with seeded random weights:
  demo-gan        {", ".join(GAN_GENERATORS)}
                  (CNN generators' up-sampling: transposed convolution, nearest + conv, sub-pixel
                  convolution, bilinear + noise injection)
  demo-diffusion  {", ".join(DIFFUSION_GENERATORS)}
                  (diffusion decoders: bicubic up + smoothing, a conv autoencoder, noise then denoise,
                  an 8x latent decoded by nearest-up + conv stages)
  demo-train, demo-val  {TRAIN_GENERATOR} only, as ProGAN-only training in the paper.

Layout: <suite>/<generator>/0_real/*.png and <suite>/<generator>/1_fake/*.png.
Delete this folder to force a rebuild.
"""


def demo_root(data_root: str | Path) -> Path:
    return Path(data_root) / "demo"


def demo_suite_root(data_root: str | Path, suite: str) -> Path:
    if suite not in DEMO_SUITES:
        raise UnknownNameError("demo suite", suite, DEMO_SUITES)
    return demo_root(data_root) / suite


def resolve_counts(counts: Mapping[str, int] | None = None) -> dict[str, int]:
    """DEFAULT_COUNTS with `counts` laid over it (real images per generator folder; as many fakes)."""
    return overlay_counts(DEFAULT_COUNTS, counts, "demo suite")


def content_hash(counts: Mapping[str, int] | None = None) -> str:
    """sha256 of the code that makes the tree and of every parameter that changes its bytes."""
    params = {"format": FORMAT, "size": IMAGE_SIZE, "seed": SEED, "counts": resolve_counts(counts)}
    return code_and_params_hash(_SOURCES, params)


def ensure_demo_data(
    data_root: str | Path, *, quiet: bool = False, counts: Mapping[str, int] | None = None
) -> Path:
    """Return `<data_root>/demo`, building it first if it is missing, incomplete or out of date.

    `counts` overrides DEFAULT_COUNTS per suite (tests use small ones); a tree built with other counts is
    out of date and is rebuilt. A build takes seconds and prints a progress bar on stderr unless `quiet`.
    """
    root = demo_root(data_root)
    counts = resolve_counts(counts)
    digest = content_hash(counts)
    return build_in_place(root, is_current=lambda: is_current(root, digest, counts),
                          build=lambda staging: _build(staging, digest, counts, quiet), what=DEMO_NOTE, quiet=quiet)


def is_current(root: Path, digest: str, counts: Mapping[str, int]) -> bool:
    """The manifest matches `digest` and every folder holds its images (counted, not re-hashed: fast)."""
    manifest = read_manifest(root)
    if manifest is None or manifest.get("content_hash") != digest:
        return False
    for name in ("README.txt", "provenance.csv"):
        if not (root / name).is_file():
            return False
    for suite, generators in DEMO_SUITES.items():
        for generator in generators:
            for label in LABELS:
                if count_png(root / suite / generator / label) != counts[suite]:
                    return False
    return True


# ---- the build itself -------------------------------------------------------------------------------


def _stream(suite: str, generator: str, role: int) -> np.random.Generator:
    """A numpy stream per output folder and role (0: reals, 1: the fakes' sources), named, not numbered,
    so adding a suite or a generator leaves the others' images unchanged."""
    key = [SEED, zlib.crc32(suite.encode()), zlib.crc32(generator.encode()), role]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(key)))


def _build(staging: Path, digest: str, counts: Mapping[str, int], quiet: bool) -> int:
    from tqdm import tqdm

    from bench.demo import real
    from bench.demo.generators import CHUNK, GENERATORS, Synthesiser

    synthesisers = {name: Synthesiser(name, "demo") for gens in DEMO_SUITES.values() for name in gens}

    def make_reals(folder: Path, windows: list, first: int) -> list[dict]:
        rows = []
        for offset, window in enumerate(windows):
            path = folder / f"{first + offset:04d}-{window.half.photo}.png"
            save_png(window.cut(IMAGE_SIZE), path)
            rows.append({"path": path.relative_to(staging).as_posix(), "label": "0", **window.provenance()})
        return rows

    def make_fakes(folder: Path, windows: list, first: int, generator: str, noise_seed: str) -> list[dict]:
        sources = np.stack([w.cut(IMAGE_SIZE) for w in windows])
        fakes = synthesisers[generator].chunk(sources, noise_seed, first // CHUNK)
        rows = []
        for offset, (window, pixels) in enumerate(zip(windows, fakes, strict=True)):
            path = folder / f"{first + offset:04d}-{window.half.photo}.png"
            save_png(pixels, path)
            rows.append({"path": path.relative_to(staging).as_posix(), "label": "1", **window.provenance()})
        return rows

    n_images = 2 * sum(counts[suite] * len(gens) for suite, gens in DEMO_SUITES.items())
    workers = max(1, min(8, os.cpu_count() or 1))
    with (
        single_threaded_torch(),
        ThreadPoolExecutor(workers) as pool,
        tqdm(
            total=n_images, desc="demo data", unit="img", file=sys.stderr, disable=True if quiet else None
        ) as bar,
    ):
        jobs = []  # (future, images it makes), in a fixed order: the provenance rows follow it
        rows = []
        try:
            for suite, generators in DEMO_SUITES.items():
                n = counts[suite]
                for generator in generators:
                    out = staging / suite / generator
                    for label in LABELS:
                        (out / label).mkdir(parents=True)
                    reals = real.draw_windows(SUITE_POOL[suite], _stream(suite, generator, 0), n, IMAGE_SIZE)
                    sources = real.draw_windows(
                        SUITE_POOL[suite], _stream(suite, generator, 1), n, IMAGE_SIZE
                    )
                    for first in range(0, n, CHUNK):
                        part = reals[first : first + CHUNK]
                        jobs.append((pool.submit(make_reals, out / "0_real", part, first), len(part)))
                        part = sources[first : first + CHUNK]
                        job = pool.submit(
                            make_fakes, out / "1_fake", part, first, generator, f"{suite}/{generator}"
                        )
                        jobs.append((job, len(part)))
            for job, size in jobs:
                rows.extend(job.result())
                bar.update(size)
        except BaseException:
            # Ctrl-C or a failed image: do not let the pool finish the remaining hundreds of images.
            for job, _ in jobs:
                job.cancel()
            raise

    with open(staging / "provenance.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(
            handle, fieldnames=["path", "label", "photo", "half", "x", "y", "window", "flip"]
        )
        writer.writeheader()
        writer.writerows(rows)
    (staging / "README.txt").write_text(README, encoding="utf-8")
    manifest = _manifest(digest, counts, {name: GENERATORS[name] for name in synthesisers}, real)
    # The manifest goes last: a staging folder without one is never mistaken for a finished tree.
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return n_images


def _manifest(digest: str, counts: Mapping[str, int], specs: dict, real) -> dict:
    from importlib.metadata import version

    return {
        "note": f"{DEMO_NOTE}: real patches from photographs bundled with scikit-image and scikit-learn; "
        "fakes re-synthesised by seeded random-weight generator-like pipelines. See README.txt.",
        "format": FORMAT,
        "content_hash": digest,
        "image_size": IMAGE_SIZE,
        "seed": SEED,
        "suites": {
            suite: {
                "pool": SUITE_POOL[suite],
                "generators": {
                    name: {
                        "family": specs[name].family,
                        "description": specs[name].description,
                        "n_real": counts[suite],
                        "n_fake": counts[suite],
                    }
                    for name in generators
                },
            }
            for suite, generators in DEMO_SUITES.items()
        },
        "photos": [name for name, _, _ in real.PHOTOS],
        "val_photos": list(real.VAL_PHOTOS),
        "built_with": {
            name: version(name) for name in ("numpy", "torch", "pillow", "scikit-image", "scikit-learn")
        },
    }
