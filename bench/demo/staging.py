"""How a demo tree is made and found, shared by the whole-image demo (bench.demo.build) and the
local-forgery demo (bench.demo.local): the content hash that says a tree is current, PNG writing,
single-threaded synthesis, and the one build procedure (an exclusive lock on the data root, a staging
folder beside the tree, an atomic swap into place), so an interrupted or concurrent build never leaves a
tree that looks finished.

Listed in both builders' sources: `save_png` decides the bytes of every image.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from bench.errors import BenchError, UnknownNameError

log = logging.getLogger(__name__)

BUILD_PREFIX = ".demo-build-"
OLD_PREFIX = ".demo-old-"
LOCK_NAME = ".demo.lock"


def code_and_params_hash(sources: Sequence[str], params: Mapping) -> str:
    """sha256 of the named source files of this package and of the parameters that change a tree's bytes:
    a tree is out of date when either changes."""
    digest = hashlib.sha256()
    here = Path(__file__).parent
    for name in sources:
        digest.update(name.encode() + b"\0" + (here / name).read_bytes() + b"\0")
    digest.update(json.dumps(params, sort_keys=True).encode())
    return digest.hexdigest()


def overlay_counts(defaults: Mapping[str, int], counts: Mapping[str, int] | None, kind: str) -> dict[str, int]:
    """`defaults` with `counts` laid over it; `kind` names the suites in errors ("demo suite")."""
    resolved = dict(defaults)
    for suite, n in (counts or {}).items():
        if suite not in defaults:
            raise UnknownNameError(kind, suite, defaults)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise BenchError(f"{kind.removesuffix(' suite')} image count for {suite} must be a positive integer, "
                             f"got {n!r}")
        resolved[suite] = n
    return resolved


def read_manifest(root: Path) -> dict | None:
    try:
        manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def count_png(folder: Path) -> int:
    """PNG files in a folder (-1 when it cannot be read): a tree is complete when every count is right."""
    try:
        with os.scandir(folder) as entries:
            return sum(1 for e in entries if e.name.endswith(".png") and e.is_file())
    except OSError:
        return -1


def save_png(pixels: np.ndarray, path: Path) -> None:
    from PIL import Image

    # zlib level 1: three times faster than the default for 6% larger files.
    Image.fromarray(pixels).save(path, format="PNG", compress_level=1)


@contextlib.contextmanager
def single_threaded_torch() -> Iterator[None]:
    """Each torch op on one thread (repeatable bytes); a build may run chunks on several Python threads
    instead, which torch allows since its ops release the GIL."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def build_in_place(root: Path, *, is_current: Callable[[], bool], build: Callable[[Path], int], what: str,
                   quiet: bool = False) -> Path:
    """Return `root`, first building it with `build(staging) -> number of images` when `is_current()` is
    false: under an exclusive lock on the data root, in a staging folder beside `root` that is swapped into
    place only once complete. A `root` that bench.demo did not make is never replaced."""
    if is_current():
        return root
    parent = root.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BenchError(f"cannot create the data root {parent} for the {what}: {error}") from error
    _check_replaceable(root)
    with _lock(parent):
        if is_current():  # another process built it while we waited
            return root
        _remove_leftovers(parent)
        try:
            staging = Path(tempfile.mkdtemp(prefix=BUILD_PREFIX, dir=parent))
            staging.chmod(0o755)  # mkdtemp makes it private; the finished tree is ordinary shared data
        except OSError as error:
            raise BenchError(f"cannot write the {what} under {parent}: {error}") from error
        try:
            started = time.perf_counter()
            if not quiet:
                log.info("bench: building the %s under %s (first use; a few seconds)", what, root)
            n_images = build(staging)
            _swap_into_place(staging, root)
            if not quiet:
                log.info("bench: built %d images of the %s in %.1f s", n_images, what,
                         time.perf_counter() - started)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return root


def _check_replaceable(root: Path) -> None:
    """Refuse to replace a folder that bench.demo did not make (it could be the user's data)."""
    if not root.exists():
        return
    manifest = read_manifest(root)
    ours = manifest is not None and "bench.demo" in str(manifest.get("note", ""))
    if not ours and (not root.is_dir() or any(root.iterdir())):
        raise BenchError(
            f"{root} exists but is not demo data made by bench.demo (no manifest.json from it); "
            "move it away or pass another --data-root"
        )


@contextlib.contextmanager
def _lock(parent: Path) -> Iterator[None]:
    """An exclusive lock on `<data_root>/.demo.lock`, so two processes do not build at once (POSIX only;
    elsewhere the atomic rename still keeps a half-built tree out of place)."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    with open(parent / LOCK_NAME, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_leftovers(parent: Path) -> None:
    """Staging folders left by a build that was killed (we hold the lock, so none is in use)."""
    for entry in parent.iterdir():
        if entry.is_dir() and entry.name.startswith((BUILD_PREFIX, OLD_PREFIX)):
            shutil.rmtree(entry, ignore_errors=True)


def _swap_into_place(staging: Path, root: Path) -> None:
    if root.exists():
        old = Path(tempfile.mkdtemp(prefix=OLD_PREFIX, dir=root.parent))
        os.replace(root, old / root.name)
        os.replace(staging, root)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, root)
