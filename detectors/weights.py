"""Named weights as data (URL, sha256, licence, source), kept apart from the architectures.

A name is ``<family>:<tag>`` (``lfm:official``). Files are looked up, in order: bundled inside the package
(the ``demo`` weights), ``$BENCH_WEIGHTS_DIR/<filename>`` (a folder of pre-downloaded files), then the
cache ``$BENCH_CACHE/weights/<filename>`` (default ``~/.cache/lfm-bench``), where ``fetch`` downloads them.
Every file is checked against its pinned sha256. Not every entry is pinned: `npr:official`,
`cnndetection:blur_jpg_prob0.5`, `cnndetection:blur_jpg_prob0.1`, `safe:official` and `imagenet:resnet50`
have no published hash this project could check (the first four are too large for the repository copies
this project can read; torchvision's file name carries only the first 8 hex digits of its hash, which
`bench train --init imagenet` checks), so the first file seen records its hash beside itself
(`<file>.sha256`) and `bench weights list` says "no: first file seen is recorded". A later use of a file
whose bytes no longer match its recorded hash is refused. (tests/test_weights.py checks this list against
the entries.)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from bench import settings
from bench.errors import BenchError, UnknownNameError
from detectors.base import Preprocessing

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WeightsEntry:
    family: str
    tag: str
    filename: str
    url: str | None
    sha256: str | None
    licence: str
    source: str
    bundled: bool = False
    note: str = ""
    preprocessing: Preprocessing | None = None
    """Set when these weights expect other preprocessing than their detector's default."""

    @property
    def name(self) -> str:
        return f"{self.family}:{self.tag}"

    @property
    def pinned(self) -> bool:
        """Whether the project knows the file's sha256 (otherwise the first file seen defines it)."""
        return self.sha256 is not None


WEIGHTS: tuple[WeightsEntry, ...] = (
    WeightsEntry(
        family="lfm",
        tag="official",
        filename="lfm_official_bs_model.pth",
        url="https://github.com/lmlpy/LFM/raw/main/weights/bs_model.pth",
        sha256="903036979adb186c6baf48b6214092540161d7b0194d1b7bea5592a072b49317",
        licence="Apache-2.0",
        source="github.com/lmlpy/LFM weights/bs_model.pth (commit 8676325), trained on ProGAN 4-class",
    ),
    WeightsEntry(
        family="npr",
        tag="official",
        filename="NPR.pth",
        url="https://github.com/chuangchuangtan/NPR-DeepfakeDetection/raw/main/NPR.pth",
        sha256=None,
        licence="see github.com/chuangchuangtan/NPR-DeepfakeDetection",
        source="github.com/chuangchuangtan/NPR-DeepfakeDetection NPR.pth, trained on ProGAN 4-class",
    ),
    WeightsEntry(
        family="cnndetection",
        tag="blur_jpg_prob0.5",
        filename="blur_jpg_prob0.5.pth",
        url="https://www.dropbox.com/s/2g2jagq2jn1fd0i/blur_jpg_prob0.5.pth?dl=1",
        sha256=None,
        licence="CC BY-NC-SA 4.0",
        source="github.com/PeterWang512/CNNDetection README (weights/download_weights.sh)",
    ),
    WeightsEntry(
        family="cnndetection",
        tag="blur_jpg_prob0.1",
        filename="blur_jpg_prob0.1.pth",
        url="https://www.dropbox.com/s/h7tkpcgiwuftb6g/blur_jpg_prob0.1.pth?dl=1",
        sha256=None,
        licence="CC BY-NC-SA 4.0",
        source="github.com/PeterWang512/CNNDetection README (weights/download_weights.sh)",
    ),
    # UnivFD (Ojha et al., CVPR 2023): the linear head, and the CLIP backbone it was trained on
    WeightsEntry(
        family="univfd",
        tag="official",
        filename="univfd_fc_weights.pth",
        url="https://github.com/WisconsinAIVision/UniversalFakeDetect/raw/main/pretrained_weights/fc_weights.pth",
        # the sha256 of the repository's file (4,083 bytes, git blob 2a8efc8e238bf5a491e4fd5999655ed5eb3bbb72),
        # added in commit 763391e (22 July 2023) and unchanged since: computed from the repository's snapshot
        sha256="477100745713bcc957beb2b40859536859b6483fd6301b3b9293151b194c7847",
        licence="MIT",
        source="github.com/WisconsinAIVision/UniversalFakeDetect pretrained_weights/fc_weights.pth "
        "(commit 763391e; the Linear(768, 1) head, trained on ProGAN 4-class)",
        note="save the repository's fc_weights.pth as univfd_fc_weights.pth; needs clip:ViT-L-14 too",
    ),
    WeightsEntry(
        family="clip",
        tag="ViT-L-14",
        filename="ViT-L-14.pt",
        # the URL's path holds the file's sha256, which the CLIP code checks after downloading
        url="https://openaipublic.azureedge.net/clip/models/"
        "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/ViT-L-14.pt",
        sha256="b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836",
        licence="MIT",
        source="OpenAI CLIP ViT-L/14 (github.com/openai/CLIP, clip/clip.py _MODELS), a TorchScript archive",
        note="the frozen image encoder of UnivFD",
    ),
    # SAFE (Li et al., 2024)
    WeightsEntry(
        family="safe",
        tag="official",
        filename="safe_checkpoint-best.pth",
        url="https://github.com/Ouxiang-Li/SAFE/raw/main/checkpoint/checkpoint-best.pth",
        sha256=None,
        licence="Apache-2.0",
        source="github.com/Ouxiang-Li/SAFE checkpoint/checkpoint-best.pth (trained on ProGAN 4-class)",
        note="save the repository's checkpoint/checkpoint-best.pth as safe_checkpoint-best.pth",
    ),
    # ImageNet initialisation (`bench train --init imagenet`): torchvision's ResNet-50, as CNNDetection used
    WeightsEntry(
        family="imagenet",
        tag="resnet50",
        filename="resnet50-0676ba61.pth",
        url="https://download.pytorch.org/models/resnet50-0676ba61.pth",
        sha256=None,  # torch.hub's convention: the name carries the first 8 hex digits of the sha256
        licence="BSD-3-Clause (torchvision)",
        source="torchvision ResNet50_Weights.IMAGENET1K_V1 (the weights of resnet50(pretrained=True))",
        note="also found in torch.hub's cache (~/.cache/torch/hub/checkpoints)",
    ),
)


def _bundled_entries() -> tuple[WeightsEntry, ...]:
    """Demo weights shipped inside the package, listed in detectors/bundled/manifest.json."""
    try:
        manifest = resources.files("detectors").joinpath("bundled/manifest.json")
        if not manifest.is_file():
            return ()
        records = json.loads(manifest.read_text())
    except ModuleNotFoundError:
        return ()
    return tuple(
        WeightsEntry(
            family=r["family"], tag=r["tag"], filename=r["filename"], url=None, sha256=r["sha256"],
            licence="Apache-2.0 (this project)", source=r["source"], bundled=True, note=r.get("note", ""),
        )
        for r in records
    )


def all_weights() -> tuple[WeightsEntry, ...]:
    return WEIGHTS + _bundled_entries()


def get_weights_entry(name: str) -> WeightsEntry:
    entries = {entry.name: entry for entry in all_weights()}
    if name not in entries:
        raise UnknownNameError("weights", name, entries)
    return entries[name]


def cache_dir() -> Path:
    return settings.cache_root() / "weights"


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _bundled_path(entry: WeightsEntry) -> Path:
    return Path(str(resources.files("detectors").joinpath("bundled", entry.filename)))


def local_path(entry: WeightsEntry) -> Path | None:
    """Where the entry's file already is on this machine, or None."""
    if entry.bundled:
        path = _bundled_path(entry)
        return path if path.is_file() else None
    weights_dir = settings.weights_dir()
    candidates = [weights_dir / entry.filename] if weights_dir else []
    candidates.append(cache_dir() / entry.filename)
    return next((p for p in candidates if p.is_file()), None)


def verify(entry: WeightsEntry, path: Path) -> str:
    """Check the file's sha256 against the pinned one; return the hash seen."""
    seen = sha256_of(path)
    if entry.sha256 and seen != entry.sha256:
        raise BenchError(
            f"weights {entry.name} at {path} have sha256 {seen}, expected {entry.sha256}: the file is corrupt "
            f"or a different checkpoint. Delete it and run `bench weights fetch {entry.name}`."
        )
    if not entry.sha256:
        # no pinned hash: the first one seen is recorded beside the file, and later uses must match it
        record = path.with_name(path.name + ".sha256")
        if record.exists():
            recorded = record.read_text().strip()
            if recorded != seen:
                raise BenchError(
                    f"weights {entry.name} at {path} have sha256 {seen}, but {record} recorded {recorded or '(empty)'} "
                    f"when the file was first used: the file changed since (corrupt, or a different checkpoint). "
                    f"Delete both and run `bench weights fetch {entry.name}`, or delete {record.name} if the new "
                    "file is intended."
                )
        elif os.access(path.parent, os.W_OK):
            record.write_text(seen + "\n")
    return seen


def fetch(entry: WeightsEntry, *, progress: bool = True, timeout: float = 60.0) -> Path:
    """Download the entry into the cache (once), verify it, and return its path."""
    existing = local_path(entry)
    if existing is not None:
        verify(entry, existing)
        return existing
    if entry.url is None:
        raise BenchError(f"weights {entry.name} have no download URL and are not on this machine")
    target = cache_dir() / entry.filename
    target.parent.mkdir(parents=True, exist_ok=True)
    from tqdm import tqdm

    handle, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{entry.filename}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(entry.url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=entry.name, disable=not progress or None) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
        temp_path = Path(temp_name)
        seen = sha256_of(temp_path)
        if entry.sha256 and seen != entry.sha256:
            raise BenchError(
                f"downloaded {entry.name} from {entry.url} but its sha256 is {seen}, expected {entry.sha256}; "
                "the file was not kept. The source may have changed: report it."
            )
        shutil.move(temp_path, target)
    except (urllib.error.URLError, OSError, TimeoutError) as error:
        raise BenchError(
            f"could not download {entry.name} from {entry.url} ({error}). Download the file by hand and put it "
            f"at {target}, or into a folder named by $BENCH_WEIGHTS_DIR as {entry.filename}."
        ) from error
    finally:
        Path(temp_name).unlink(missing_ok=True)
    if not entry.sha256:
        target.with_name(target.name + ".sha256").write_text(seen + "\n")
        log.warning("%s has no pinned sha256 yet; recorded the hash seen, %s, in %s.sha256", entry.name, seen, target)
    return target


def expected_path(entry: WeightsEntry) -> Path:
    """Where a file put by hand is looked for first: ``$BENCH_WEIGHTS_DIR/<filename>`` (else the cache)."""
    weights_dir = settings.weights_dir()
    return weights_dir / entry.filename if weights_dir else cache_dir() / entry.filename


def require_local(entry: WeightsEntry, needed_for: str, also: tuple[Path, ...] = ()) -> Path:
    """The entry's file on this machine (verified), also trying the paths in ``also``; nothing is
    downloaded. A missing file is a BenchError (exit 2) that names the paths looked at and where the file
    should go."""
    path = local_path(entry) or next((p for p in also if p.is_file()), None)
    if path is None:
        weights_dir = settings.weights_dir()
        looked = [weights_dir / entry.filename] if weights_dir else []
        looked += [cache_dir() / entry.filename, *also]
        note = f" ({entry.note})" if entry.note else ""
        raise BenchError(
            f"{needed_for} needs the weights {entry.name}, file {entry.filename}, which is not on this machine "
            f"(looked at: {', '.join(str(p) for p in looked)}). Put it at {expected_path(entry)}{note}: get it "
            f"from {entry.url} (licence: {entry.licence}) or run `bench weights fetch {entry.name}`."
            + ("" if weights_dir else " Or set BENCH_WEIGHTS_DIR to the folder that holds it.")
        )
    verify(entry, path)
    return path


def fetch_weights(name: str) -> tuple[WeightsEntry, Path, str]:
    """Fetch a named weights file into the cache (or find it locally) and verify it: (entry, path, sha256)."""
    entry = get_weights_entry(name)
    path = fetch(entry)
    return entry, path, verify(entry, path)
