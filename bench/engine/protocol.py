"""Per-suite test preprocessing: the resolution policy a suite is evaluated under, declared, not implied.

`resize256`: PIL RGB -> Resize((256, 256)) with PIL bilinear -> ToTensor -> Normalize (LFM/NPR test.py),
the paper's protocol.
`native`: no resize (GANGen-Detection in the paper, the demo suites); odd sizes are cropped to even by
dropping the last row/column, because the NPR residual (and the official code) cannot take odd sizes.
`center-crop[:size=S]`: the centre S x S pixels at native resolution (torchvision's CenterCrop: an image
smaller than S is padded with black to S first), so every detector sees the same input size without the
resampling that resize256 adds to the fakes' and reals' traces alike. Default S = 256.
`multicrop[:n=N,size=S]`: N crops of S x S at native resolution on a k x k grid (N = k*k; the first crop at
the top-left corner, the last at the bottom-right, evenly spaced between, so n=4 is the four corners and
n=9 adds the edge midpoints and the centre), padded as center-crop when smaller; the image's logit is the
mean of its crops' logits. Default n=9, size=256.

Every suite declares its authors' policy (bench.engine.suites: `Suite.resolution`); `--resolution` evaluates
any suite under another one, and run.json records the policy per suite. The names `resize256` and `native`
are the cache key's protocol field as before, so caches written before these policies existed are reused.
Normalisation happens on the model's device (bench.engine.inference) from uint8 pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.errors import BenchError

PROTOCOLS = ("resize256", "native")
"""What `bench predict --protocol` and the explanations take (whole images)."""
RESOLUTION_POLICIES = ("resize256", "native", "center-crop", "multicrop")
DEFAULT_CROP = 256
DEFAULT_CROPS = 9


def protocol_resize(protocol: str) -> int | None:
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    return 256 if protocol == "resize256" else None


def protocol_name(resize: int | None) -> str:
    return "native" if resize is None else f"resize{resize}"


@dataclass(frozen=True)
class Resolution:
    """A resolution policy: how an image's geometry is brought to the model."""

    name: str
    size: int = DEFAULT_CROP
    """The crop side (center-crop, multicrop)."""
    n: int = 1
    """The number of crops (multicrop)."""

    @property
    def resize(self) -> int | None:
        return 256 if self.name == "resize256" else None

    @property
    def crop(self) -> int | None:
        return self.size if self.name in ("center-crop", "multicrop") else None

    @property
    def crops(self) -> int:
        return self.n if self.name == "multicrop" else 1

    @property
    def spec(self) -> str:
        """The canonical spelling (every parameter), recorded in run.json and the cache key."""
        if self.name == "center-crop":
            return f"center-crop:size={self.size}"
        if self.name == "multicrop":
            return f"multicrop:n={self.n},size={self.size}"
        return self.name


def resolution_of_resize(resize: int | None) -> Resolution:
    """The policy a suite's `resize` (256 or None) stands for."""
    if resize not in (None, 256):
        raise ValueError(f"no resolution policy resizes to {resize}")
    return Resolution("resize256" if resize == 256 else "native")


def parse_resolution(text: str) -> Resolution:
    """`resize256`, `native`, `center-crop[:size=S]`, `multicrop[:n=N,size=S]` -> a Resolution; anything else
    is a usage error listing the policies."""
    name, _, rest = str(text).strip().lower().partition(":")
    if name not in RESOLUTION_POLICIES:
        raise BenchError(f"--resolution: unknown policy {text!r}; known: {', '.join(RESOLUTION_POLICIES)} "
                         "(center-crop[:size=S], multicrop[:n=N,size=S])")
    allowed = {"center-crop": ("size",), "multicrop": ("n", "size")}.get(name, ())
    values = {"size": DEFAULT_CROP, "n": DEFAULT_CROPS if name == "multicrop" else 1}
    for token in (t.strip() for t in rest.split(",") if t.strip()):
        key, _, value = (part.strip() for part in token.partition("="))
        if key not in allowed:
            raise BenchError(f"--resolution {text}: {name} takes {', '.join(allowed) or 'no parameters'}, not {key!r}")
        try:
            values[key] = int(value)
        except ValueError:
            raise BenchError(f"--resolution {text}: {key} must be a whole number, not {value!r}") from None
    if values["size"] < 2 or values["size"] % 2:
        raise BenchError(f"--resolution {text}: size must be an even number of pixels, at least 2")
    if name == "multicrop":
        side = math.isqrt(values["n"])
        if values["n"] < 1 or side * side != values["n"]:
            raise BenchError(f"--resolution {text}: n must be a square number of crops (1, 4, 9, 16, ...), "
                             f"laid out on a k x k grid")
    return Resolution(name, values["size"], values["n"])


def grid_offsets(length: int, size: int, count: int) -> list[int]:
    """Where `count` crops of `size` start along a side of `length` (>= size): evenly spaced from 0 to
    length - size; one crop is centred as torchvision's CenterCrop rounds it."""
    if count == 1:
        return [int(round((length - size) / 2.0))]
    return [int(round(i * (length - size) / (count - 1))) for i in range(count)]
