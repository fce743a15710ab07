"""Build (once) the synthetic local-forgery suites with masks under `<data_root>/demo-local-data/`.

    <data_root>/demo-local-data/manifest.json     content hash, counts, manipulations, the "synthetic" note
    <data_root>/demo-local-data/README.txt
    <data_root>/demo-local-data/<suite>/<manipulation>/0_real/<index>-<photo>.png
    <data_root>/demo-local-data/<suite>/<manipulation>/1_fake/<index>-<photo>.png
    <data_root>/demo-local-data/<suite>/<manipulation>/1_fake_masks/<index>-<photo>.png   (0 or 255, exact)

A fake is a real demo patch (bench.demo.real) in which one region (a rectangle, an ellipse or a free-form
blob, covering LOCAL_AREA of the image, anywhere) is replaced by the same patch re-synthesised by one of
the demo generators (bench.demo.generators): the rest of the image is the real patch, byte for byte. So
the only evidence of forgery is local, and the mask says exactly where it is. This mirrors the LAE
paper's setting (Du et al., CIKM 2020, arXiv 1909.05999): manipulated regions with pixel-wise masks, a
detector trained on one manipulation type and tested on unseen ones.

Manipulation types (one folder each; MANIPULATIONS below is the one place that defines them):
    demo-local-train, demo-local-val   tconv: stride-2 transposed-convolution region, hard paste,
                                       rectangles and ellipses (the one training manipulation)
    demo-local (test)                  tconv (seen), and unseen ones: tconv-blob (free-form regions),
                                       tconv-blend (feathered alpha blending), pixel-shuffle (another
                                       GAN up-sampler), autoencoder (a diffusion-style decoder)
A feathered region's mask marks the pixels where the fake's weight is at least one half.

Real patches come from the same pools as the other demo suites (train/val halves for the train and val
splits, test halves for the test suite). Deterministic (seeded per suite, manipulation and role), torch
single-threaded while synthesising, and rebuilt when this code or the code it uses changes.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
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

LOCAL_FOLDER = "demo-local-data"
"""Under the data root. Not `demo-local`: that is the test suite's folder name, which names the suite."""
FORMAT = 1
SEED = 20261202
LOCAL_AREA = (0.06, 0.35)
"""Fraction of the image a forged region covers (uniform in this range)."""
FEATHER_SIGMA = 3.0
"""Gaussian blur (pixels) of the blending weight for the `blend` manipulations."""
SEEN = "tconv"


@dataclass(frozen=True)
class Manipulation:
    generator: str
    """A bench.demo.generators name: what re-synthesises the region."""
    shapes: tuple[str, ...]
    """Region shapes drawn from, uniformly: rectangle, ellipse, blob."""
    blend: str = "paste"
    """`paste` (hard edge) or `feather` (alpha blending with a blurred weight)."""

    def describe(self) -> str:
        return f"{self.generator} region ({'/'.join(self.shapes)}), {self.blend}"


_TRAIN = Manipulation("tconv", ("rectangle", "ellipse"))
MANIPULATIONS: dict[str, Manipulation] = {
    "tconv": _TRAIN,
    "tconv-blob": Manipulation("tconv", ("blob",)),
    "tconv-blend": Manipulation("tconv", ("rectangle", "ellipse"), "feather"),
    "pixel-shuffle": Manipulation("pixel-shuffle", ("rectangle", "ellipse")),
    "autoencoder": Manipulation("autoencoder", ("rectangle", "ellipse")),
}
LOCAL_SUITES: dict[str, list[str]] = {
    "demo-local-train": ["tconv"],
    "demo-local-val": ["tconv"],
    "demo-local": ["tconv", "tconv-blob", "tconv-blend", "pixel-shuffle", "autoencoder"],
}
SUITE_POOL = {"demo-local-train": "train", "demo-local-val": "val", "demo-local": "test"}
DEFAULT_COUNTS = {"demo-local-train": 300, "demo-local-val": 60, "demo-local": 80}
"""Real images per manipulation folder; each folder holds as many fakes (and masks)."""
_SOURCES = ("local.py", "real.py", "generators.py", "staging.py")

README = """\
This folder holds synthetic local-forgery demo data with masks (bench.demo.local; not a paper benchmark).

Each fake is a real demo patch in which one region was replaced by a demo generator's re-synthesis of
the same patch; 1_fake_masks/ holds the exact mask of that region (255 = forged). Real images have no
mask (all zero). Train on demo-local-train (one manipulation: tconv regions, rectangles and ellipses,
hard paste) and test on demo-local, whose folders are the seen manipulation and unseen ones (other
region shapes, blending, generators). See bench/demo/local.py. Delete this folder to force a rebuild.
"""


def local_root(data_root: str | Path) -> Path:
    return Path(data_root) / LOCAL_FOLDER


def resolve_counts(counts: Mapping[str, int] | None = None) -> dict[str, int]:
    return overlay_counts(DEFAULT_COUNTS, counts, "local demo suite")


def content_hash(counts: Mapping[str, int] | None = None) -> str:
    return code_and_params_hash(_SOURCES, {"format": FORMAT, "seed": SEED, "counts": resolve_counts(counts)})


def is_current(root: Path, digest: str, counts: Mapping[str, int]) -> bool:
    manifest = read_manifest(root)
    if manifest is None or manifest.get("content_hash") != digest:
        return False
    for suite, folders in LOCAL_SUITES.items():
        for folder in folders:
            for label in ("0_real", "1_fake", "1_fake_masks"):
                if count_png(root / suite / folder / label) != counts[suite]:
                    return False
    return True


def ensure_local_data(data_root: str | Path, *, quiet: bool = False,
                      counts: Mapping[str, int] | None = None) -> Path:
    """Return `<data_root>/demo-local`, building it first when missing, incomplete or out of date (in a
    staging folder swapped into place under the data root's lock: bench.demo.staging.build_in_place)."""
    root = local_root(data_root)
    counts = resolve_counts(counts)
    digest = content_hash(counts)
    return build_in_place(root, is_current=lambda: is_current(root, digest, counts),
                          build=lambda staging: _build(staging, digest, counts),
                          what="local-forgery demo data with masks", quiet=quiet)


# ---- regions ----------------------------------------------------------------------------------------


def _stream(suite: str, folder: str, role: int) -> np.random.Generator:
    key = [SEED, zlib.crc32(suite.encode()), zlib.crc32(folder.encode()), role]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(key)))


def region(shape: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A bool [size, size] region of `shape` covering about a LOCAL_AREA fraction, at a random place."""
    area = rng.uniform(*LOCAL_AREA) * size * size
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    if shape == "rectangle":
        aspect = rng.uniform(0.5, 2.0)
        height = min(size - 2, max(4, int(round(np.sqrt(area / aspect)))))
        width = min(size - 2, max(4, int(round(area / height))))
        top = int(rng.integers(0, size - height + 1))
        left = int(rng.integers(0, size - width + 1))
        mask = np.zeros((size, size), dtype=bool)
        mask[top:top + height, left:left + width] = True
        return mask
    if shape == "ellipse":
        aspect = rng.uniform(0.5, 2.0)
        ry = np.sqrt(area / (np.pi * aspect))
        rx = ry * aspect
        cy = rng.uniform(min(ry, size / 2), max(size - ry, size / 2))
        cx = rng.uniform(min(rx, size / 2), max(size - rx, size / 2))
        return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
    if shape == "blob":
        # the union of 3 to 6 overlapping discs around a centre: an irregular, connected region
        n = int(rng.integers(3, 7))
        radius = np.sqrt(area / (np.pi * n)) * 1.3
        cy, cx = rng.uniform(radius * 1.5, size - radius * 1.5, size=2)
        mask = np.zeros((size, size), dtype=bool)
        for _ in range(n):
            angle = rng.uniform(0, 2 * np.pi)
            distance = rng.uniform(0, 1.2 * radius)
            r = radius * rng.uniform(0.6, 1.2)
            y, x = cy + distance * np.sin(angle), cx + distance * np.cos(angle)
            mask |= (yy - y) ** 2 + (xx - x) ** 2 <= r * r
        return mask
    raise ValueError(f"unknown region shape {shape!r}")


def _feather(mask: np.ndarray) -> np.ndarray:
    """A blending weight in [0, 1]: the mask blurred with a Gaussian of FEATHER_SIGMA pixels."""
    import torch
    import torch.nn.functional as F

    radius = int(3 * FEATHER_SIGMA)
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (taps / FEATHER_SIGMA) ** 2)
    kernel = kernel / kernel.sum()
    x = torch.from_numpy(mask.astype(np.float32))[None, None]
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))
    return x[0, 0].numpy()


def composite(real: np.ndarray, fake: np.ndarray, mask: np.ndarray, blend: str) -> tuple[np.ndarray, np.ndarray]:
    """(image, exact mask): `fake` inside the region, `real` outside; with `feather`, alpha-blended by the
    blurred region and the mask is where the fake's weight is at least 0.5."""
    if blend == "paste":
        return np.where(mask[..., None], fake, real), mask
    if blend == "feather":
        weight = _feather(mask)[..., None]
        mixed = weight * fake.astype(np.float32) + (1.0 - weight) * real.astype(np.float32)
        return np.clip(np.round(mixed), 0, 255).astype(np.uint8), weight[..., 0] >= 0.5
    raise ValueError(f"unknown blending {blend!r}")


# ---- the build ----------------------------------------------------------------------------------------


def _build(staging: Path, digest: str, counts: Mapping[str, int]) -> int:
    from bench.demo import real
    from bench.demo.build import IMAGE_SIZE
    from bench.demo.generators import CHUNK, Synthesiser

    synthesisers: dict[str, Synthesiser] = {}
    n_images = 0
    with single_threaded_torch():
        for suite, folders in LOCAL_SUITES.items():
            n = counts[suite]
            for folder in folders:
                manipulation = MANIPULATIONS[folder]
                out = staging / suite / folder
                for label in ("0_real", "1_fake", "1_fake_masks"):
                    (out / label).mkdir(parents=True)
                reals = real.draw_windows(SUITE_POOL[suite], _stream(suite, folder, 0), n, IMAGE_SIZE)
                for index, window in enumerate(reals):
                    save_png(window.cut(IMAGE_SIZE), out / "0_real" / f"{index:04d}-{window.half.photo}.png")
                sources = real.draw_windows(SUITE_POOL[suite], _stream(suite, folder, 1), n, IMAGE_SIZE)
                shapes_rng = _stream(suite, folder, 2)
                if manipulation.generator not in synthesisers:
                    # "demo" weights: the same generator as in the other demo suites
                    synthesisers[manipulation.generator] = Synthesiser(manipulation.generator, "demo")
                synthesiser = synthesisers[manipulation.generator]
                for first in range(0, n, CHUNK):
                    windows = sources[first:first + CHUNK]
                    patches = np.stack([w.cut(IMAGE_SIZE) for w in windows])
                    fakes = synthesiser.chunk(patches, f"local/{suite}/{folder}", first // CHUNK)
                    for offset, (window, patch, fake) in enumerate(zip(windows, patches, fakes, strict=True)):
                        shape = manipulation.shapes[int(shapes_rng.integers(len(manipulation.shapes)))]
                        image, mask = composite(patch, fake, region(shape, IMAGE_SIZE, shapes_rng), manipulation.blend)
                        name = f"{first + offset:04d}-{window.half.photo}.png"
                        save_png(image, out / "1_fake" / name)
                        save_png(mask.astype(np.uint8) * 255, out / "1_fake_masks" / name)
                n_images += 2 * n
    (staging / "README.txt").write_text(README, encoding="utf-8")
    manifest = {
        "note": "synthetic local-forgery demo data with masks (bench.demo.local; not a paper benchmark)",
        "format": FORMAT, "content_hash": digest, "image_size": IMAGE_SIZE, "seed": SEED,
        "seen_manipulation": SEEN,
        "suites": {suite: {"pool": SUITE_POOL[suite], "manipulations": {
            folder: {"description": MANIPULATIONS[folder].describe(), "n_real": counts[suite], "n_fake": counts[suite]}
            for folder in folders}} for suite, folders in LOCAL_SUITES.items()},
    }
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return n_images
