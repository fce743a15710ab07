"""Helpers shared by several test modules (not fixtures)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_suite(root: Path, generators: dict[str, int], size=(72, 88), seed=0) -> Path:
    """A folder suite: generators x {0_real, 1_fake} x n random images (fakes get a 2x2 block pattern)."""
    rng = np.random.default_rng(seed)
    for generator, n in generators.items():
        for label in ("0_real", "1_fake"):
            folder = root / generator / label
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                h, w = size[0] + 2 * (i % 3), size[1] + 4 * (i % 2)
                pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                if label == "1_fake":  # nearest-neighbour up-sampling traces
                    pixels = pixels[::2, ::2].repeat(2, 0).repeat(2, 1)[:h, :w]
                Image.fromarray(pixels).save(folder / f"img_{i:03d}.png")
    return root


def png_header(width: int, height: int) -> bytes:
    """A tiny PNG file whose header declares width x height (RGB, 8 bit): enough for PIL to open it and
    read the size, so a few hundred bytes can claim a decompression bomb."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def jpeg_header(width: int, height: int) -> bytes:
    """A small baseline JPEG whose SOF0 marker is rewritten to declare width x height."""
    import io

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


def run_bench(args: list[str], timeout: float = 120, cwd: Path | None = None):
    """`python -m bench ARGS` in a child process with this checkout first on the path; a hang fails the
    test after `timeout` seconds instead of blocking the suite (a FIFO's open never returns)."""
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")])}
    try:
        return subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True,
                              timeout=timeout, env=env, cwd=cwd)
    except subprocess.TimeoutExpired as error:
        raise AssertionError(f"bench {' '.join(args)} still running after {timeout} s (a hang)") from error
def write_synthwildx(root: Path, typs=("real", "real", "dalle3", "firefly", "midjourney_v5")) -> Path:
    """A miniature SynthWildX as grip-unina's data/synthwildx publishes it: list.csv (url,filename,typ) and
    <typ>/<id>.jpg, one JPEG per row."""
    rows = ["url,filename,typ"]
    for i, typ in enumerate(typs):
        name = f"{typ}/F{i}.jpg"
        rows.append(f"https://pbs.twimg.com/media/F{i}?format=jpg&name=large,{name},{typ}")
        (root / typ).mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(i)
        Image.fromarray(rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)).save(root / name, format="JPEG")
    (root / "list.csv").write_text("\n".join(rows) + "\n")
    return root


def random_lfm_weights(path: Path, seed: int) -> Path:
    """A randomly initialised LFM saved as a checkpoint at `path`, for tests about which images are read
    and scored and where results go, not about the scores (a fixed model: same seed, same weights)."""
    import torch

    from detectors import export_state_dict, get_detector

    torch.manual_seed(seed)
    detector = get_detector("lfm")
    torch.save(export_state_dict(detector.build(), detector), path)
    return path
