"""Alignment (`--align`): a named, seeded re-encoding of the files before the protocol that takes a format
shortcut away from a test set.

In several test sets the real images are JPEG photographs and the fakes lossless PNG, so a detector can
separate them by the container alone (`bench audit` measures this). DDA (Chen et al., "Dual Data Alignment
Makes AI-Generated Image Detector Easier Generalizable", NeurIPS 2025; github.com/roy-ch/Dual-Data-Alignment,
README: "JPEG compression with a quality factor of 96 is applied to the synthetic images") re-compresses the
fakes of older sets before comparing detectors. The policies:

- ``raw``: the files as published (no alignment).
- ``jpeg96``: every image, real and fake, re-encoded as JPEG quality 96 (PIL, 4:2:0) and read back: DDA's
  correction applied to both classes, so neither format nor JPEG quality tells them apart (real JPEGs are
  compressed twice: a trace no header shows, left for the detector to find or not).
- ``fakes-jpeg96``: DDA's exact variant, the fakes only. When the reals are JPEGs of other qualities, the
  quality itself stays a shortcut (`bench audit` reports the trivial AP after each policy).
- ``match-real-quality``: each fake re-encoded at a JPEG quality drawn from the estimated qualities
  (bench.engine.jpeg_quality) of its generator's real JPEG files, so the fakes' quality distribution is the
  reals'; the reals are untouched. The draw is seeded by SHA-256 of the policy name and the image's path
  relative to its suite root: a rerun, another machine or another file order draws the same quality. A
  generator without a real JPEG has nothing to match; its fakes are left as they are (said in the log and
  recorded in run.json).

Each policy is a per-label choice of a registered perturbation (`bench.engine.perturb.Jpeg`, the same PIL
encode as ``--perturb jpeg:q=Q``), applied by the one decode path (`bench.engine.decode.decode_image`) right
after ``convert("RGB")`` and before any ``--perturb`` and the resolution protocol. The policy is part of the
cache key and of run.json; ``raw`` adds nothing to the key, so caches written before alignment existed are
reused.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.engine.jpeg_quality import file_jpeg_quality
from bench.engine.perturb import Jpeg, Perturbation
from bench.errors import BenchError

log = logging.getLogger(__name__)

RAW = "raw"
ALIGN_QUALITY = 96
"""DDA's quality factor."""
POLICIES = {
    RAW: "the files as published",
    "jpeg96": "every image, real and fake, re-encoded as JPEG quality 96 (PIL) before the protocol",
    "fakes-jpeg96": "the fakes only re-encoded as JPEG quality 96 (DDA, NeurIPS 2025)",
    "match-real-quality": "each fake re-encoded at a JPEG quality drawn (seeded) from its generator's real "
                          "JPEGs' estimated qualities",
}
SHORTHANDS = {"both": (RAW, "jpeg96")}
"""`--align both` = raw and jpeg96 in one command, shown as paired columns."""


def parse_policies(text: str | None) -> tuple[str, ...]:
    """`--align` -> the policies in order, each once: one name, a comma list, or `both` (raw,jpeg96).
    An unknown name is a usage error listing the policies."""
    if text is None or not str(text).strip():
        return (RAW,)
    chosen: list[str] = []
    for token in (t.strip().lower() for t in str(text).split(",") if t.strip()):
        names = SHORTHANDS.get(token, (token,))
        for name in names:
            if name not in POLICIES:
                known = ", ".join([*POLICIES, *SHORTHANDS])
                raise BenchError(f"--align: unknown policy {token!r}; known: {known} "
                                 f"({'; '.join(f'{k}: {v}' for k, v in POLICIES.items())})")
            if name not in chosen:
                chosen.append(name)
    return tuple(chosen) or (RAW,)


@dataclass(frozen=True)
class Alignment:
    """One policy as applied to one unit of work (a generator's files)."""

    policy: str
    real_qualities: tuple[int, ...] = ()
    """match-real-quality: the estimated qualities of the unit's real JPEG files, sorted (the pool the
    fakes' qualities are drawn from, duplicates kept: it is the empirical distribution)."""

    def __post_init__(self) -> None:
        if self.policy not in POLICIES or self.policy == RAW:
            raise ValueError(f"not an alignment policy: {self.policy!r}")

    @property
    def spec(self) -> str:
        return self.policy

    @property
    def random(self) -> bool:
        """Whether the outcome depends on the image's key (the decode must be given it)."""
        return self.policy == "match-real-quality"

    def draw_index(self, key: str) -> int:
        """The seeded draw of match-real-quality: an index into `real_qualities` from SHA-256 of the policy
        name and the image's relative path."""
        digest = hashlib.sha256(f"{self.policy}\0{key}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        return int(rng.integers(len(self.real_qualities)))

    def quality_for(self, label: int | None, key: str) -> int | None:
        """The JPEG quality this image is re-encoded at, or None when it is left as it is."""
        if self.policy == "jpeg96":
            return ALIGN_QUALITY
        if label != 1:
            return None
        if self.policy == "fakes-jpeg96":
            return ALIGN_QUALITY
        if not self.real_qualities:
            return None
        return self.real_qualities[self.draw_index(key)]

    def transform_for(self, label: int | None, key: str) -> Perturbation | None:
        """The registered perturbation that aligns this image (PIL JPEG at its quality), or None."""
        quality = self.quality_for(label, key)
        return None if quality is None else Jpeg(q=quality)

    def describe(self) -> dict:
        """What run.json records of this unit's alignment."""
        info: dict = {"policy": self.policy}
        if self.policy == "match-real-quality":
            info["real_jpegs"] = len(self.real_qualities)
            info["real_qualities"] = {str(q): n for q, n in sorted(Counter(self.real_qualities).items())}
        return info


def alignment_for(policy: str, real_files: Iterable[str | Path]) -> Alignment | None:
    """The alignment of one unit of work (None for raw). match-real-quality reads the headers of the unit's
    real files for their JPEG qualities."""
    if policy == RAW:
        return None
    if policy != "match-real-quality":
        return Alignment(policy)
    qualities = [q for q in (file_jpeg_quality(path) for path in real_files) if q is not None]
    return Alignment(policy, tuple(sorted(qualities)))
