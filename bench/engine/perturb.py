"""Perturbations: named, parameterised, seeded transforms of a decoded image, applied before the protocol.

A perturbation is data: a frozen dataclass registered under a name, written as a spec string
``NAME[:ARG][:KEY=VALUE,...]`` (``jpeg:q=75``, ``blur:sigma=2``, ``resize:scale=0.5,back=1``,
``reencode:jpeg:q=95``, ``chain:social``). `parse` turns a spec into the object, `Perturbation.spec` gives
the canonical string back (every parameter, defaults included), which is what the score cache and
`run.json` record, so ``blur:sigma=2`` and ``blur:sigma=2.0`` share one cache entry.

Where it acts: on the RGB image right after ``Image.open(path).convert("RGB")`` and before the suite's
protocol (Resize((256, 256)) or native size with the even crop), to real and fake images alike
(`bench.engine.decode.decode_image`). That is how UnivFD's ``validate.py`` applies its blur and JPEG (on the PIL
image, before its crop) and how images reach a detector in the wild: degraded first, then preprocessed.

Determinism: the only random perturbation is ``noise``; its generator is seeded from SHA-256 of the
canonical spec and the image's path relative to its suite root (``key``), so a rerun, another machine or
another order of files gives the same pixels, and two files get different noise.

The perturbations (parameters and defaults in each class):
- ``jpeg:q=Q``: PIL's encoder, ``Image.save(format="JPEG", quality=Q)`` (4:2:0 chroma, PIL's default),
  re-decoded by PIL, as UnivFD's ``png2jpg``.
- ``jpeg-cv2:q=Q``: OpenCV's encoder and decoder (``cv2.imencode(".jpg", bgr, [IMWRITE_JPEG_QUALITY, Q])``),
  as CNNDetection's ``cv2_jpg``. Papers use both. Both write libjpeg's tables for Q; whether the pixels
  differ depends on the builds: with Pillow 13 and opencv-python-headless 5.0 (both bundle libjpeg-turbo,
  4:2:0) the files came out byte-identical in our checks, while other builds (e.g. OpenCV with IJG libjpeg,
  or another chroma default) give other pixels. Naming the encoder keeps a paper's setting reproducible.
- ``webp:q=Q``: PIL's WebP encoder at quality Q (lossy), re-decoded.
- ``blur:sigma=S``: Gaussian blur per channel, as ``scipy.ndimage.gaussian_filter`` with its defaults
  (truncate 4, so the kernel has 2*round_half_up(4*S)+1 taps per axis; borders mirrored with the edge
  pixel repeated, scipy's "reflect"), computed in float and rounded once. UnivFD and CNNDetection call the
  same filter but write each axis's pass into the uint8 image, truncating twice (up to ~2 grey levels
  darker); S=0 is the identity.
- ``resize:scale=F,back=0|1,interp=bilinear|bicubic|nearest|lanczos``: PIL resize to
  (round(W*F), round(H*F)), at least 1x1; with back=1 resized back to (W, H) with the same filter.
- ``crop:keep=F``: the centred crop of round(W*F) x round(H*F) (fraction F of each side kept), at offsets
  (W - w) // 2 and (H - h) // 2: an odd difference leaves the extra pixel on the right and bottom (a
  detector's own-protocol centre crop follows torchvision instead, whose offsets are rounded).
- ``noise:std=S``: additive Gaussian noise of standard deviation S on the 0-255 scale, rounded and clipped.
- ``gray``: PIL's ``convert("L")`` (ITU-R 601-2 luma) and back to three equal channels.
- ``reencode:jpeg:q=Q`` / ``reencode:png``: format equalisation, every image (real and fake) written in one
  format and read back. ``reencode:jpeg`` gives the pixels of ``jpeg`` at the same quality; ``reencode:png``
  is lossless and leaves the pixels unchanged, a control: a format shortcut lives in the pixels (JPEG
  blocks in one class), so only a lossy re-encode of both classes can remove it.
- ``chain:NAME``: a fixed multi-step pipeline from `CHAINS` (see there), each step one of the above.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from PIL import Image

from bench.errors import BenchError

PIL_FILTERS = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST,
               "lanczos": Image.LANCZOS}

REGISTRY: dict[str, type[Perturbation]] = {}


def register(name: str) -> Callable[[type[Perturbation]], type[Perturbation]]:
    def wrap(cls: type[Perturbation]) -> type[Perturbation]:
        cls.name = name
        REGISTRY[name] = cls
        return cls

    return wrap


@dataclass(frozen=True)
class Bound:
    """The values a numeric parameter may take: finite, within [low, high] (an end may be open or absent).
    Declared per perturbation (`Perturbation.bounds`) and checked when the perturbation is built, so a bad
    level is exit 2 before any image is decoded (a sweep builds all its levels first)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    why: str = ""
    """Why the range stops there, said with the refusal."""

    def text(self) -> str:
        low = "-inf" if self.low is None else _format_value(self.low)
        high = "inf" if self.high is None else _format_value(self.high)
        return f"{'(' if self.low_open or self.low is None else '['}{low}, {high}{')' if self.high_open or self.high is None else ']'}"

    def admits(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return not (self.high is not None and (value > self.high or (self.high_open and value == self.high)))


def _format_value(value: object) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


@dataclass(frozen=True)
class Perturbation:
    """Base class: subclasses are frozen dataclasses whose fields are the spec's parameters."""

    name: ClassVar[str] = ""
    positional: ClassVar[str | None] = None
    """The field written as a bare ``:ARG`` (reencode's format, chain's name), if any."""
    random: ClassVar[bool] = False
    bounds: ClassVar[dict[str, Bound]] = {}
    """Parameter -> the values it may take; every numeric parameter is also required to be finite."""
    max_scale: ClassVar[float] = 1.0
    """The most a perturbation can enlarge an image's side (`output_size` gives the exact size)."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            bound = self.bounds.get(f.name, Bound())
            if not bound.admits(value):
                why = f" ({bound.why})" if bound.why else ""
                raise BenchError(f"{self.name}: {f.name} must be a finite number in {bound.text()}, not "
                                 f"{_format_value(value)}{why}")
        self.check_values()

    def check_values(self) -> None:
        """Checks of non-numeric parameters (a choice among names); BenchError when wrong."""

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """The (width, height) this perturbation makes of an image of `size`, computed without touching
        pixels."""
        return size

    def largest_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """The largest (width, height) it allocates on the way (a resize there and back passes through the
        scaled size): the decoder checks it against the pixel limit before any pixel is touched."""
        return self.output_size(size)

    @property
    def enlarges(self) -> bool:
        """Whether it can make an image larger than it was (then the pixel limit applies to the result)."""
        width, height = self.largest_size((1000, 1000))
        return width * height > 1000 * 1000

    def __call__(self, img: Image.Image, key: str = "") -> Image.Image:
        """The perturbed copy of an RGB image; ``key`` (the image's relative path) seeds any randomness."""
        return self.apply(img, key).convert("RGB")

    def apply(self, img: Image.Image, key: str) -> Image.Image:
        raise NotImplementedError

    def warp_mask(self, mask: Image.Image) -> Image.Image:
        """The same change of geometry on a binary forgery mask (NEAREST), so that it stays on its image's
        pixels; the identity for perturbations that only change pixel values."""
        return mask

    @property
    def spec(self) -> str:
        parts = [self.name]
        named = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == self.positional:
                parts.append(_format_value(value))
            else:
                named.append(f"{f.name}={_format_value(value)}")
        if named:
            parts.append(",".join(named))
        return ":".join(parts)

    def __str__(self) -> str:
        return self.spec

    def rng(self, key: str) -> np.random.Generator:
        digest = hashlib.sha256(f"{self.spec}\0{key}".encode()).digest()
        return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise BenchError(message)


def _roundtrip(img: Image.Image, **save_options) -> Image.Image:
    buffer = io.BytesIO()
    img.save(buffer, **save_options)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        decoded.load()
        return decoded.convert("RGB")


@register("jpeg")
@dataclass(frozen=True)
class Jpeg(Perturbation):
    """JPEG at quality q with PIL's encoder (4:2:0), re-decoded by PIL."""

    q: int = 75
    bounds: ClassVar[dict[str, Bound]] = {"q": Bound(1, 100)}

    def apply(self, img: Image.Image, key: str) -> Image.Image:
        return _roundtrip(img, format="JPEG", quality=self.q)


@register("jpeg-cv2")
@dataclass(frozen=True)
class JpegCv2(Perturbation):
    """JPEG at quality q with OpenCV's encoder and decoder."""

    q: int = 75
    bounds: ClassVar[dict[str, Bound]] = {"q": Bound(1, 100)}

    def encode(self, img: Image.Image) -> bytes:
        """The JPEG file OpenCV writes (exposed so that tests can read its quantisation tables)."""
        import cv2

        bgr = np.ascontiguousarray(np.asarray(img.convert("RGB"))[:, :, ::-1])
        # the flag is IMWRITE_JPEG_QUALITY; passing another flag (or none) silently gives quality 95
        ok, data = cv2.imencode(".jpg", bgr, [int(cv2.IMWRITE_JPEG_QUALITY), int(self.q)])
        if not ok:
            raise ValueError("OpenCV could not encode the image as JPEG")
        return data.tobytes()

    def apply(self, img: Image.Image, key: str) -> Image.Image:
        import cv2

        bgr = cv2.imdecode(np.frombuffer(self.encode(img), np.uint8), cv2.IMREAD_COLOR)
        return Image.fromarray(np.ascontiguousarray(bgr[:, :, ::-1]))


@register("webp")
@dataclass(frozen=True)
class Webp(Perturbation):
    """Lossy WebP at quality q (PIL), re-decoded."""

    q: int = 80
    bounds: ClassVar[dict[str, Bound]] = {"q": Bound(1, 100)}

    def apply(self, img: Image.Image, key: str) -> Image.Image:
        return _roundtrip(img, format="WEBP", quality=self.q)


MAX_BLUR_SIGMA = 20.0
"""The widest blur (UnivFD's and CNNDetection's grids stop at sigma 4). Its time grows with sigma: the
kernel has 2*int(4*sigma+0.5)+1 taps a side; scipy's gaussian_filter on a 512x512 RGB float image took
0.2 s at sigma 4, 0.9 s at 20, 42 s at 1000 and 340 s at 10000 (2 shared cores, loaded)."""
MAX_RESIZE_SCALE = 100.0
"""The largest resize factor; an enlarged image must also stay under the pixel limit (`output_size`)."""


def blur_radius(sigma: float, truncate: float = 4.0) -> int:
    """Half-width of the kernel, scipy.ndimage's rule: int(truncate * sigma + 0.5)."""
    return int(truncate * float(sigma) + 0.5)


@register("blur")
@dataclass(frozen=True)
class Blur(Perturbation):
    """Gaussian blur per channel (scipy gaussian_filter, truncate 4: 2*int(4*sigma+0.5)+1 taps)."""

    sigma: float = 1.0
    bounds: ClassVar[dict[str, Bound]] = {"sigma": Bound(0, MAX_BLUR_SIGMA, why=(
        "the kernel has 2*int(4*sigma+0.5)+1 taps a side, so the time grows with sigma: about 40 s per "
        "512x512 image at sigma 1000; the field's grids stop at 4"))}

    def apply(self, img: Image.Image, key: str) -> Image.Image:
        if self.sigma == 0:
            return img
        from scipy.ndimage import gaussian_filter

        array = np.asarray(img, dtype=np.float32)  # float32: half the time of float64, far below 0.5 grey level
        # sigma 0 on the channel axis: each channel on its own
        blurred = gaussian_filter(array, sigma=(self.sigma, self.sigma, 0), mode="reflect", truncate=4.0)
        return Image.fromarray(np.clip(np.rint(blurred), 0, 255).astype(np.uint8))


def _scaled(size: tuple[int, int], factor: float) -> tuple[int, int]:
    return max(1, round(size[0] * factor)), max(1, round(size[1] * factor))



@register("resize")
@dataclass(frozen=True)
class Resize(Perturbation):
    """Resize by scale (PIL, interp), optionally back to the original size."""

    scale: float = 0.5
    back: bool = False
    interp: str = "bilinear"
    bounds: ClassVar[dict[str, Bound]] = {"scale": Bound(0, MAX_RESIZE_SCALE, low_open=True)}
    max_scale: ClassVar[float] = MAX_RESIZE_SCALE

    def check_values(self) -> None:
        _check(self.interp in PIL_FILTERS, f"resize: interp must be one of {', '.join(PIL_FILTERS)}, not {self.interp!r}")

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        return size if self.back else _scaled(size, self.scale)

    def largest_size(self, size: tuple[int, int]) -> tuple[int, int]:
        # with back=1 the image passes through the scaled size on its way back
        return max(size, _scaled(size, self.scale), key=lambda s: s[0] * s[1])

    def apply(self, img: Image.Image, key: str) -> Image.Image:
        out = img.resize(_scaled(img.size, self.scale), PIL_FILTERS[self.interp])
        return out.resize(img.size, PIL_FILTERS[self.interp]) if self.back else out

    def warp_mask(self, mask: Image.Image) -> Image.Image:
        return mask if self.back else mask.resize(_scaled(mask.size, self.scale), Image.NEAREST)


@register("crop")
@dataclass(frozen=True)
class Crop(Perturbation):
    """Centred crop keeping the fraction keep of each side."""

    keep: float = 0.8
    bounds: ClassVar[dict[str, Bound]] = {"keep": Bound(0, 1, low_open=True)}

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        return _scaled(size, self.keep)

    def apply(self, img: Image.Image, key: str) -> Image.Image:
        width, height = _scaled(img.size, self.keep)
        left, top = (img.size[0] - width) // 2, (img.size[1] - height) // 2
        return img.crop((left, top, left + width, top + height))

    def warp_mask(self, mask: Image.Image) -> Image.Image:
        return self.apply(mask, "")


@register("noise")
@dataclass(frozen=True)
class Noise(Perturbation):
    """Additive Gaussian noise, std on the 0-255 scale, seeded by spec and relative path."""

    std: float = 10.0
    random: ClassVar[bool] = True
    bounds: ClassVar[dict[str, Bound]] = {"std": Bound(0, 255, why="on the 0-255 scale; more saturates every pixel")}

    def apply(self, img: Image.Image, key: str) -> Image.Image:
        array = np.asarray(img, dtype=np.float32)
        noisy = array + self.std * self.rng(key).standard_normal(size=array.shape, dtype=np.float32)
        return Image.fromarray(np.clip(np.rint(noisy), 0, 255).astype(np.uint8))


@register("gray")
@dataclass(frozen=True)
class Gray(Perturbation):
    """Greyscale (ITU-R 601-2 luma) in three equal channels."""

    def apply(self, img: Image.Image, key: str) -> Image.Image:
        return img.convert("L")


@register("reencode")
@dataclass(frozen=True)
class Reencode(Perturbation):
    """Format equalisation: both classes written as jpeg (at q) or png and read back."""

    format: str = "jpeg"
    q: int = 95
    positional: ClassVar[str] = "format"
    bounds: ClassVar[dict[str, Bound]] = {"q": Bound(1, 100)}

    def check_values(self) -> None:
        _check(self.format in ("jpeg", "png"), f"reencode: format must be jpeg or png, not {self.format!r}")

    @property
    def spec(self) -> str:
        # PNG has no quality: leave it out so that reencode:png has one spelling
        return "reencode:png" if self.format == "png" else f"reencode:jpeg:q={self.q}"

    def apply(self, img: Image.Image, key: str) -> Image.Image:
        if self.format == "png":
            return _roundtrip(img, format="PNG")
        return _roundtrip(img, format="JPEG", quality=self.q)


@dataclass(frozen=True)
class ChainDefinition:
    steps: tuple[str, ...]
    description: str


CHAINS: dict[str, ChainDefinition] = {
    # Fixed parameters in the spirit of how photo-sharing services treat uploads (downscale to a maximum
    # side, then lossy JPEG). They are a documented, repeatable stand-in, not a measurement of any service.
    "social": ChainDefinition(
        ("fit:side=1080", "jpeg:q=85"),
        "long side at most 1080 px (bicubic, never enlarged), then PIL JPEG quality 85",
    ),
    # A shared image saved and shared again: smaller, compressed twice.
    "repost": ChainDefinition(
        ("resize:scale=0.75,interp=bicubic", "jpeg:q=80", "jpeg:q=90"),
        "resize by 0.75 (bicubic), PIL JPEG quality 80, then JPEG quality 90 again",
    ),
}


@register("fit")
@dataclass(frozen=True)
class Fit(Perturbation):
    """Downscale so that the long side is at most side px (bicubic), never enlarge: a platform's cap."""

    side: int = 1080
    bounds: ClassVar[dict[str, Bound]] = {"side": Bound(1)}

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        longest = max(size)
        return size if longest <= self.side else _scaled(size, self.side / longest)

    def apply(self, img: Image.Image, key: str) -> Image.Image:
        longest = max(img.size)
        if longest <= self.side:
            return img
        return img.resize(_scaled(img.size, self.side / longest), Image.BICUBIC)

    def warp_mask(self, mask: Image.Image) -> Image.Image:
        longest = max(mask.size)
        return mask if longest <= self.side else mask.resize(_scaled(mask.size, self.side / longest), Image.NEAREST)


@register("chain")
@dataclass(frozen=True)
class Chain(Perturbation):
    """A named fixed pipeline (CHAINS)."""

    chain: str = "social"
    positional: ClassVar[str] = "chain"

    def check_values(self) -> None:
        _check(self.chain in CHAINS, f"chain: unknown chain {self.chain!r}; known: {', '.join(CHAINS)}")

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        for step in self.steps:
            size = step.output_size(size)
        return size

    def largest_size(self, size: tuple[int, int]) -> tuple[int, int]:
        largest = size
        for step in self.steps:
            largest = max(largest, step.largest_size(size), key=lambda s: s[0] * s[1])
            size = step.output_size(size)
        return largest

    @property
    def steps(self) -> list[Perturbation]:
        return [parse(step) for step in CHAINS[self.chain].steps]

    def apply(self, img: Image.Image, key: str) -> Image.Image:
        for step in self.steps:
            # each step is seeded by its own spec and the path, as if applied alone
            img = step(img, key)
        return img

    def warp_mask(self, mask: Image.Image) -> Image.Image:
        for step in self.steps:
            mask = step.warp_mask(mask)
        return mask


def _convert(cls: type[Perturbation], field: dataclasses.Field, text: str) -> object:
    kind = field.type if isinstance(field.type, str) else field.type.__name__
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        if kind == "bool":
            if text.lower() in ("1", "true", "yes"):
                return True
            if text.lower() in ("0", "false", "no"):
                return False
            raise ValueError(text)
    except ValueError:
        raise BenchError(f"{cls.name}: {field.name} must be {kind}, not {text!r}") from None
    return text


def _split(spec: str) -> tuple[type[Perturbation], str | None, str]:
    """spec -> (class, positional argument or None, 'k=v,...' text)."""
    text = spec.strip()
    name, _, rest = text.partition(":")
    cls = REGISTRY.get(name.strip().lower())
    if cls is None:
        raise BenchError(f"unknown perturbation {name!r} in {spec!r}; known: {', '.join(sorted(REGISTRY))}")
    positional = None
    if cls.positional is not None and rest:
        head, _, tail = rest.partition(":")
        if "=" not in head:
            positional, rest = head.strip(), tail
    return cls, positional, rest


def parse_grid(spec: str) -> tuple[type[Perturbation], dict[str, list[str]]]:
    """``jpeg:q=100,90,80`` -> (Jpeg, {"q": ["100", "90", "80"]}): a token without ``=`` adds a value to
    the key before it. Keys are checked against the perturbation's parameters."""
    cls, positional, rest = _split(spec)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, list[str]] = {}
    if positional is not None:
        values[cls.positional] = [positional]
    current = None
    for token in (t.strip() for t in rest.split(",") if t.strip()):
        if "=" in token:
            current, _, value = (part.strip() for part in token.partition("="))
            if current not in fields:
                known = ", ".join(fields) or "none"
                raise BenchError(f"{cls.name}: unknown parameter {current!r} in {spec!r}; parameters: {known}")
            if current in values:
                raise BenchError(f"{cls.name}: parameter {current!r} given twice in {spec!r}")
            values[current] = [value]
        elif current is None:
            raise BenchError(f"cannot read {spec!r}: expected KEY=VALUE after '{cls.name}:'")
        else:
            values[current].append(token)
    return cls, values


def _build(cls: type[Perturbation], values: dict[str, str]) -> Perturbation:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    return cls(**{key: _convert(cls, fields[key], value) for key, value in values.items()})


def parse(spec: str | Perturbation | None) -> Perturbation | None:
    """One perturbation from its spec (None and "" and "none" mean none)."""
    if spec is None or isinstance(spec, Perturbation):
        return spec
    if spec.strip().lower() in ("", "none", "clean"):
        return None
    cls, values = parse_grid(spec)
    several = [key for key, options in values.items() if len(options) > 1]
    if several:
        raise BenchError(f"{spec!r} gives several values for {', '.join(several)}: one level here "
                         "(`bench sweep` takes grids)")
    return _build(cls, {key: options[0] for key, options in values.items()})


MILDER_WHEN_LARGER = frozenset({"q", "keep", "side"})
"""Parameters whose larger values are the milder perturbation: a sweep's axis runs high -> low for them,
so that worse is always to the right (tables and plots)."""


@dataclass(frozen=True)
class Grid:
    """The levels of one swept perturbation: the parameter that varies and one Perturbation per value."""

    family: str
    parameter: str | None
    levels: tuple[Perturbation, ...]

    def value(self, level: Perturbation) -> object:
        return getattr(level, self.parameter) if self.parameter else level.spec


# The field's grids (`bench sweep` without --perturb, or --perturb NAME alone). JPEG and blur are UnivFD's
# validate.py (--jpeg_quality "100, 90, 80, ... 30", --gaussian_sigma "0,1,2,3,4").
DEFAULT_GRIDS = {
    "jpeg": "jpeg:q=100,90,80,70,60,50,40,30",
    "blur": "blur:sigma=0,1,2,3,4",
    "resize": "resize:scale=0.5,0.75,1.5",
    "noise": "noise:std=5,10,20",
}


def parse_sweep(spec: str) -> Grid:
    """A sweep's ``--perturb``: a grid over at most one parameter (``jpeg:q=100,70,40``), a bare family
    name with a default grid (``jpeg``), or a single level (``gray``, ``chain:social``)."""
    text = spec.strip()
    if text.lower() in DEFAULT_GRIDS:
        text = DEFAULT_GRIDS[text.lower()]
    cls, values = parse_grid(text)
    several = [key for key, options in values.items() if len(options) > 1]
    if len(several) > 1:
        raise BenchError(f"{spec!r} varies {' and '.join(several)}: a sweep varies one parameter per --perturb")
    if not several:
        level = _build(cls, {key: options[0] for key, options in values.items()})
        return Grid(cls.name, None, (level,))
    parameter = several[0]
    levels = []
    for option in values[parameter]:
        fixed = {key: options[0] for key, options in values.items() if key != parameter}
        levels.append(_build(cls, {**fixed, parameter: option}))
    if len({level.spec for level in levels}) != len(levels):
        raise BenchError(f"{spec!r} lists a level twice")
    return Grid(cls.name, parameter, tuple(levels))


def describe() -> list[list[str]]:
    """[name, parameters with defaults, what it does, default sweep grid] per registered perturbation."""
    rows = []
    for name, cls in sorted(REGISTRY.items()):
        params = ", ".join(f"{f.name}={_format_value(f.default)}"
                           + (f" in {cls.bounds[f.name].text()}" if f.name in cls.bounds else "")
                           for f in dataclasses.fields(cls))
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        if name == "chain":
            doc = f"A named fixed pipeline: {', '.join(CHAINS)} (below)"
        rows.append([name, params or "-", doc, DEFAULT_GRIDS.get(name, "-")])
    return rows
