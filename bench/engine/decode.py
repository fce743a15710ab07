"""Decoding image files exactly as the paper's test code does, to uint8 pixels.

The LFM/NPR test scripts do `Image.open(path).convert("RGB")`, then torchvision `Resize((256, 256))`
(PIL bilinear on the PIL image), `ToTensor()` and ImageNet `Normalize`. Here the same steps stop at
uint8 (`decode_image`); the detector's `Preprocessing.normalize` does the rest on the model's device, with
the same arithmetic as ToTensor + Normalize.

Decisions, each matching what the official code gets:
- Any PIL mode goes through `convert("RGB")`, nothing else: alpha is dropped (not composited), palettes
  are expanded, CMYK uses PIL's conversion, EXIF orientation is ignored. 16-bit greyscale (`I;16`) is
  *clipped* by PIL to 0..255 (not rescaled): a typical 16-bit photo turns mostly white. That is what the
  official pipeline feeds its model, so it is what we feed ours.
- Native size (no resize): odd sizes lose their last row/column (top-left anchored), since the NPR
  residual needs even sizes; images under 2x2 after that are unusable. A resized image is always usable.
- Truncated files are skipped by default ("truncated image"); `load_truncated=True` loads them as the
  official code does (`ImageFile.LOAD_TRUNCATED_IMAGES = True`), set only for the duration of the decode.
- An alignment (`bench.engine.align`, ``--align jpeg96`` ...) re-encodes the RGB image right after
  ``convert("RGB")``, by label (``fakes-jpeg96`` touches fakes only); then a perturbation
  (`bench.engine.perturb`, e.g. ``jpeg:q=75``), when the spec has one, acts on it before the resize or
  native-size crop, seeded by the image's path relative to its suite (``key``).
- A crop policy (`bench.engine.protocol`: ``center-crop``, ``multicrop``) takes S x S crops at native
  resolution; with several crops the pixels are [N, 3, S, S] and the scoring loop averages the N logits.
  One that enlarges the image (``resize:scale=20``) is held to the pixel limit below as well, from the
  header's size: the image is skipped ("too large after resize:...") before any pixel is decoded, whatever
  the protocol, when the enlarged size is over the limit and over the file's.
- Native size also has limits of its own: an image with a side under what the model can take
  (`DecodeSpec.min_side`, from `model_min_side`: about 24 px for LFM) is skipped as "too small for the
  model", and one with more pixels than `DecodeSpec.max_pixels` (default `NATIVE_MAX_PIXELS`, 4096 x 4096;
  `$BENCH_MAX_PIXELS` changes it, and `bench data check --max-pixels` for a check) as "too large for native-size
  evaluation", judged from the header before anything is decoded: LFM needs about 250 bytes per pixel, so
  a 10000 x 10000 image would ask for 25 GB.
- Animated or multi-frame files (GIF, APNG, WebP, TIFF pages) are skipped ("animated image"): which
  frame a detector should see is not defined by the paper, and frame 0 of an animation is often a
  blank or partial one. A still GIF is an ordinary image.
- A broken symlink or a symlink loop is an unusable file with that reason, not a crash.
- Decompression bombs follow PIL: above `Image.MAX_IMAGE_PIXELS` PIL warns and the image is decoded
  (Python shows the warning; under `-W error` it becomes an error and the image is unusable); above twice
  that PIL refuses and the image is unusable.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import struct
import threading
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFile, UnidentifiedImageError

from bench.engine.align import Alignment
from bench.engine.files import file_problem
from bench.engine.perturb import Perturbation
from bench.engine.protocol import grid_offsets, protocol_name

NATIVE_MAX_PIXELS = 4096 * 4096
"""Default pixel limit of native-size evaluation (see the module docstring)."""

# What PIL raises on a damaged file, besides OSError: plugins parse headers with struct and raise
# SyntaxError ("broken PNG file"), ValueError or EOFError on inconsistent data.
_DECODE_ERRORS = (SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error)


class UnusableImage(Exception):
    """A file that cannot be fed to a detector; `reason` says why in a few words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class DecodedImage:
    pixels: torch.Tensor
    """uint8 [3, H, W], or [N, 3, S, S] for N crops (multicrop)."""
    original_size: tuple[int, int]
    """(width, height) of the file."""
    cropped_to_even: bool


_truncated_lock = threading.Lock()


@contextmanager
def _truncated_images(allowed: bool) -> Iterator[None]:
    """PIL reads the flag as a module global; set it only around this decode and restore it after.
    The lock keeps two such decodes in threads from restoring each other's value too early."""
    if not allowed:
        yield
        return
    with _truncated_lock:
        previous = ImageFile.LOAD_TRUNCATED_IMAGES
        ImageFile.LOAD_TRUNCATED_IMAGES = True
        try:
            yield
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = previous


def _bomb_reason(error: Image.DecompressionBombError) -> str:
    numbers = re.findall(r"\((\d+) pixels\).*?limit of (\d+)", str(error))
    if numbers:
        pixels, limit = numbers[0]
        return f"decompression bomb ({pixels} pixels > limit {limit})"
    return f"decompression bomb ({error})"


def _damage_reason(error: Exception) -> str:
    text = str(error)
    if "truncated" in text.lower():
        return "truncated image"
    return f"corrupt image ({type(error).__name__}: {text})" if text else f"corrupt image ({type(error).__name__})"


@contextmanager
def unusable_reasons() -> Iterator[None]:
    """Turn PIL's exceptions for a bad file into UnusableImage with a short reason (every reader of image
    files shares these reasons: decoding, `bench data check`, `bench audit`)."""
    try:
        yield
    except UnusableImage:
        raise
    except Image.DecompressionBombError as error:
        raise UnusableImage(_bomb_reason(error)) from error
    except Image.DecompressionBombWarning as error:  # only when warnings are errors (-W error)
        raise UnusableImage(f"decompression bomb ({error})") from error
    except UnidentifiedImageError as error:
        raise UnusableImage("not an image (cannot identify image file)") from error
    except (FileNotFoundError, PermissionError, IsADirectoryError) as error:
        raise UnusableImage(f"cannot read file ({error.strerror})") from error
    except OSError as error:
        raise UnusableImage(_damage_reason(error)) from error
    except _DECODE_ERRORS as error:
        raise UnusableImage(_damage_reason(error)) from error


def _check_not_empty(path: Path) -> None:
    """A regular file with some bytes (`bench.engine.files.file_problem`: FIFOs, devices, broken or
    looping symlinks are refused before anything opens them)."""
    problem = file_problem(path)
    if problem is not None:
        raise UnusableImage(problem)
    with unusable_reasons():
        if os.stat(path).st_size == 0:
            raise UnusableImage("empty file")


def default_max_pixels() -> int | None:
    """`$BENCH_MAX_PIXELS` (a number of pixels, or `none` for no limit), else NATIVE_MAX_PIXELS."""
    from bench import settings

    text = settings.max_pixels_text()
    if not text:
        return NATIVE_MAX_PIXELS
    return parse_max_pixels(text)


def parse_max_pixels(text: str) -> int | None:
    """`16777216`, `4096x4096` or `none` -> a pixel limit (None: no limit)."""
    from bench.errors import BenchError

    value = text.strip().lower()
    if value == "none":
        return None
    try:
        if "x" in value:
            width, height = value.split("x")
            pixels = int(width) * int(height)
        else:
            pixels = int(value)
    except ValueError as error:
        raise BenchError(f"max pixels {text!r}: expected a number of pixels, WxH or none") from error
    if pixels < 4:
        raise BenchError(f"max pixels {text!r}: must be at least 4 (2x2)")
    return pixels


def _frames(img: Image.Image) -> int:
    return int(getattr(img, "n_frames", 1) or 1)


def _check_limits(size: tuple[int, int], frames: int, resize: int | None, center_crop: int | None,
                  max_pixels: int | None, crop: int | None = None) -> None:
    """The checks a file's header can answer before its pixels are decoded."""
    if frames > 1:
        raise UnusableImage(f"animated image ({frames} frames); only still images are scored: "
                            "save the frame to score as a PNG")
    width, height = size
    bounded = resize is not None or center_crop is not None or crop is not None  # the model sees a bounded size
    if not bounded and max_pixels is not None and width * height > max_pixels:
        raise UnusableImage(
            f"too large for native-size evaluation ({width}x{height} = {width * height / 1e6:.1f} MP > "
            f"limit {max_pixels / 1e6:.1f} MP); raise the limit with $BENCH_MAX_PIXELS (a number of pixels, WxH, or none)"
        )


def _check_perturbed_size(size: tuple[int, int], perturbation: Perturbation, max_pixels: int | None) -> None:
    """A perturbation that enlarges the image (`resize:scale=20`) is held to the pixel limit too, judged
    from the header before anything is decoded: the native-size limit applies to what the model sees, and
    under any protocol no perturbation may allocate an image larger than both the file and the limit."""
    if max_pixels is None:
        return
    width, height = perturbation.largest_size(size)
    if width * height > max_pixels and width * height > size[0] * size[1]:
        raise UnusableImage(
            f"too large after {perturbation.spec} ({size[0]}x{size[1]} would become {width}x{height} = "
            f"{width * height / 1e6:.3g} MP > limit {max_pixels / 1e6:.3g} MP); raise the limit with "
            "$BENCH_MAX_PIXELS (a number of pixels, WxH, or none)"
        )


def _check_min_side(size: tuple[int, int], min_side: int, original: tuple[int, int]) -> None:
    if min(size) < min_side:
        raise UnusableImage(f"too small for the model ({original[0]}x{original[1]}; "
                            f"it needs at least {min_side} px a side)")


def model_min_side(model: torch.nn.Module, long_side: int = 256) -> int:
    """The smallest side (even, in pixels) the model runs on when the other side is `long_side`: zeros
    probed at sides 2, 4, 8, ... until one runs, then bisected (the models here only get more able with
    size), so the probes stay small and cheap. Sizes a model refuses raise a RuntimeError in a convolution
    or pooling ("Kernel size can't be greater than actual input size") or a ValueError (Top-K needs K
    positions)."""
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")

    def runs(side: int) -> bool:
        try:
            with torch.inference_mode():
                for shape in ((side, long_side), (long_side, side)):
                    model(torch.zeros(1, 3, *shape, device=device))
        except (RuntimeError, ValueError):
            return False
        return True

    was_training = model.training
    model.eval()
    try:
        fails, side = 0, 2
        while not runs(side):
            if side >= long_side:
                return long_side
            fails, side = side, min(2 * side, long_side)
        while side - fails > 2:  # fails < edge <= side, in steps of 2 px
            middle = (fails + side) // 4 * 2
            if runs(middle):
                side = middle
            else:
                fails = middle
        return side
    finally:
        model.train(was_training)


def _to_uint8_chw(img: Image.Image) -> torch.Tensor:
    # as torchvision's pil_to_tensor, but contiguous CHW (the batch is stacked from it anyway)
    array = np.asarray(img)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


_PIL_FILTERS = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST,
                "lanczos": Image.LANCZOS}


@dataclass(frozen=True)
class DecodeSpec:
    """Everything that decides the uint8 pixels of a file: the suite's protocol (resize) joined with the
    detector's preprocessing (interpolation, even crop, its own centre crop) and the run's options.
    Detectors whose specs are equal share one decode of each image."""

    resize: int | None = 256
    """Resize((resize, resize)) as the paper's test code; None = native size."""
    interpolation: str = "bilinear"
    even_crop: bool = True
    center_crop: int | None = None
    """A centre crop of this square size after the resize (a detector's own protocol, e.g. UnivFD)."""
    load_truncated: bool = False
    perturbation: Perturbation | None = None
    """Applied to the RGB image before the resize/crop (`bench.engine.perturb`)."""
    min_side: int = 2
    """Decoded images with a side under this are unusable ("too small for the model", `model_min_side`)."""
    max_pixels: int | None = NATIVE_MAX_PIXELS
    """Native size only: files with more pixels are unusable ("too large for native-size evaluation")."""
    align: Alignment | None = None
    """Applied by label to the RGB image first (`bench.engine.align`); recorded apart in the cache key."""
    crop: int | None = None
    """A resolution policy's crop side at native resolution (center-crop, multicrop), before `center_crop`."""
    crops: int = 1
    """How many crops of `crop` (multicrop: a k x k grid whose logits are averaged)."""

    @classmethod
    def for_detector(cls, resize: int | None, preprocessing, *, own_protocol: bool = False,
                     load_truncated: bool = False, perturbation: Perturbation | None = None,
                     min_side: int = 2, max_pixels: int | None = NATIVE_MAX_PIXELS,
                     resolution=None, align: Alignment | None = None) -> DecodeSpec:
        """The suite's protocol (its resize, or `resolution`, a `bench.engine.protocol.Resolution`) or,
        with ``own_protocol``, the detector's own."""
        policy_crop, crops = None, 1
        if resolution is not None:
            resize, policy_crop, crops = resolution.resize, resolution.crop, resolution.crops
        if own_protocol and (preprocessing.own_resize is not None or preprocessing.own_crop is not None):
            resize, crop = preprocessing.own_resize, preprocessing.own_crop
            policy_crop, crops = None, 1
        else:
            crop = None
        if crop is None and preprocessing.input_size is not None:
            crop = preprocessing.input_size  # a model that takes one size only (a ViT): a centre crop to it last
        return cls(resize=resize, interpolation=preprocessing.interpolation, even_crop=preprocessing.even_crop,
                   center_crop=crop, load_truncated=load_truncated, perturbation=perturbation,
                   min_side=min_side, max_pixels=max_pixels, align=align, crop=policy_crop, crops=crops)

    @property
    def protocol(self) -> str:
        """The resolution policy's name as the cache key and run.json record it (resize256 and native as
        before; the crop policies with their parameters)."""
        if self.crop is None:
            return protocol_name(self.resize)
        if self.crops == 1:
            return f"center-crop:size={self.crop}"
        return f"multicrop:n={self.crops},size={self.crop}"

    def key_fields(self) -> dict:
        """The spec as the cache key records it under "decode": the fields that existed before alignment and
        crop policies, plus those only when they are not at their defaults, so every earlier key is unchanged
        (the alignment goes into the key on its own, see bench.engine.runner)."""
        fields = dataclasses.asdict(self)
        fields.pop("align")
        for name, default in (("crop", None), ("crops", 1)):
            if fields[name] == default:
                fields.pop(name)
        return fields

    def decode(self, path: str | os.PathLike, key: str | None = None, label: int | None = None) -> DecodedImage:
        """``key``: the path relative to the suite root, which seeds a random perturbation or alignment;
        ``label`` (0 real, 1 fake) chooses what an alignment does."""
        return decode_image(path, self.resize, self.even_crop, self.load_truncated,
                            interpolation=self.interpolation, center_crop=self.center_crop,
                            perturbation=self.perturbation, key=key, min_side=self.min_side,
                            max_pixels=self.max_pixels, align=self.align, label=label, crop=self.crop,
                            crops=self.crops)

    def decode_mask(self, path: str | os.PathLike | None, image_size: tuple[int, int]) -> torch.Tensor:
        """The mask of an image of `image_size` (width, height) under this spec: bool [H, W]; see
        `decode_mask`."""
        return decode_mask(path, image_size, self.resize, self.even_crop, self.center_crop, self.perturbation)

    def decode_mask_kind(self, path: str | os.PathLike, image_size: tuple[int, int]) -> tuple[torch.Tensor, str]:
        """`decode_mask` with what the file held (a key of MASK_KINDS), for the callers that warn about it."""
        binary, kind = read_mask(path, image_size)
        return mask_geometry(binary, self.resize, self.even_crop, self.center_crop, self.perturbation), kind


def _center_crop(img: Image.Image, size: int) -> Image.Image:
    """torchvision's CenterCrop on a PIL image: the same offsets (rounded), padding with black when the
    image is smaller than the crop."""
    width, height = img.size
    if width < size or height < size:
        padded = Image.new(img.mode, (max(width, size), max(height, size)))
        padded.paste(img, ((max(width, size) - width) // 2, (max(height, size) - height) // 2))
        img, (width, height) = padded, padded.size
    top = int(round((height - size) / 2.0))
    left = int(round((width - size) / 2.0))
    return img.crop((left, top, left + size, top + size))


def decode_image(
    path: str | os.PathLike, resize: int | None, even_crop: bool = True, load_truncated: bool = False, *,
    interpolation: str = "bilinear", center_crop: int | None = None,
    perturbation: Perturbation | None = None, key: str | None = None, min_side: int = 2,
    max_pixels: int | None = NATIVE_MAX_PIXELS, align: Alignment | None = None, label: int | None = None,
    crop: int | None = None, crops: int = 1,
) -> DecodedImage:
    """One file -> uint8 [3, H, W] (or [N, 3, S, S] for N crops) under the test preprocessing; raises
    UnusableImage. ``align`` re-encodes the RGB image by ``label`` first, then ``perturbation`` acts on it,
    both before the resize; ``key`` (the relative path) seeds them."""
    for transform in (perturbation, align):
        if transform is not None and transform.random and key is None:
            # the file's absolute path would give other noise on another machine or data root
            raise ValueError(f"{transform.spec} is random: decode needs the image's relative path as key")
    path = Path(path)
    _check_not_empty(path)
    with unusable_reasons(), Image.open(path) as img:
        _check_limits(img.size, _frames(img), resize, center_crop, max_pixels, crop)
        if perturbation is not None:
            _check_perturbed_size(img.size, perturbation, max_pixels)
        with _truncated_images(load_truncated):
            img.load()  # decode now: a damaged file must fail here, not later inside a batch
        original_size = img.size
        try:
            rgb = img if img.mode == "RGB" else img.convert("RGB")
        except ValueError as error:
            raise UnusableImage(f"unsupported image mode {img.mode}") from error
        aligning = None if align is None else align.transform_for(label, key or "")
        if aligning is not None:
            rgb = aligning(rgb, key or "")  # the file as if published re-encoded: first of all
        if perturbation is not None:
            rgb = perturbation(rgb, key or "")  # before the protocol, so the geometry sees its size
        if crop is not None:
            views = []
            for piece in grid_crops(rgb, crop, crops):
                piece, cropped = _geometry(piece, resize, even_crop, interpolation, center_crop)
                _check_min_side(piece.size, min_side, original_size)
                views.append(_to_uint8_chw(piece))
            pixels = views[0] if crops == 1 else torch.stack(views)
            return DecodedImage(pixels, original_size, cropped)
        rgb, cropped = _geometry(rgb, resize, even_crop, interpolation, center_crop)
        _check_min_side(rgb.size, min_side, original_size)
        pixels = _to_uint8_chw(rgb)
    return DecodedImage(pixels, original_size, cropped)


def grid_crops(img: Image.Image, size: int, count: int) -> list[Image.Image]:
    """`count` (= k*k) crops of size x size at native resolution on a k x k grid, row by row from the
    top-left (bench.engine.protocol); an image smaller than `size` is first padded as CenterCrop pads."""
    img = _pad_to(img, size)
    width, height = img.size
    side = math.isqrt(count)
    return [img.crop((left, top, left + size, top + size))
            for top in grid_offsets(height, size, side) for left in grid_offsets(width, size, side)]


def _pad_to(img: Image.Image, size: int) -> Image.Image:
    """Pad with black, centred, so that both sides are at least `size` (torchvision CenterCrop's padding)."""
    width, height = img.size
    if width >= size and height >= size:
        return img
    padded = Image.new(img.mode, (max(width, size), max(height, size)))
    padded.paste(img, ((max(width, size) - width) // 2, (max(height, size) - height) // 2))
    return padded


def _geometry(img: Image.Image, resize: int | None, even_crop: bool, interpolation: str,
              center_crop: int | None) -> tuple[Image.Image, bool]:
    """The protocol's resize or even crop, then a centre crop: one function for images and their masks,
    so that a mask lands on the pixels of its image. Returns (image, cropped to even?)."""
    original_size = img.size
    cropped = False
    if resize is not None:
        # torchvision Resize((h, w)) on a PIL image is img.resize((w, h), BILINEAR), and it returns
        # the image untouched when it already has that size (PIL would return an equal copy)
        if img.size != (resize, resize):
            img = img.resize((resize, resize), _PIL_FILTERS[interpolation])
    else:
        width, height = original_size
        if even_crop and (width % 2 or height % 2):
            width, height = width - width % 2, height - height % 2
            cropped = True
        if width < 2 or height < 2:
            raise UnusableImage(f"too small ({original_size[0]}x{original_size[1]})")
        if cropped:
            img = img.crop((0, 0, width, height))  # keep the top-left, drop the last row/column
    if center_crop is not None:
        img = _center_crop(img, center_crop)
    return img, cropped


MASK_THRESHOLD = 127
"""A mask pixel above this is forged (`binarise_mask`: in its brightest channel; 0/1 masks are read apart)."""

MASK_KINDS = {
    "0/255": "0/255 grey",
    "0/1": "valued 0/1 (read as forged where 1, as a 0/255 mask is where 255)",
    "empty": "all zero (no forged pixel: its pixel AUC is undefined and its energy and pointing 0)",
    "colour": "in colour (read as forged where its brightest channel is above 127)",
    "levels": "grey levels other than 0 and 255 (read as forged above 127)",
}
"""What a mask file held (`binarise_mask`), in words; all but 0/255 grey are warned about."""


def binarise_mask(img: Image.Image) -> tuple[np.ndarray, str]:
    """(forged: bool [H, W], kind) of a mask image, by the rule docs/conventions.md states:

    - the value of a pixel is its brightest channel (colour masks, palettes and alpha-free RGB alike: a red
      region on black is forged, where `convert("L")` would read pure red as 76 and drop it); 16-bit and
      float greys are read as PIL's `convert("L")` gives them;
    - a mask whose values are only 0 and 1 is a 0/1 mask: forged where 1 (the same region as the 0/255
      mask it stands for);
    - any other mask is forged where the value is above MASK_THRESHOLD (127).
    `kind` (a key of MASK_KINDS) says which case it was, and "empty" when no pixel is forged."""
    if img.mode in ("RGB", "RGBA", "RGBX", "P", "PA", "LA", "CMYK", "YCbCr", "LAB", "HSV"):
        rgb = np.asarray(img.convert("RGB"))
        values = rgb.max(axis=2)
        colour = bool((rgb != rgb[:, :, :1]).any())
    else:
        values = np.asarray(img.convert("L"))
        colour = False
    top = int(values.max()) if values.size else 0
    if top == 0:
        return np.zeros(values.shape, dtype=bool), "empty"
    if top == 1:
        return values == 1, "0/1"
    forged = values > MASK_THRESHOLD
    if not forged.any():
        return forged, "empty"
    if colour:
        return forged, "colour"
    return forged, "0/255" if bool(((values == 0) | (values == 255)).all()) else "levels"


def read_mask(path: str | os.PathLike, image_size: tuple[int, int]) -> tuple[np.ndarray, str]:
    """A mask file -> (forged: bool [H, W] at the file's size, kind); raises UnusableImage for a file that
    cannot be read (only regular files are) or whose size is not its image's."""
    path = Path(path)
    _check_not_empty(path)
    with unusable_reasons(), Image.open(path) as img:
        img.load()
        if img.size != tuple(image_size):
            raise UnusableImage(f"mask is {img.size[0]}x{img.size[1]}, its image {image_size[0]}x{image_size[1]}")
        return binarise_mask(img)


def decode_mask(path: str | os.PathLike | None, image_size: tuple[int, int], resize: int | None,
                even_crop: bool = True, center_crop: int | None = None,
                perturbation: Perturbation | None = None) -> torch.Tensor:
    """A forgery mask -> bool [H, W] on the pixels its image decodes to under the same protocol.

    `image_size` is the (width, height) of the image file; `path=None` (a real image, or a fake without
    a mask) gives all zeros. The mask is binarised first and resized with NEAREST, so it stays binary;
    the even crop and the centre crop are the image's. Raises UnusableImage for an unreadable mask or one
    whose size is not the image's. A perturbation's change of geometry (resize, crop) is applied to the
    mask too. Binarised by `binarise_mask`'s rule."""
    if path is None:
        binary = np.zeros((image_size[1], image_size[0]), dtype=bool)
    else:
        binary, _ = read_mask(path, image_size)
    return mask_geometry(binary, resize, even_crop, center_crop, perturbation)


def mask_geometry(binary: np.ndarray, resize: int | None, even_crop: bool = True, center_crop: int | None = None,
                  perturbation: Perturbation | None = None) -> torch.Tensor:
    """A binarised mask (bool [H, W] at its file's size) through its image's geometry: the perturbation's
    (`warp_mask`), then the protocol's resize or even crop and centre crop, with NEAREST so that it stays
    binary."""
    mask = Image.fromarray(np.asarray(binary, dtype=np.uint8) * 255)
    if perturbation is not None:
        mask = perturbation.warp_mask(mask)
    mask, _ = _geometry(mask, resize, even_crop, "nearest", center_crop)
    return torch.from_numpy(np.asarray(mask) > MASK_THRESHOLD)


def check_image(path: str | os.PathLike, resize: int | None = None, full: bool = False, *,
                min_side: int = 2, max_pixels: int | None = NATIVE_MAX_PIXELS) -> tuple[int, int]:
    """A fast usability check for `bench data check`: open + verify (PNG checksums, headers), and the
    limits `bench run` applies (animation, native-size pixel limit, the model's smallest side).

    `verify()` cannot see every problem (a truncated JPEG passes) and flags some a decoder shrugs off
    (a PNG missing its end chunk), so when it fails, and always with `full=True`, the file is decoded
    as `bench run` would and that decides. Returns (width, height); raises UnusableImage."""
    path = Path(path)
    limits = {"min_side": min_side, "max_pixels": max_pixels}
    if full:
        return decode_image(path, resize, **limits).original_size
    _check_not_empty(path)
    with unusable_reasons(), Image.open(path) as img:
        size = img.size
        _check_limits(size, _frames(img), resize, None, max_pixels)
        try:
            img.verify()
        except (OSError, *_DECODE_ERRORS):
            return decode_image(path, resize, **limits).original_size
    if resize is None:
        even = (size[0] - size[0] % 2, size[1] - size[1] % 2)
        if min(even) < 2:
            raise UnusableImage(f"too small ({size[0]}x{size[1]})")
        _check_min_side(even, min_side, size)
    return size


class ImageDataset(torch.utils.data.Dataset):
    """(path, label) items -> decoded samples; a bad file gives `pixels=None` and a reason, never raises."""

    def __init__(self, items: Sequence[tuple[Path, int]], spec: DecodeSpec,
                 keys: Sequence[str] | None = None) -> None:
        """``keys``: each item's path relative to its suite root, which seeds a random perturbation."""
        self.items = list(items)
        self.spec = spec
        self.keys = None if keys is None else list(keys)
        if self.keys is not None and len(self.keys) != len(self.items):
            raise ValueError(f"{len(self.keys)} keys for {len(self.items)} items")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        path = self.items[index][0]
        try:
            decoded = self.spec.decode(path, None if self.keys is None else self.keys[index],
                                       label=self.items[index][1])
        except UnusableImage as error:
            return {"index": index, "pixels": None, "reason": error.reason, "cropped": False}
        return {"index": index, "pixels": decoded.pixels, "reason": None, "cropped": decoded.cropped_to_even}


@dataclass
class Batch:
    groups: list[tuple[list[int], torch.Tensor]] = field(default_factory=list)
    """(dataset indices, uint8 [B, 3, H, W]) per image size, in order of first appearance."""
    failed: list[tuple[int, str]] = field(default_factory=list)
    """(dataset index, reason) for each file that could not be used."""
    cropped: list[int] = field(default_factory=list)
    """Dataset indices of the images cropped to an even size."""

    def pin_memory(self) -> Batch:
        # DataLoader(pin_memory=True) calls this on custom batch types
        return Batch([(i, t.pin_memory()) for i, t in self.groups], self.failed, self.cropped)


def collate_by_size(samples: Sequence[dict]) -> Batch:
    """Group a batch's decoded samples by (H, W) so that native-size suites with mixed sizes stack."""
    by_size: dict[tuple[int, int], tuple[list[int], list[torch.Tensor]]] = {}
    batch = Batch()
    for sample in samples:
        if sample["pixels"] is None:
            batch.failed.append((sample["index"], sample["reason"]))
            continue
        if sample["cropped"]:
            batch.cropped.append(sample["index"])
        indices, tensors = by_size.setdefault(tuple(sample["pixels"].shape[1:]), ([], []))
        indices.append(sample["index"])
        tensors.append(sample["pixels"])
    batch.groups = [(indices, torch.stack(tensors)) for indices, tensors in by_size.values()]
    return batch
