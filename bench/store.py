"""The results store: run folders, the per-generator score cache, atomic writes.

```
<root>/runs/<run-id>/{run.json, scores.parquet, metrics.json, skipped.csv}
<root>/cache/<key>/{key.json, part-*.parquet, scores.parquet}
```
A cache entry holds the scores of one unit of work, keyed by (detector, weights sha256, suite, generator,
protocol, perturbation, file list, ...). While a generator is being scored its rows land in numbered
part files, each written atomically; `scores.parquet` appears (atomically) only when the generator is
complete, and is what later runs reuse. A killed run leaves only whole part files, which the next run
reads back, skipping the paths they hold: no row is lost or duplicated.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

SCORE_COLUMNS = ["suite", "generator", "path", "label", "logit", "prob"]
SKIP_COLUMNS = ["path", "reason"]


def default_results_root() -> Path:
    from bench import settings

    return settings.results_root()


def _default_mode() -> int:
    # mkstemp creates 0600 files; results and checkpoints should get the usual umask-derived mode
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _temp_beside(path: Path) -> tuple[int, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(temp, _default_mode())
    return handle, temp


def file_stem(name: str) -> str:
    """A detector name as a file or folder name: `timm:resnet50` -> `timm-resnet50` (a colon is not allowed
    on Windows and reads as host:path to scp and rsync)."""
    return name.replace(":", "-")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename over the target."""
    handle, temp = _temp_beside(path)
    try:
        with os.fdopen(handle, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


def json_safe(value):
    """NaN/inf -> None (JSON has no NaN), numpy/torch scalars -> Python numbers, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item"):  # numpy / torch scalars
        return json_safe(value.item())
    return value


def atomic_write_json(path: Path, payload: dict) -> None:
    atomic_write_bytes(path, (json.dumps(json_safe(payload), indent=1, sort_keys=False) + "\n").encode())


def atomic_write_parquet(path: Path, frame: pd.DataFrame) -> None:
    handle, temp = _temp_beside(path)
    os.close(handle)
    try:
        frame.to_parquet(temp, index=False)
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


def atomic_write_csv(path: Path, frame: pd.DataFrame) -> None:
    atomic_write_bytes(path, frame.to_csv(index=False).encode())


def work_key(fields: dict) -> str:
    """A short stable hash of the fields that determine a unit of work's scores."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]


def file_list_fingerprint(rows: Iterable[tuple[str, int, int]]) -> str:
    """Hash of (relative path, label, size in bytes): a changed data set never reuses stale scores."""
    digest = hashlib.sha256()
    for rel, label, size in rows:
        digest.update(f"{rel}\t{label}\t{size}\n".encode())
    return digest.hexdigest()[:24]


@dataclass
class CacheEntry:
    """One unit of work (a detector x weights x generator x protocol) in the cache."""

    folder: Path

    @property
    def final_path(self) -> Path:
        return self.folder / "scores.parquet"

    def is_complete(self) -> bool:
        return self.final_path.is_file()

    def ensure(self, key_fields: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        key_file = self.folder / "key.json"
        if not key_file.exists():
            atomic_write_json(key_file, key_fields)

    def parts(self) -> list[Path]:
        return sorted(self.folder.glob("part-*.parquet"))

    def read_partial(self) -> pd.DataFrame:
        """Rows already scored by an interrupted run (deduplicated by path, first wins)."""
        frames = [pd.read_parquet(p) for p in self.parts()]
        if not frames:
            return pd.DataFrame(columns=[*SCORE_COLUMNS, "reason"])
        return pd.concat(frames, ignore_index=True).drop_duplicates("path", keep="first")

    def append_part(self, rows: pd.DataFrame) -> None:
        if rows.empty:
            return
        index = len(self.parts())
        atomic_write_parquet(self.folder / f"part-{index:06d}.parquet", rows)

    def finish(self, rows: pd.DataFrame) -> None:
        atomic_write_parquet(self.final_path, rows)
        for part in self.parts():
            part.unlink()

    def read(self) -> pd.DataFrame:
        return pd.read_parquet(self.final_path)


class ResultsStore:
    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_results_root()

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    def cache_entry(self, key: str) -> CacheEntry:
        return CacheEntry(self.root / "cache" / key)

    def new_run_dir(self, run_id: str) -> Path:
        folder = self.runs_dir / run_id
        suffix = 1
        while folder.exists():
            suffix += 1
            folder = self.runs_dir / f"{run_id}-{suffix}"
        folder.mkdir(parents=True)
        return folder

    def finished_runs(self):
        """Every finished run folder under this root, oldest first (see bench.results)."""
        from bench.results import finished_runs

        return finished_runs(self.root)
