"""The results store: run folders, the per-generator score cache, atomic writes.

```
<root>/runs/<run-id>/{run.json, scores.parquet, metrics.json, skipped.csv}
<root>/cache/<key>/{key.json, part-*.parquet, scores.parquet}
```
A cache entry holds the scores of one unit of work, keyed by (detector, weights sha256, suite, generator,
protocol, perturbation, the files' contents, ...). While a generator is being scored its rows land in
numbered part files, each written atomically; `scores.parquet` appears (atomically) only when the
generator is complete, and is what later runs reuse. A killed run leaves only whole part files, which the
next run reads back, skipping the paths they hold: no row is lost or duplicated. Under torchrun each
process writes its own part files (`part-r<rank>-<n>.parquet`) and rank 0 merges them; a resumed run
reads every process's parts, whatever the number of processes it runs with.

The files enter the key through `content_fingerprint`: the relative path, label and a BLAKE2b hash of
each file's bytes, so an image replaced by other content of the same size is scored again.

Two processes on one results root: each entry has a lock (`cache/<key>.lock`, the `filelock` package:
an OS lock, released when its process dies, even by SIGKILL); the one that gets it scores the entry, the
other waits and then reuses the finished scores. A part or `scores.parquet` that cannot be read back
(truncated, empty, foreign columns, non-finite scores) is discarded with a warning and recomputed.

Beside the unit entries, `<root>/image-index/` indexes single images' scores by their bytes (`ImageIndex`), so
that a unit never scored as such (a subset of a scored folder copied elsewhere, renamed files, another
generator sharing a pool of reals) reuses the scores of the bytes it holds.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from filelock import FileLock, Timeout

from bench.engine.files import file_problem, path_text

logger = logging.getLogger(__name__)

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
    """Hash of (relative path, label, size in bytes). Not enough for a cache key (a file replaced by other
    content of the same size keeps it): `content_fingerprint` is what keys the score cache."""
    digest = hashlib.sha256()
    for rel, label, size in rows:
        digest.update(f"{rel}\t{label}\t{size}\n".encode())
    return digest.hexdigest()[:24]


_HASH_CHUNK = 1 << 20


def file_digest(path: str | os.PathLike) -> str:
    """BLAKE2b (16-byte digest) of a file's bytes, or `unreadable:<reason>` for a file that cannot be read
    (a broken symlink, a loop, no permission) or is not a regular file (a FIFO, whose open would wait
    forever; a link to /dev/zero, whose read never ends: `bench.engine.files.file_problem`): the decoder
    skips such files with a reason, and the key changes when they become readable."""
    problem = file_problem(path)
    if problem is not None:
        return f"unreadable:{problem}"
    digest = hashlib.blake2b(digest_size=16)
    try:
        with open(path, "rb") as f:
            while chunk := f.read(_HASH_CHUNK):  # hashlib releases the GIL on large updates: threads help
                digest.update(chunk)
    except OSError as error:
        return f"unreadable:{error.strerror or type(error).__name__}"
    return digest.hexdigest()


def file_digests(paths: Sequence[str | os.PathLike], workers: int | None = None) -> list[str]:
    """`file_digest` of each file, read in threads (I/O and hashing overlap)."""
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(file_digest, paths, chunksize=64))


def content_fingerprint(items: Sequence[tuple[str, int, str | os.PathLike]], workers: int | None = None,
                        digests: Sequence[str] | None = None) -> str:
    """Hash of (relative path, label, hash of the bytes) of every file of a unit of work: any change of
    content, name or label gives another key. `digests`: the files' `file_digests`, when already known.
    Relative paths are text as `bench.engine.files.path_text` writes them (a name that is not valid UTF-8
    keeps its bytes as backslash escapes), so every name hashes."""
    if digests is None:
        digests = file_digests([path for _, _, path in items], workers)
    digest = hashlib.sha256()
    for (rel, label, _), file_hash in zip(items, digests, strict=True):
        digest.update(f"{path_text(rel)}\t{label}\t{file_hash}\n".encode())
    return digest.hexdigest()[:24]


def _remove(path: Path) -> None:
    """A file, a link or a whole folder: gone (the cache's own damaged entries only)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


class DamagedCacheFile(Exception):
    """A cached part or scores file that cannot be used; the message says why."""


def _read_scores(path: Path) -> pd.DataFrame:
    """A cached score table, checked: readable, the expected columns, finite logits on every scored row
    (a NaN score is only ever stored with a skip reason). Raises DamagedCacheFile."""
    try:
        frame = pd.read_parquet(path)
    except Exception as error:  # pyarrow raises ArrowInvalid, OSError, ... on a damaged file
        raise DamagedCacheFile(f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}") from error
    missing = [c for c in [*SCORE_COLUMNS, "reason"] if c not in frame.columns]
    if missing:
        raise DamagedCacheFile(f"no column {', '.join(missing)}")
    scored = frame["reason"].isna()
    logits = pd.to_numeric(frame.loc[scored, "logit"], errors="coerce").to_numpy(dtype=float)
    if not np.isfinite(logits).all():
        raise DamagedCacheFile(f"{int((~np.isfinite(logits)).sum())} non-finite scores without a skip reason")
    return frame


@dataclass(frozen=True)
class CacheEntry:
    """One unit of work (a detector x weights x generator x protocol) in the cache."""

    folder: Path

    @property
    def final_path(self) -> Path:
        return self.folder / "scores.parquet"

    @property
    def lock_path(self) -> Path:
        return self.folder.with_name(self.folder.name + ".lock")

    def is_complete(self) -> bool:
        self.heal()
        return self.final_path.is_file()

    def _discard(self, path: Path, why: str) -> None:
        logger.warning("discarding the damaged cache file %s (%s); its scores are computed again", path, why)
        _remove(path)

    def heal(self) -> None:
        """Remove (with a warning) what stands where the cache keeps a file or a folder but is the other kind:
        the entry's folder replaced by a file, its scores, key or part files or its lock replaced by folders.
        Their scores are computed again, instead of a traceback from writing or reading them. A cache root
        that is a file is exit 2 (`ResultsStore.require_writable` says so before any work)."""
        wrong = []
        if self.folder.exists() and not self.folder.is_dir():
            wrong.append(self.folder)
        if self.lock_path.is_dir() and not self.lock_path.is_symlink():
            wrong.append(self.lock_path)
        if self.folder.is_dir():
            files = [self.final_path, self.folder / "key.json", *self.folder.glob("part-*.parquet")]
            wrong += [path for path in files if path.exists() and not path.is_file()]
        for path in wrong:
            expected = "a folder" if path == self.folder else "a file"
            lost = "" if path == self.lock_path else ", so the scores it held are computed again"
            logger.warning("the score cache keeps %s at %s but found something else there; removed it%s",
                           expected, path, lost)
            _remove(path)

    def ensure(self, key_fields: dict) -> None:
        self.heal()
        self.folder.mkdir(parents=True, exist_ok=True)
        key_file = self.folder / "key.json"
        if not key_file.exists():
            atomic_write_json(key_file, key_fields)

    def parts(self) -> list[Path]:
        return sorted(self.folder.glob("part-*.parquet"))

    def read_partial(self) -> pd.DataFrame:
        """Rows already scored by an interrupted run (deduplicated by path, first wins). Damaged parts are
        discarded (with a warning): their images are scored again."""
        self.heal()
        frames = []
        for part in self.parts():
            try:
                frames.append(_read_scores(part))
            except DamagedCacheFile as error:
                self._discard(part, str(error))
        if not frames:
            return pd.DataFrame(columns=[*SCORE_COLUMNS, "reason"])
        return pd.concat(frames, ignore_index=True).drop_duplicates("path", keep="first")

    def append_part(self, rows: pd.DataFrame, tag: str = "r0") -> None:
        """Write rows as the next part file of `tag` (a process's rank under torchrun, see
        bench.engine.distributed): processes scoring the same unit at once never write the same file."""
        if rows.empty:
            return
        own = sorted(self.folder.glob(f"part-{tag}-*.parquet"))
        # after the last existing number, not the count: a discarded part leaves a gap
        index = int(own[-1].stem.rsplit("-", 1)[1]) + 1 if own else 0
        atomic_write_parquet(self.folder / f"part-{tag}-{index:06d}.parquet", rows)

    def finish(self, rows: pd.DataFrame) -> None:
        atomic_write_parquet(self.final_path, rows)
        for part in self.parts():
            part.unlink()

    def read(self) -> pd.DataFrame:
        return pd.read_parquet(self.final_path)

    def read_complete(self, expected_paths: Sequence[str] | None = None) -> pd.DataFrame | None:
        """The finished scores, or None when there are none or they are damaged (then discarded with a
        warning, so that the caller scores the unit again). With `expected_paths`, scores that do not
        hold exactly those paths count as damaged."""
        if not self.is_complete():
            return None
        try:
            frame = _read_scores(self.final_path)
            if expected_paths is not None and (len(frame) != len(expected_paths)
                                               or set(frame["path"]) != set(expected_paths)):
                raise DamagedCacheFile(f"{len(frame)} rows for {len(expected_paths)} files")
        except DamagedCacheFile as error:
            self._discard(self.final_path, str(error))
            return None
        return frame

    def discard_all(self) -> None:
        """Forget the entry's scores (`--fresh`): parts and the finished file."""
        for part in self.parts():
            part.unlink(missing_ok=True)
        self.final_path.unlink(missing_ok=True)

    @contextmanager
    def locked(self, on_wait=None) -> Iterator[None]:
        """Hold the entry's lock (see the module docstring). `on_wait(entry)` is called once when another
        process holds it, before waiting for it."""
        self.heal()
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.lock_path)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if on_wait is not None:
                on_wait(self)
            lock.acquire()
        try:
            yield
        finally:
            lock.release()


@contextmanager
def locked_entries(entries: Iterable[CacheEntry], on_wait=None) -> Iterator[None]:
    """Hold the locks of several entries (taken in key order, so that two processes never wait on each
    other crosswise)."""
    with ExitStack() as stack:
        for entry in sorted(set(entries), key=lambda e: str(e.folder)):
            stack.enter_context(entry.locked(on_wait))
        yield


IMAGE_INDEX = "image-index"
"""`<root>/image-index/<image key>/<unit key>.parquet`: single images' scores by content (`ImageIndex`)."""
IMAGE_INDEX_COLUMNS = ["digest", "path", "logit", "reason", "cropped"]


@dataclass(frozen=True)
class ImageIndex:
    """The scores of single images by the hash of their bytes, for one image key (everything that decides an
    image's score but where it is: detector, weights, model fingerprint, protocol, decode, normalisation,
    perturbation, truncated-file policy). Each finished unit adds one file named by its unit key (written
    atomically, so concurrent runs never collide); a unit whose entry is not finished takes from here the
    scores of the files whose bytes were scored before, under any folder, suite, generator or file name.
    Unit entries (`CacheEntry`) stay as they were: a cache written before the index is reused as before, and
    indexed the first time it is read."""

    folder: Path

    def has(self, unit_key: str) -> bool:
        self.heal()
        return (self.folder / f"{unit_key}.parquet").is_file()

    def heal(self) -> None:
        """Remove (with a warning) what stands where the index keeps a folder or a file but is the other
        kind: this image key's folder replaced by a file, or a unit's index file replaced by a folder. The
        index only repeats finished cache entries, so nothing is lost: their images are looked up in those
        entries (and indexed again) or scored again, instead of a traceback from reading or writing here.
        An image-index root that is a file is exit 2 (`ResultsStore.require_writable`)."""
        if self.folder.exists() and not self.folder.is_dir():
            wrong = [(self.folder, "a folder")]
        elif self.folder.is_dir():
            wrong = [(path, "a file") for path in self.folder.glob("*.parquet") if not path.is_file()]
        else:
            wrong = []
        for path, expected in wrong:
            logger.warning("the image index keeps %s at %s but found something else there; removed it (its "
                           "images' scores are taken from the cache entries or computed again)", expected, path)
            _remove(path)

    def add(self, unit_key: str, rows: pd.DataFrame) -> None:
        """Index a finished unit's rows (IMAGE_INDEX_COLUMNS); files that could not be read by their bytes
        (digest `unreadable:...`) are left out, as their score says nothing about any content."""
        self.heal()
        rows = rows[~rows["digest"].str.startswith("unreadable:")][IMAGE_INDEX_COLUMNS]
        if not rows.empty:
            atomic_write_parquet(self.folder / f"{unit_key}.parquet", rows.reset_index(drop=True))

    def load(self) -> pd.DataFrame:
        """Every indexed image (the first of each (digest, path) kept); damaged files are passed over."""
        self.heal()
        frames = []
        for path in sorted(self.folder.glob("*.parquet")):
            try:
                frame = pd.read_parquet(path)
            except Exception as error:  # pyarrow raises ArrowInvalid, OSError, ... on a damaged file
                logger.warning("passing over the damaged image index file %s (%s)", path, type(error).__name__)
                continue
            if set(IMAGE_INDEX_COLUMNS) <= set(frame.columns):
                frames.append(frame[IMAGE_INDEX_COLUMNS])
        if not frames:
            return pd.DataFrame(columns=IMAGE_INDEX_COLUMNS)
        return pd.concat(frames, ignore_index=True).drop_duplicates(["digest", "path"], keep="first")


def require_writable_folder(folder: str | os.PathLike, what: str = "output", option: str = "--output") -> Path:
    """The folder, created if need be, after a test write in it; BenchError (exit 2) naming it when it
    cannot be written (a file in the way, no permission, a full disk). Every verb that writes checks its
    output this way before its work (`bench run`'s results root, report, table, explain, embed)."""
    from bench.errors import BenchError

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise BenchError(f"cannot write {what} under {folder}: it is a file, not a folder; choose another {option}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=folder, prefix=".write-test-")
        os.close(handle)
        os.unlink(temp)
    except OSError as error:
        raise BenchError(f"cannot write {what} under {folder} ({error.strerror or error}); choose another "
                         f"{option} or fix its permissions or free space") from error
    return folder


def require_writable_file(path: str | os.PathLike, what: str = "output") -> Path:
    """A file path that can be written (replaced, if it exists): not a folder, its folder writable
    (`require_writable_folder`); BenchError (exit 2) naming it otherwise."""
    from bench.errors import BenchError

    path = Path(path)
    if path.is_dir():
        raise BenchError(f"--output {path} is a folder; give a file name for the {what}")
    if path.exists() and not path.is_file():
        raise BenchError(f"--output {path} is not a regular file; give another file name for the {what}")
    require_writable_folder(path.parent, what)
    return path


class ResultsStore:
    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_results_root()

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    def require_writable(self, runs: bool = True, caches: Sequence[str] = ("cache", IMAGE_INDEX),
                         option: str = "--output") -> None:
        """BenchError (exit 2) naming the folder when results cannot be written under the root or the cache
        folders the work will use (`caches`: `cache` and the image index for scores, `feature-cache` for
        features): a file in the way, no permission, a full disk. Checked before any scoring, so no work is
        lost to it. `option` names the verb's option that chose the root."""
        for folder in (self.root, *(self.root / cache for cache in caches), *([self.runs_dir] if runs else [])):
            require_writable_folder(folder, "results", option)

    def cache_entry(self, key: str, folder: str = "cache") -> CacheEntry:
        """The unit of work `key` under `<root>/<folder>/` (`cache`: logits; `feature-cache`: logits with
        feature vectors, bench.analyses.embeddings)."""
        return CacheEntry(self.root / folder / key)

    def image_index(self, image_key: str) -> ImageIndex:
        return ImageIndex(self.root / IMAGE_INDEX / image_key)

    def new_run_dir(self, run_id: str) -> Path:
        folder = self.runs_dir / run_id
        suffix = 1
        while folder.exists():
            suffix += 1
            folder = self.runs_dir / f"{run_id}-{suffix}"
        folder.mkdir(parents=True)
        return folder

    def finished_runs(self):
        """Every finished run folder under this root, oldest first (see bench.engine.results)."""
        from bench.engine.results import finished_runs

        return finished_runs(self.root)
