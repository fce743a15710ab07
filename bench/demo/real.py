"""Real patches for the demo suites, cut from photographs that ship inside pip packages.

Sources: scikit-image's bundled sample photographs (the files inside the wheel, loaded without pooch or a
network) and scikit-learn's two sample images (china, flower). Greyscale photographs are repeated into
three channels.

Train/test split. Every photograph is cut into two halves along its longer side. One half (`"train"`)
feeds demo-train and demo-val, the other (`"test"`) feeds demo-gan and demo-diffusion; which half is which
alternates from photograph to photograph so that neither split always sees the left or the top. Each
half is cropped out as its own image *before* any resampling, so no filter tap of a test patch reads a
pixel of a train half, and vice versa. demo-val in turn uses only the train halves of `VAL_PHOTOS`, which
demo-train never uses, so validation patches are disjoint from training patches too. The three pools:

    train: train halves of every photograph except VAL_PHOTOS
    val:   train halves of VAL_PHOTOS
    test:  test halves of every photograph

Large photographs' halves are first brought (each on its own) to a short side of about
REFERENCE_SHORT_SIDE, so that a patch shows a part of the scene rather than a few blades of grass. A
patch: pick a half of the pool uniformly, pick a scale in SCALE_RANGE, take a square window of
`size / scale` pixels at a random (sub-pixel) position inside the half, resample it to `size` x `size`
with Pillow's Lanczos filter (antialiased, since it shrinks) and flip it left-right half of the time. All draws
come from the numpy Generator passed in, one patch after the other, so the first n patches of a stream do
not depend on how many are drawn.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

# (name, package, loader): every file is inside the installed wheel; see _load_photo.
PHOTOS: tuple[tuple[str, str, str], ...] = (
    ("astronaut", "skimage", "astronaut"),
    ("chelsea", "skimage", "chelsea"),
    ("coffee", "skimage", "coffee"),
    ("rocket", "skimage", "rocket"),
    ("motorcycle", "skimage", "stereo_motorcycle"),  # the left view only: the right one nearly repeats it
    ("hubble", "skimage", "hubble_deep_field"),
    ("retina", "skimage", "retina"),
    ("ihc", "skimage", "immunohistochemistry"),
    ("camera", "skimage", "camera"),
    ("moon", "skimage", "moon"),
    ("grass", "skimage", "grass"),
    ("gravel", "skimage", "gravel"),
    ("brick", "skimage", "brick"),
    ("coins", "skimage", "coins"),
    ("china", "sklearn", "china.jpg"),
    ("flower", "sklearn", "flower.jpg"),
)
VAL_PHOTOS = ("coffee", "flower", "gravel")
POOLS = ("train", "val", "test")

REFERENCE_SHORT_SIDE = 384
SCALE_RANGE = (0.5, 1.0)


@dataclass(frozen=True)
class Half:
    """One half of one photograph, cut out first and then brought to the reference size on its own (so no
    resampling ever crosses the cut)."""

    photo: str
    side: str  # "train" or "test"
    box: tuple[int, int, int, int]  # (left, top, right, bottom) in the photograph's pixels
    image: Image.Image


@dataclass(frozen=True)
class Window:
    """Where one patch comes from: a square of `size` source pixels at (x, y) in a half, maybe mirrored."""

    half: Half
    x: float
    y: float
    size: float
    flip: bool

    def cut(self, out_size: int) -> np.ndarray:
        """The patch as (out_size, out_size, 3) uint8."""
        # Pillow resamples only the box but reads the pixels around it for the filter's support (clamped
        # at the half's border), so the patch has no edge artefact and never sees the other half.
        box = (self.x, self.y, self.x + self.size, self.y + self.size)
        pixels = np.asarray(self.half.image.resize((out_size, out_size), Image.Resampling.LANCZOS, box=box))
        if self.flip:
            pixels = pixels[:, ::-1]
        return np.ascontiguousarray(pixels)

    def provenance(self) -> dict[str, str]:
        return {
            "photo": self.half.photo,
            "half": self.half.side,
            "x": f"{self.x:.3f}",
            "y": f"{self.y:.3f}",
            "window": f"{self.size:.3f}",
            "flip": str(int(self.flip)),
        }


def _load_photo(package: str, loader: str) -> np.ndarray:
    if package == "skimage":
        import skimage.data

        image = getattr(skimage.data, loader)()
        if loader == "stereo_motorcycle":
            image = image[0]
    else:
        # The file load_sample_image reads, opened the same way (with Pillow), without importing
        # scikit-learn, which takes seconds.
        spec = importlib.util.find_spec("sklearn")
        if spec is None or spec.origin is None:
            raise ModuleNotFoundError("scikit-learn is needed for the demo data's sample photographs")
        with Image.open(Path(spec.origin).parent / "datasets" / "images" / loader) as handle:
            image = np.array(handle.convert("RGB"))
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3].astype(np.uint8))


def _halves(index: int, name: str, image: np.ndarray) -> list[Half]:
    height, width = image.shape[:2]
    if width >= height:
        cut = width // 2
        boxes = [(0, 0, cut, height), (cut, 0, width, height)]
    else:
        cut = height // 2
        boxes = [(0, 0, width, cut), (0, cut, width, height)]
    sides = ["train", "test"] if index % 2 == 0 else ["test", "train"]
    reference = min(1.0, REFERENCE_SHORT_SIDE / min(height, width))
    halves = []
    for side, (left, top, right, bottom) in zip(sides, boxes, strict=True):
        cut_out = Image.fromarray(np.ascontiguousarray(image[top:bottom, left:right]))
        if reference < 1.0:
            size = (round(cut_out.width * reference), round(cut_out.height * reference))
            cut_out = cut_out.resize(size, Image.Resampling.LANCZOS)
        halves.append(Half(name, side, (left, top, right, bottom), cut_out))
    return halves


@functools.lru_cache(maxsize=1)
def all_halves() -> tuple[Half, ...]:
    """Both halves of every photograph, in PHOTOS order (loaded once per process)."""
    halves: list[Half] = []
    for index, (name, package, loader) in enumerate(PHOTOS):
        halves.extend(_halves(index, name, _load_photo(package, loader)))
    return tuple(halves)


def pool(name: str) -> tuple[Half, ...]:
    """The halves a pool draws from ("train", "val" or "test"); see the module docstring."""
    if name == "test":
        return tuple(h for h in all_halves() if h.side == "test")
    if name == "train":
        return tuple(h for h in all_halves() if h.side == "train" and h.photo not in VAL_PHOTOS)
    if name == "val":
        return tuple(h for h in all_halves() if h.side == "train" and h.photo in VAL_PHOTOS)
    raise ValueError(f"unknown pool {name!r}; expected one of {POOLS}")


def draw_window(halves: tuple[Half, ...], rng: np.random.Generator, out_size: int) -> Window:
    """One patch's window; always makes the same five draws from rng, in the same order."""
    half = halves[int(rng.integers(len(halves)))]
    width, height = half.image.size
    scale = max(rng.uniform(*SCALE_RANGE), out_size / min(width, height))  # the window must fit the half
    size = out_size / scale
    x = rng.uniform(0.0, width - size)
    y = rng.uniform(0.0, height - size)
    flip = bool(rng.random() < 0.5)
    return Window(half, x, y, size, flip)


def draw_windows(pool_name: str, rng: np.random.Generator, count: int, out_size: int) -> list[Window]:
    """`count` windows from one pool. Drawing is cheap and sequential (so it is repeatable); cutting the
    patches (`Window.cut`) is the slow part and may run in any order or thread."""
    halves = pool(pool_name)
    return [draw_window(halves, rng, out_size) for _ in range(count)]
