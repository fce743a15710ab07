"""Every environment variable the harness reads, in one place, read when asked (never at import), so a
test or a caller that sets one sees it take effect.

| variable | meaning | default |
|---|---|---|
| `BENCH_DATA` | data root (`--data-root` wins) | `./datasets` |
| `BENCH_RESULTS` | results root (`--output` wins) | `./results` |
| `BENCH_CACHE` | download cache for named weights | `~/.cache/lfm-bench` |
| `BENCH_WEIGHTS_DIR` | a folder of weights files downloaded by hand | none |
| `BENCH_PART_EVERY` | images between two part files of the score cache (what a kill can lose) | 512 |
| `BENCH_MAX_PIXELS` | pixel limit of native-size evaluation (`none`: no limit) | 4096 x 4096 |
| `BENCH_REQUIRE_SHARED` | `1`: inputs marked optional (e.g. `../shared`) must be there | off |
"""

from __future__ import annotations

import os
from pathlib import Path

from bench.errors import BenchError


def _get(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value else None


def data_root() -> Path:
    return Path(_get("BENCH_DATA") or "datasets").expanduser().absolute()


def results_root() -> Path:
    return Path(_get("BENCH_RESULTS") or "results")


def cache_root() -> Path:
    return Path(_get("BENCH_CACHE") or Path.home() / ".cache" / "lfm-bench")


def weights_dir() -> Path | None:
    value = _get("BENCH_WEIGHTS_DIR")
    return Path(value).expanduser() if value else None


def part_every() -> int:
    value = _get("BENCH_PART_EVERY") or "512"
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise BenchError(f"BENCH_PART_EVERY={value!r}: expected a whole number of images, at least 1")
    return number


def require_optional_inputs() -> bool:
    return _get("BENCH_REQUIRE_SHARED") == "1"


def torchrun_layout() -> dict[str, int]:
    """The process layout torchrun gives a process (WORLD_SIZE, RANK, LOCAL_RANK, LOCAL_WORLD_SIZE);
    a plain process is world 1, rank 0."""
    world = int(_get("WORLD_SIZE") or 1)
    return {
        "world": world,
        "rank": int(_get("RANK") or 0),
        "local_rank": int(_get("LOCAL_RANK") or 0),
        "local_world": int(_get("LOCAL_WORLD_SIZE") or world),
    }


def max_pixels_text() -> str:
    return (_get("BENCH_MAX_PIXELS") or "").strip()
