"""Per-suite test preprocessing, as the paper's test code does it.

`resize256`: PIL RGB -> Resize((256, 256)) with PIL bilinear -> ToTensor -> Normalize (LFM/NPR test.py).
`native`: no resize (GANGen-Detection in the paper, the demo suites); odd sizes are cropped to even by
dropping the last row/column, because the NPR residual (and the official code) cannot take odd sizes.
Normalisation happens on the model's device (bench.engine.inference) from uint8 pixels.
"""

from __future__ import annotations

PROTOCOLS = ("resize256", "native")


def protocol_resize(protocol: str) -> int | None:
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    return 256 if protocol == "resize256" else None


def protocol_name(resize: int | None) -> str:
    return "native" if resize is None else f"resize{resize}"
