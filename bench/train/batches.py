"""The training and validation images: resolving --train-set/--val-set, `TrainImages`, `EpochBatches`."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from bench.errors import BenchError
from bench.train.recipe import TrainConfig, mix_seed


@dataclass
class TrainData:
    """One side (train or val) of the data: where it is and which images it holds."""

    spec: str
    name: str
    root: Path
    split: str
    resize: int | None
    """Val: the test-time protocol of the split (256 or native). Train: the recipe's resize."""
    items: list[tuple[Path, int]]
    generators: dict[str, dict[str, int]] = field(default_factory=dict)
    mask_files: dict[int, Path] = field(default_factory=dict)
    """Item index -> forgery mask file, for the fakes that have one on disk (`1_fake_masks`)."""

    def describe(self) -> dict:
        n_fake = sum(label for _, label in self.items)
        return {
            "spec": self.spec, "name": self.name, "root": str(self.root), "split": self.split,
            "protocol": "native" if self.resize is None else f"resize{self.resize}",
            "n_images": len(self.items), "n_real": len(self.items) - n_fake, "n_fake": n_fake,
            "generators": self.generators, "fingerprint": self.fingerprint(),
        }

    def fingerprint(self) -> str:
        """The file list (relative paths and labels): a resumed run must see the same data."""
        digest = hashlib.sha256()
        for path, label in self.items:
            digest.update(f"{path.relative_to(self.root).as_posix()}\t{label}\n".encode())
        return digest.hexdigest()[:24]


def _registered(suite) -> bool:
    """A suite from the registry (possibly matched from a path), not an ad-hoc folder."""
    from bench.engine.suites import SUITES

    known = SUITES.get(suite.name)
    return known is not None and dataclasses.replace(known, folder=suite.folder) == suite


def _test_suite_around(root: Path, data_root: Path):
    """The registered test suite a folder is or lies inside (by location or by folder name), or None."""
    from bench.engine.suites import SUITES

    root = root.resolve()
    for suite in SUITES.values():
        if suite.split != "test":
            continue
        suite_root = (data_root / suite.folder).resolve()
        if root == suite_root or suite_root in root.parents:
            return suite
        if Path(suite.folder).name in (root.name, *(p.name for p in root.parents)):
            return suite
    return None


def _resolve_one(spec: str, data_root: Path, role: str):
    """`--train-set`/`--val-set` -> one ResolvedSuite; test suites, groups and lists are refused."""
    from bench.engine.suites import GROUPS, known_names, resolve_suites

    if "," in spec or spec.lower() in GROUPS:
        raise BenchError(f"--{role}-set {spec}: give one suite or one folder, not a group or a list")
    if spec.lower() not in known_names() and not Path(spec).expanduser().exists() and (
            "/" in spec or os.sep in spec or spec.startswith((".", "~"))):
        raise BenchError(f"--{role}-set {spec}: no such folder")
    (resolved,) = resolve_suites(spec, data_root)
    suite = resolved.suite
    test_suite = suite if _registered(suite) and suite.split == "test" else None
    if test_suite is None and not _registered(suite):
        test_suite = _test_suite_around(resolved.root, data_root)
    if test_suite is not None:
        raise BenchError(
            f"--{role}-set {spec}: {resolved.root} is (part of) the test suite {test_suite.name!r}. Test suites "
            f"are for evaluation only: train on a `train` split (e.g. progan4) and validate on its `val` split "
            f"(e.g. progan4-val), or pass folders that are not test data."
        )
    if role == "train" and _registered(suite) and suite.split == "val":
        raise BenchError(f"--train-set {spec} is a validation split; train on its train split instead")
    if suite.demo and not resolved.exists:
        from bench.demo import ensure_demo_suites

        ensure_demo_suites(data_root, [suite.name])
        (resolved,) = resolve_suites(spec, data_root)
    if not resolved.exists:
        raise BenchError(
            f"--{role}-set {spec}: {suite.name} not found at {resolved.root} (published at {suite.source}). "
            "Download it there or pass --data-root; see README.md, section 'Getting the paper's data'."
        )
    return resolved


def _matching_val(train, data_root: Path):
    """The `val` split beside a training set (progan4 -> progan4-val, demo-train -> demo-val, a folder
    `X/train` -> `X/val`), as a ResolvedSuite; None when there is none."""
    from bench.engine.suites import SUITES

    suite = train.suite
    if not _registered(suite):
        sibling = train.root.parent / "val"
        return _resolve_one(str(sibling), data_root, "val") if train.root.name == "train" and sibling.is_dir() else None
    names = (suite.name.replace("-train", "-val"), f"{suite.name}-val")
    val = next((SUITES[n] for n in names if n in SUITES and SUITES[n].split == "val"), None)
    if val is None:
        return None
    base = train.root  # the data root this train split sits in (it may have been given as a path)
    for _ in Path(SUITES[suite.name].folder).parts:
        base = base.parent
    if base.resolve() == data_root.resolve():
        return _resolve_one(val.name, data_root, "val")
    return _resolve_one(str(base / val.folder), data_root, "val")


def _collect(resolved, spec: str, resize: int | None, role: str) -> TrainData:
    from bench.engine.suites import discover

    items: list[tuple[Path, int]] = []
    generators = {}
    mask_files: dict[int, Path] = {}
    for generator in discover(resolved.root, resolved.suite):
        items += [(p, 0) for p in generator.real]
        mask_files.update({len(items) + i: generator.masks[p] for i, p in enumerate(generator.fake) if p in generator.masks})
        items += [(p, 1) for p in generator.fake]
        generators[generator.name] = {"n_real": len(generator.real), "n_fake": len(generator.fake)}
        if generator.has_masks:
            generators[generator.name]["n_masks"] = len(generator.masks)
    n_fake = sum(label for _, label in items)
    if n_fake == 0 or n_fake == len(items):
        raise BenchError(
            f"--{role}-set {spec}: {resolved.root} needs both real (0_real) and fake (1_fake) images; "
            f"found {len(items) - n_fake} real and {n_fake} fake"
        )
    split = resolved.suite.split if _registered(resolved.suite) else "folder"
    return TrainData(spec, resolved.suite.name, resolved.root, split, resize, items, generators, mask_files)


def resolve_data(config: TrainConfig, data_root: Path) -> tuple[TrainData, TrainData]:
    """The training and validation images of a recipe."""
    train_spec = "demo-train" if config.train_set == "demo" else config.train_set
    train = _resolve_one(train_spec, data_root, "train")
    if config.val_set is not None:
        val = _resolve_one("demo-val" if config.val_set == "demo" else config.val_set, data_root, "val")
    else:
        val = _matching_val(train, data_root)
        if val is None:
            raise BenchError(
                f"--train-set {config.train_set} has no matching val split; give one with --val-set "
                "(a folder of 0_real/1_fake images that is not a test suite)"
            )
    if val.root.resolve() == train.root.resolve():
        raise BenchError("the validation set is the training set; give a separate --val-set")
    # a registered val split keeps its test-time protocol; a plain folder is validated like training images
    val_resize = val.suite.resize if _registered(val.suite) else config.resize
    return (
        _collect(train, config.train_set, config.resize, "train"),
        _collect(val, config.val_set or (val.suite.name if _registered(val.suite) else str(val.root)), val_resize, "val"),
    )


class TrainImages(torch.utils.data.Dataset):
    """(epoch, index) -> (uint8 [3, crop, crop], label). The crop and flip of an image depend only on
    (seed, epoch, index), so they are the same whatever the worker count or the process layout.

    With `masks` (index -> mask file of the images granted one; may be empty) every sample also carries
    its mask, cropped and flipped with the image (bool [crop, crop]; all zero without one), and whether
    it has one: (pixels, label, mask, has_mask)."""

    def __init__(self, items, resize: int | None, crop: int | None, flip: bool, seed: int, preprocessing,
                 masks: dict[int, Path] | None = None):
        self.items = items
        self.resize = resize
        self.crop = crop
        self.flip = flip
        self.seed = seed
        self.preprocessing = preprocessing
        self.masks = masks

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: tuple[int, int]) -> tuple:
        from bench.engine.decode import UnusableImage, decode_image, decode_mask

        epoch, index = key
        path, label = self.items[index]
        try:
            # the official training code loads truncated files (ImageFile.LOAD_TRUNCATED_IMAGES = True)
            decoded = decode_image(path, self.resize, even_crop=self.preprocessing.even_crop, load_truncated=True,
                                   interpolation=self.preprocessing.interpolation)
        except UnusableImage as error:
            raise BenchError(f"training image {path} cannot be used ({error.reason}); remove it or fix it") from error
        pixels = decoded.pixels
        mask = None
        if self.masks is not None:
            mask_file = self.masks.get(index)
            try:
                mask = decode_mask(mask_file, decoded.original_size, self.resize, self.preprocessing.even_crop)
            except UnusableImage as error:
                raise BenchError(f"forgery mask {mask_file} of {path} cannot be used ({error.reason})") from error
        generator = torch.Generator().manual_seed(mix_seed(self.seed, "augment", epoch, index))
        if self.crop is not None:
            height, width = pixels.shape[1:]
            if height < self.crop or width < self.crop:
                raise BenchError(
                    f"training image {path} is {width}x{height}, smaller than the {self.crop}x{self.crop} crop; "
                    "use a smaller --crop or --resize (the demo recipe is --resize none --crop 96)"
                )
            top = int(torch.randint(0, height - self.crop + 1, (1,), generator=generator))
            left = int(torch.randint(0, width - self.crop + 1, (1,), generator=generator))
            pixels = pixels[:, top:top + self.crop, left:left + self.crop]
            if mask is not None:
                mask = mask[top:top + self.crop, left:left + self.crop]
        if self.flip and float(torch.rand(1, generator=generator)) < 0.5:
            pixels = pixels.flip(-1)
            if mask is not None:
                mask = mask.flip(-1)
        if mask is not None:
            return pixels.contiguous(), float(label), mask.contiguous(), index in self.masks
        return pixels.contiguous(), float(label)


class EpochBatches(torch.utils.data.Sampler):
    """This rank's share of every global batch of an epoch, as lists of (epoch, index) keys.

    The order is a permutation seeded with (seed, epoch); global batch b is order[b*B:(b+1)*B] and rank r
    takes its items r, r+W, r+2W, ... The last, short global batch is kept (as the official loader's
    drop_last=False) when every rank gets at least one image of it. `set_epoch` moves to another epoch;
    the keys carry the epoch, so persistent loader workers never augment with a stale one."""

    def __init__(self, n_items: int, batch_size: int, seed: int, rank: int = 0, world: int = 1,
                 max_steps: int | None = None, epoch: int = 0) -> None:
        super().__init__()
        self.n_items = n_items
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world = world
        self.max_steps = max_steps
        self.set_epoch(epoch)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        generator = torch.Generator().manual_seed(mix_seed(self.seed, "order", epoch))
        order = torch.randperm(self.n_items, generator=generator).tolist()
        batches = [order[i:i + self.batch_size] for i in range(0, self.n_items, self.batch_size)]
        if batches and len(batches[-1]) < self.world:
            batches.pop()
        self.global_batches = batches[:self.max_steps] if self.max_steps is not None else batches

    def __len__(self) -> int:
        return len(self.global_batches)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for batch in self.global_batches:
            yield [(self.epoch, index) for index in batch[self.rank::self.world]]

    def global_size(self, step: int) -> int:
        return len(self.global_batches[step])
