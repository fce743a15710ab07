"""Cost of the content-keyed score cache (issue 17): hashing every file's bytes (bench.engine.store.
content_fingerprint) against the old key of (path, label, size) from a stat of each file.

    python benchmarks/content_key_cost.py [--small 10000] [--large 300] [--folder DIR]

Writes a folder of small PNGs (64x64) and one of large JPEGs (3000x2000, quality 95), then times each key
three times (the files are in the page cache after the first write: this is the cost on a rerun, where
the key decides whether the cached scores are reused). Prints seconds, MB/s and the ratio.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench.engine.store import content_fingerprint, file_list_fingerprint


def make(folder: Path, n: int, size: tuple[int, int], fmt: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    paths = []
    for i in range(n):
        path = folder / f"{i:05d}.{fmt.lower()}"
        if not path.exists():
            img = np.roll(base, i, axis=1).repeat(8, 0).repeat(8, 1) ^ rng.integers(0, 16, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(img).save(path, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
        paths.append(path)
    return paths


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", type=int, default=10000)
    parser.add_argument("--large", type=int, default=300)
    parser.add_argument("--folder", default=None)
    args = parser.parse_args()
    root = Path(args.folder or tempfile.mkdtemp(prefix="content-key-"))
    for name, n, size, fmt in (("small", args.small, (64, 64), "PNG"), ("large", args.large, (3000, 2000), "JPEG")):
        paths = make(root / name, n, size, fmt)
        items = [(p.name, 0, p) for p in paths]
        megabytes = sum(p.stat().st_size for p in paths) / 1e6
        stat_key = best_of(lambda items=items: file_list_fingerprint((r, lb, p.stat().st_size) for r, lb, p in items))
        content_key = best_of(lambda items=items: content_fingerprint(items))
        print(f"{name}: {n} files, {megabytes:.0f} MB; size key {stat_key:.3f} s, content key {content_key:.3f} s "
              f"({megabytes / content_key:.0f} MB/s, {1e3 * content_key / n:.2f} ms/file, "
              f"{content_key / stat_key:.0f}x the size key)")
    print(f"files under {root}")


if __name__ == "__main__":
    main()
