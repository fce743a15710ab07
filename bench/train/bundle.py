"""Ship a `bench train --train-set demo` (or `demo-local-train`) checkpoint inside the package as `<family>:demo`.

    python -m bench.train.bundle RUN_FOLDER [RUN_FOLDER ...]

copies each run's recommended checkpoint (by its `--checkpoint` rule) to `detectors/bundled/<family>_demo.pth`
and records it in
`detectors/bundled/manifest.json` (sha256, the training command, the demo data's content hash, the
validation metrics), which `detectors.weights` reads to register the bundled weights.
"""

from __future__ import annotations

import argparse
import json
import shutil
from importlib import resources
from pathlib import Path

from bench.demo.build import content_hash
from bench.engine.store import atomic_write_json
from bench.errors import BenchError

WEIGHTS_DIR = Path(str(resources.files("detectors").joinpath("bundled")))
"""Package data of `detectors`: the bundled files and their manifest, read by `detectors.weights`."""


def _convention_flags(recipe: dict) -> str:
    """The options that repeat a recipe's non-default conventions (a recipe recorded before a convention
    was a field used its legacy value)."""
    from bench.train import LEGACY_RECIPE, TrainConfig

    defaults = TrainConfig(detector=recipe["detector"], train_set="demo")
    flags = []
    for name in ("lr_schedule", "checkpoint", "val_transform"):
        value = recipe.get(name, LEGACY_RECIPE[name])
        if value != getattr(defaults, name):
            flags.append(f" --{name.replace('_', '-')} {value}")
    return "".join(flags)


DEMO_TRAIN_SETS = ("demo", "demo-local-train")
"""Training sets a bundled demo checkpoint may come from: the demo set, or the local-forgery one (LAE)."""


def _mask_flags(recipe: dict) -> str:
    selection = recipe.get("mask_selection", "none")
    if selection == "none":
        return ""
    flags = f" --mask-selection {selection}"
    if selection in ("random", "active"):
        flags += f" --mask-budget {recipe['mask_budget']:g}"
    if selection == "active" and recipe.get("mask_query_epoch", 1) != 1:
        flags += f" --mask-query-epoch {recipe['mask_query_epoch']}"
    return flags


def training_command(recipe: dict) -> str:
    return (f"bench train --detector {recipe['detector']} --train-set {recipe.get('train_set', 'demo')} "
            f"--epochs {recipe['epochs']} "
            f"--seed {recipe['seed']}{_mask_flags(recipe)}{_convention_flags(recipe)}")


def _data_hash(train_set: str) -> str:
    if train_set == "demo-local-train":
        from bench.demo.local import content_hash as local_content_hash

        return local_content_hash()
    return content_hash()


def _recommended(run_folder: Path) -> str:
    config_path = run_folder / "config.json"
    if not config_path.is_file():
        raise BenchError(f"{run_folder} has no config.json: is it a `bench train` output folder?")
    from bench.train import LEGACY_RECIPE

    return json.loads(config_path.read_text()).get("checkpoint", LEGACY_RECIPE["checkpoint"])


def bundle(run_folder: Path) -> dict:
    which = _recommended(run_folder)
    sidecar_path = run_folder / f"{which}.json"
    checkpoint = run_folder / f"{which}.pth"
    if not sidecar_path.is_file() or not checkpoint.is_file():
        raise BenchError(f"{run_folder} has no {which}.pth/{which}.json: is it a `bench train` output folder?")
    sidecar = json.loads(sidecar_path.read_text())
    if sidecar["recipe"]["train_set"] not in DEMO_TRAIN_SETS:
        raise BenchError(f"{run_folder} was trained on {sidecar['recipe']['train_set']!r}, not on a demo training set "
                         f"({', '.join(DEMO_TRAIN_SETS)})")
    family = sidecar["weights_family"]
    filename = f"{family.replace('-', '_')}_demo.pth"
    WEIGHTS_DIR.mkdir(exist_ok=True)
    shutil.copyfile(checkpoint, WEIGHTS_DIR / filename)
    return {
        "family": family,
        "tag": "demo",
        "filename": filename,
        "sha256": sidecar["sha256"],
        "source": f"this project: `{training_command(sidecar['recipe'])}` (epoch {sidecar['epoch']}, the {which} "
                  "checkpoint)",
        "note": "trained on synthetic demo data only; not a detector for real images",
        "detector": sidecar["detector"],
        "demo_data_content_hash": _data_hash(sidecar["recipe"]["train_set"]),
        "val_metrics": {k: sidecar["val_metrics"].get(k) for k in ("acc", "ap")},
        "recipe": sidecar["recipe"] | {"output": None, "data_root": None},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.train.bundle", description=__doc__)
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args(argv)
    manifest_path = WEIGHTS_DIR / "manifest.json"
    records = json.loads(manifest_path.read_text()) if manifest_path.is_file() else []
    for run_folder in args.runs:
        record = bundle(run_folder)
        records = [r for r in records if r["family"] != record["family"]] + [record]
        print(f"bundled {record['family']}:demo <- {run_folder} (sha256 {record['sha256'][:12]})")
    atomic_write_json(manifest_path, sorted(records, key=lambda r: r["family"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
