"""`bench train`: smoke training, exact resume, the val split rule, the lr schedule, torchrun equivalence.

Everything runs on tiny folders of noise images: "real" ones are 2x2-block (nearest-upsampled) noise,
whose NPR residual is zero, "fake" ones plain noise. Sizes are chosen for the models' smallest inputs:
lfm-gap works at 32x32; lfm-k4 at 40x40 keeps 9 positions in its final map, so that both of LFM's random
regularisers (Rank-Based Linear Dropout and Random-K Sampling of 4 of 9) draw random numbers.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.cli import build_parser, main
from bench.errors import BenchError
from bench.train import (
    EpochBatches,
    Processes,
    TrainConfig,
    load_config,
    lr_at,
    mix_seed,
    resolve_config,
    resolve_data,
    train,
    write_checkpoint,
)
from detectors import export_state_dict, get_detector, load_detector

REPO = Path(__file__).resolve().parents[1]


def make_folder(root: Path, n_per_class: int, size: int, seed: int = 0) -> Path:
    """`root/{0_real,1_fake}/*.png`, n_per_class images each, size x size."""
    rng = np.random.default_rng(seed)
    for label in ("0_real", "1_fake"):
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            if label == "0_real":
                pixels = pixels[::2, ::2].repeat(2, axis=0).repeat(2, axis=1)
            Image.fromarray(pixels).save(root / label / f"{i:03d}.png")
    return root


@pytest.fixture
def tiny(tmp_path) -> Path:
    """A `train`/`val` pair of folders of 48x48 images (val found as the sibling of `train`)."""
    make_folder(tmp_path / "data" / "train", 4, 48, seed=1)
    make_folder(tmp_path / "data" / "val", 2, 48, seed=2)
    return tmp_path / "data"


def small_recipe(tiny: Path, output: Path, **changes) -> TrainConfig:
    values = dict(detector="lfm-k4", train_set=str(tiny / "train"), data_root=str(tiny.parent / "root"),
                  output=str(output), resize=None, crop=40, epochs=2, batch_size=4, workers=0)
    return TrainConfig(**{**values, **changes})


def read_log(folder: Path) -> list[dict]:
    with open(folder / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_smoke_one_epoch_from_the_cli(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--detector", "lfm-k4", "--train-set", str(tiny / "train"), "--resize", "none",
            "--crop", "40", "--epochs", "1", "--batch-size", "4", "--workers", "0", "--output", str(out),
            "--data-root", str(tmp_path / "root"), "--json"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["epochs"] == 1 and summary["best_epoch"] == 1
    assert {p.name for p in out.iterdir()} == {
        "best.pth", "best.json", "last.pth", "last.json", "state.pt", "log.csv", "config.json"}
    rows = read_log(out)
    assert [r["epoch"] for r in rows] == ["1"] and list(rows[0]) == [
        "epoch", "lr", "train_loss", "val_acc", "val_ap", "seconds"]

    sidecar = json.loads((out / "best.json").read_text())
    assert sidecar["sha256"] == hashlib.sha256((out / "best.pth").read_bytes()).hexdigest()
    assert sidecar["recipe"]["lr"] == 1e-4 and sidecar["recipe"]["aux_loss_weight"] == 0.02
    assert sidecar["recipe"]["optimizer"] == "adam" and sidecar["recipe"]["beta1"] == 0.9
    assert sidecar["data"]["train"]["n_images"] == 8 and sidecar["data"]["val"]["n_images"] == 4
    assert sidecar["data"]["val"]["root"] == str(tiny / "val")
    assert set(sidecar["val_metrics"]) >= {"acc", "ap"} and sidecar["epoch"] == 1
    assert sidecar["torch_version"] == torch.__version__ and "git_commit" in sidecar
    assert load_config(out).detector == "lfm-k4"

    # the checkpoint is in the official key layout and loads strictly, as `bench run --weights` does
    raw = torch.load(out / "best.pth", weights_only=True)
    assert "fc1.weight" in raw and "covn1_1.weight" in raw
    loaded = load_detector("lfm-k4", str(out / "best.pth"))
    assert loaded.weights.sha256 == sidecar["sha256"]

    # the folder now holds a run: a second start without --resume is refused (exit 2), as is a
    # resume that changes the recipe
    assert main(argv) == 2
    assert "already holds a training run" in capsys.readouterr().err
    assert main(["train", "--resume", "--output", str(out), "--lr", "0.5", "--workers", "0"]) == 2
    assert "lr (0.0001 -> 0.5)" in capsys.readouterr().err


@pytest.mark.slow
def test_resume_after_an_interruption_gives_the_same_weights(tiny, tmp_path):
    """A run interrupted after epoch 1 of 2 and resumed ends bit-identical to an uninterrupted one:
    model, optimizer state, BatchNorm statistics and the log. The resumed part even uses a loader worker
    process where the first part used none: augmentation does not depend on it."""
    full = train(small_recipe(tiny, tmp_path / "full"), progress=False)

    class Interrupted(Exception):
        pass

    def stop_after_first(record):
        if record["epoch"] == 1:
            raise Interrupted

    with pytest.raises(Interrupted):
        train(small_recipe(tiny, tmp_path / "cut"), progress=False, on_epoch_end=stop_after_first)
    assert [r["epoch"] for r in read_log(tmp_path / "cut")] == ["1"]
    resumed = train(small_recipe(tiny, tmp_path / "cut", workers=1), resume=True, progress=False)
    assert resumed.resumed_from == 1 and resumed.epochs == 2

    a = torch.load(tmp_path / "full" / "state.pt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "state.pt", weights_only=True)
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for index, slots in a["optimizer"]["state"].items():
        for name, value in slots.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(b["optimizer"]["state"][index][name]))
    for which in ("last.pth", "best.pth"):
        x = torch.load(tmp_path / "full" / which, weights_only=True)
        y = torch.load(tmp_path / "cut" / which, weights_only=True)
        assert all(torch.equal(x[k], y[k]) for k in x)
    strip = [{k: v for k, v in row.items() if k != "seconds"} for row in read_log(tmp_path / "full")]
    assert strip == [{k: v for k, v in row.items() if k != "seconds"} for row in read_log(tmp_path / "cut")]
    assert full.history[-1]["train_loss"] == resumed.history[-1]["train_loss"]


@pytest.fixture
def data_root(tmp_path) -> Path:
    """A data root with a (tiny) Test Set 1 and a ProGAN train/val pair in the official layout."""
    root = tmp_path / "datasets"
    make_folder(root / "Generalization_Test" / "ForenSynths_test" / "progan", 2, 32)
    for split in ("train", "val"):
        for cls in ("car", "cat", "chair", "horse"):
            make_folder(root / "ForenSynths_train_val" / split / cls, 1, 32)
    return root


def test_the_val_split_is_never_a_test_suite(data_root, tmp_path, capsys):
    def config(**changes):
        values = dict(detector="lfm-gap", train_set="progan4", data_root=str(data_root), resize=None, crop=32)
        return TrainConfig(**{**values, **changes})

    train_data, val_data = resolve_data(config(), data_root)  # default: the matching val split
    assert (train_data.name, val_data.name) == ("progan4", "progan4-val")
    assert (train_data.split, val_data.split) == ("train", "val")
    assert val_data.resize == 256 and val_data.root == data_root / "ForenSynths_train_val" / "val"
    assert len(train_data.items) == 8 and set(train_data.generators) == {"car", "cat", "chair", "horse"}

    # the train split given as a path, under another data root: its val split is the one beside it
    other_root = tmp_path / "other"
    by_path = resolve_data(config(train_set=str(data_root / "ForenSynths_train_val" / "train")), other_root)
    assert by_path[0].name == "progan4" and by_path[1].root == data_root / "ForenSynths_train_val" / "val"

    test_suite = data_root / "Generalization_Test" / "ForenSynths_test"
    elsewhere = make_folder(tmp_path / "copy" / "ForenSynths_test" / "progan", 1, 32)
    for val_set in ("forensynths", "testset1", str(test_suite), str(test_suite / "progan"), str(elsewhere)):
        with pytest.raises(BenchError, match="test suite 'forensynths'"):
            resolve_data(config(val_set=val_set), data_root)
    for train_set in ("testset1", str(test_suite / "progan")):
        with pytest.raises(BenchError, match="test suite"):
            resolve_data(config(train_set=train_set), data_root)
    with pytest.raises(BenchError, match="validation split"):
        resolve_data(config(train_set="progan4-val"), data_root)
    with pytest.raises(BenchError, match="not a group"):
        resolve_data(config(val_set="gan"), data_root)
    with pytest.raises(BenchError, match="no such folder"):
        resolve_data(config(val_set=str(tmp_path / "missing")), data_root)
    with pytest.raises(BenchError, match="no matching val split"):
        resolve_data(config(train_set=str(make_folder(tmp_path / "alone", 1, 32))), data_root)

    # from the CLI: exit code 2 and a message that says what to do, before any training
    assert main(["train", "--detector", "lfm-gap", "--train-set", "progan4", "--val-set", "forensynths",
                 "--data-root", str(data_root), "--output", str(tmp_path / "never")]) == 2
    assert "Test suites are for evaluation only" in capsys.readouterr().err
    assert not (tmp_path / "never").exists()


@pytest.mark.slow
def test_lr_schedule(tiny, tmp_path):
    # NPR's train.py decays at the end of epoch e (0-based) when e % 10 == 0 and e != 0: epochs 0-10 run at
    # lr, 11-20 at 0.9 lr, 21-30 at 0.81 lr, ... (the default); `step` decays one epoch earlier
    official = TrainConfig(detector="lfm", train_set="x", lr=1e-4)
    assert official.lr_schedule == "official"
    epochs = (0, 9, 10, 11, 19, 20, 21, 49)
    assert [lr_at(official, e, 1e-4) for e in epochs] == pytest.approx(
        [1e-4, 1e-4, 1e-4, 0.9e-4, 0.9e-4, 0.9e-4, 0.81e-4, 1e-4 * 0.9**4])
    step = TrainConfig(detector="lfm", train_set="x", lr=1e-4, lr_schedule="step")
    assert [lr_at(step, e, 1e-4) for e in epochs] == pytest.approx(
        [1e-4, 1e-4, 0.9e-4, 0.9e-4, 0.9e-4, 0.81e-4, 0.81e-4, 1e-4 * 0.9**4])

    # the detectors' own learning rates (their READMEs) and auxiliary-loss weights are the defaults
    def resolved(name):
        return resolve_config(TrainConfig(detector=name, train_set="x", output=str(tmp_path / name)),
                              get_detector(name), torch.device("cpu"), Processes())

    assert (resolved("lfm").lr, resolved("lfm").aux_loss_weight) == (1e-4, 0.02)
    assert (resolved("npr").lr, resolved("npr").aux_loss_weight) == (2e-4, 0.0)
    assert resolved("lfm-official").aux_loss_weight == 0.0 and resolved("lfm").amp == "off"
    on_cuda = resolve_config(TrainConfig(detector="npr", train_set="x", output=str(tmp_path / "cuda")),
                             get_detector("npr"), torch.device("cuda"), Processes())
    assert on_cuda.amp == "off"  # float32 on CUDA too, as the official training code

    # in a run: every epoch's lr is logged and is the one the optimizer used
    out = tmp_path / "run"
    train(small_recipe(tiny, out, detector="lfm-gap", crop=32, epochs=3, lr=0.01, lr_step=1, lr_decay=0.5,
                       max_steps_per_epoch=1), progress=False)
    assert [float(r["lr"]) for r in read_log(out)] == pytest.approx([0.01, 0.01, 0.005])
    state = torch.load(out / "state.pt", weights_only=True)
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.005)

    # a finished run resumed with more epochs goes on where it ended, on the same schedule
    longer = train(small_recipe(tiny, out, detector="lfm-gap", crop=32, epochs=4, lr=0.01, lr_step=1, lr_decay=0.5,
                                max_steps_per_epoch=1), resume=True, progress=False)
    assert longer.resumed_from == 3 and [float(r["lr"]) for r in read_log(out)][3:] == pytest.approx([0.0025])


def test_cli_defaults_and_the_demo_recipe():
    parser = build_parser()
    from bench.commands.train import config_from_args as build_config

    demo = build_config(parser.parse_args(["train", "--detector", "lfm", "--train-set", "demo"]))
    assert (demo.resize, demo.crop, demo.epochs, demo.batch_size) == (None, 96, 50, 32)
    custom = build_config(parser.parse_args(["train", "--detector", "lfm", "--train-set", "demo", "--crop", "64"]))
    assert (custom.resize, custom.crop) == (None, 64)
    paper = build_config(parser.parse_args(["train", "--detector", "npr", "--train-set", "progan4", "--no-flip"]))
    assert (paper.resize, paper.crop, paper.flip, paper.lr, paper.lr_decay, paper.lr_step) == (
        256, 224, False, None, 0.9, 10)
    with pytest.raises(BenchError, match="must be at least 1"):
        TrainConfig(detector="lfm", train_set="x", epochs=0)


def test_batches_split_the_global_batch_over_ranks():
    one = EpochBatches(10, 4, seed=0, epoch=3)
    two = [EpochBatches(10, 4, seed=0, epoch=3, rank=r, world=2) for r in range(2)]
    assert len(one) == 3 and [one.global_size(s) for s in range(3)] == [4, 4, 2]
    for step, whole in enumerate(one):
        parts = [list(sampler)[step] for sampler in two]
        assert sorted(parts[0] + parts[1]) == sorted(whole)
    assert list(EpochBatches(10, 4, seed=0, epoch=3)) == list(one)  # a function of (seed, epoch)
    assert list(EpochBatches(10, 4, seed=0, epoch=4)) != list(one)
    assert len(EpochBatches(9, 4, seed=0, epoch=0, world=2)) == 2  # a last global batch of 1 < 2 ranks: dropped


@pytest.mark.slow
def test_two_process_torchrun_steps_match_one_process(tmp_path):
    """Two steps on global batches of 4 and then 3 images, split over 2 gloo processes (torchrun), give
    the weights one process gets on the same batches, within 1e-5 (measured: 3e-6; 3e-3 without the
    loss weighting below). The second, short batch splits 2 + 1: each process's loss is weighted by its
    share of the global batch.

    BatchNorm: each process normalises with the statistics of the whole global batch. torch's
    SyncBatchNorm refuses CPU tensors, so on CPU/gloo `bench.train.GlobalBatchNorm` does it (the same
    maths, state-dict compatible); without it the two runs differ by about 1e-3 (per-process statistics
    over 2 images instead of 4).
    Optimizer: SGD, not the recipe's Adam. Adam's first step is lr x g / (|g| + eps), about lr x sign(g):
    for gradients that are float noise around zero (the bias of a convolution that a BatchNorm follows
    has an exact gradient of 0) any rounding difference flips the update by up to 2 x lr, which says
    nothing about whether the gradients agree. SGD moves each weight by lr x g, so the comparison checks
    the gradients themselves; the test also checks that the steps moved the weights well beyond 1e-5.
    """
    data = make_folder(tmp_path / "train", 4, 32)
    (data / "1_fake" / "003.png").unlink()  # 7 images: batches of 4 and 3
    make_folder(tmp_path / "val", 1, 32)
    common = ["--detector", "lfm-gap", "--train-set", str(data), "--resize", "none", "--crop", "32",
              "--epochs", "1", "--batch-size", "4", "--optimizer", "sgd", "--lr", "0.1", "--workers", "0",
              "--data-root", str(tmp_path / "root"), "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launched = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "bench", "train", *common, "--output", str(tmp_path / "two")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240,
    )
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert json.loads(launched.stdout)["epochs"] == 1  # rank 0 alone prints the summary
    sidecar = json.loads((tmp_path / "two" / "last.json").read_text())
    assert sidecar["world_size"] == 2 and sidecar["step"] == 2

    assert main(["train", *common, "--output", str(tmp_path / "one")]) == 0
    two = torch.load(tmp_path / "two" / "last.pth", weights_only=True)
    one = torch.load(tmp_path / "one" / "last.pth", weights_only=True)
    assert two.keys() == one.keys()
    for key in one:
        assert torch.allclose(two[key].double(), one[key].double(), rtol=0, atol=1e-5), key
    log_two, log_one = read_log(tmp_path / "two"), read_log(tmp_path / "one")
    assert float(log_two[0]["train_loss"]) == pytest.approx(float(log_one[0]["train_loss"]), abs=1e-6)

    detector = get_detector("lfm-gap")
    torch.manual_seed(mix_seed(0, "init"))  # the initial weights, as train() builds them
    start = export_state_dict(detector.build_model(), detector)
    moved = max(float((one[k].double() - start[k].double()).abs().max()) for k in one if k.endswith("weight"))
    assert moved > 1e-3


def test_cnndetection_checkpoints_keep_the_official_wrapper(tmp_path):
    detector = get_detector("cnndetection")
    path = write_checkpoint(tmp_path, "best", detector.build_model(), detector, {"epoch": 0})
    raw = torch.load(path, weights_only=True)
    assert list(raw) == ["model"] and "fc.weight" in raw["model"]  # torchvision names, as the official files
    assert load_detector("cnndetection", str(path)).weights.sha256 == json.loads(
        (tmp_path / "best.json").read_text())["sha256"]


@pytest.mark.slow
def test_demo_training_defaults_are_the_official_code_s(tmp_path, capsys):
    """Issue 11, item 2: `bench train --detector npr --train-set demo --epochs 2` records float32, the last
    epoch as the checkpoint, the official validation transform and decay schedule, and does them: the
    recorded val metrics are what the official validation pipeline (torchvision CenterCrop, float32
    sigmoid, sklearn) gives on the last checkpoint."""
    from PIL import Image
    from sklearn.metrics import accuracy_score, average_precision_score
    from torchvision import transforms

    from bench.demo import ensure_demo_data

    data_root = tmp_path / "data"
    ensure_demo_data(data_root, quiet=True, counts={"demo-gan": 2, "demo-diffusion": 2, "demo-train": 8, "demo-val": 6})
    out = tmp_path / "run"
    argv = ["train", "--detector", "npr", "--train-set", "demo", "--epochs", "2", "--max-steps-per-epoch", "1",
            "--batch-size", "4", "--workers", "0", "--data-root", str(data_root), "--output", str(out), "--json"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    config = json.loads((out / "config.json").read_text())
    assert config["amp"] == "off"  # float32
    assert config["checkpoint"] == "last" and summary["recommended_path"] == str(out / "last.pth")
    assert config["val_transform"] == "center-crop"
    assert (config["lr_schedule"], config["lr_decay"], config["lr_step"]) == ("official", 0.9, 10)
    assert (config["resize"], config["crop"]) == (None, 96)  # the demo recipe: native 128x128, 96 crops

    # the validation images went through the official loader: CenterCrop(96) of the native image
    prepare = transforms.Compose([transforms.CenterCrop(96), transforms.ToTensor(),
                                  transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    val_root = data_root / "demo" / "demo-val"
    files = sorted(val_root.rglob("*.png"))
    labels = [1 if p.parent.name == "1_fake" else 0 for p in files]
    model = load_detector("npr", str(out / "last.pth")).model
    with torch.no_grad():
        batch = torch.stack([prepare(Image.open(p).convert("RGB")) for p in files])
        y_pred = model(batch).float().sigmoid().flatten().tolist()
    last = json.loads((out / "last.json").read_text())["val_metrics"]
    assert last["ap"] == pytest.approx(average_precision_score(labels, y_pred), abs=1e-6)
    assert last["acc"] == pytest.approx(accuracy_score(labels, np.array(y_pred) > 0.5))
    assert last["n_real"] + last["n_fake"] == len(files) == 12


@pytest.mark.parametrize("resize,crop,size", [(256, 224, (300, 200)), (None, 96, (128, 128))])
def test_validation_images_go_through_the_official_loader(tmp_path, resize, crop, size):
    """NPR's data/datasets.py for validation (isTrain False, no_resize/no_crop False): Resize((256, 256))
    -> CenterCrop(224), torchvision's; the demo recipe (no resize, crop 96) gives CenterCrop(96)."""
    from torchvision import transforms

    from bench.train.batches import TrainData
    from bench.train.loop import validation_spec

    rng = np.random.default_rng(0)
    path = tmp_path / "x.png"
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    steps = ([transforms.Resize((resize, resize))] if resize else []) + [transforms.CenterCrop(crop),
                                                                         transforms.PILToTensor()]
    expected = transforms.Compose(steps)(Image.open(path).convert("RGB"))
    config = TrainConfig(detector="npr", train_set="x", resize=resize, crop=crop)
    val = TrainData("v", "v", tmp_path, "val", 256, [(path, 0)])
    got = validation_spec(config, val, get_detector("npr").preprocessing).decode(path).pixels
    assert torch.equal(got, expected)
    # the other option: the val split's test-time protocol (here 256x256, no crop)
    protocol = validation_spec(TrainConfig(detector="npr", train_set="x", val_transform="test-protocol"), val,
                               get_detector("npr").preprocessing).decode(path).pixels
    assert protocol.shape == (3, 256, 256)


def test_recipes_recorded_before_the_official_defaults_resume_and_rebuild_as_they_began(tmp_path):
    """A config.json without lr_schedule/checkpoint/val_transform was made under the earlier defaults:
    resuming it keeps them, and the demo bundle's training command repeats them."""
    from bench.train.bundle import training_command

    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"detector": "lfm", "train_set": "demo", "epochs": 5, "seed": 0}))
    old = load_config(folder)
    assert (old.lr_schedule, old.checkpoint, old.val_transform) == ("step", "best", "test-protocol")
    command = training_command({"detector": "lfm", "epochs": 5, "seed": 0})
    assert command.endswith("--seed 0 --lr-schedule step --checkpoint best --val-transform test-protocol")
    new = {"detector": "lfm", "epochs": 5, "seed": 0, "lr_schedule": "official", "checkpoint": "last",
           "val_transform": "center-crop"}
    assert training_command(new).endswith("--seed 0")
