"""`--sample N`: the images UnivFD's validate.py scores of a test set, checked against a re-statement of its
`RealFakeDataset.read_path` (github.com/WisconsinAIVision/UniversalFakeDetect): `set_seed()` (random.seed(0)),
`recursively_read` of each class (os.walk, here with sorted names, since os.walk's own order is the file
system's), `random.shuffle` of the real then the fake list, the first `max_sample` of each, 100 when a
class has fewer than `max_sample`."""

from __future__ import annotations

import json
import os
import random

import numpy as np
import pytest
from PIL import Image

from bench.cli import main
from bench.engine.runner import build_units
from bench.engine.suites import resolve_suites

EXTS = ["png", "jpg", "JPEG", "jpeg", "bmp"]  # validate.py recursively_read's default


def official_selection(root, max_sample):
    """validate.py's read_path in data_mode 'wang2020' on one set, with os.walk's names sorted."""
    def recursively_read(rootdir, must_contain):
        out = []
        for r, d, f in os.walk(rootdir):
            d.sort()
            for file in sorted(f):
                if file.split(".")[1] in EXTS and must_contain in os.path.join(r, file):
                    out.append(os.path.join(r, file))
        return out

    random.seed(0)
    real_list, fake_list = recursively_read(root, "0_real"), recursively_read(root, "1_fake")
    if max_sample > len(real_list) or max_sample > len(fake_list):
        max_sample = 100
    random.shuffle(real_list)
    random.shuffle(fake_list)
    return set(real_list[:max_sample]), set(fake_list[:max_sample])


def write_generator(folder, counts, size=(8, 8)):
    """counts: {category: (n_real, n_fake)}; categories 'a' and 'a-b' sort differently as paths ('a-b/' <
    'a/') and in os.walk (a before a-b), so the walk's order is what is tested."""
    rng = np.random.default_rng(0)
    for category, (n_real, n_fake) in counts.items():
        for label, n in (("0_real", n_real), ("1_fake", n_fake)):
            (folder / category / label).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / category / label / f"{i:03d}.png")
    return folder


def unit_files(root, generator_folder, **options):
    [unit] = build_units(resolve_suites(str(generator_folder.parent), root), None, **options)
    real = {str(p) for p, label in unit.items if label == 0}
    fake = {str(p) for p, label in unit.items if label == 1}
    return real, fake


def test_sample_is_validate_pys_seeded_draw_in_walk_order(tmp_path):
    folder = write_generator(tmp_path / "suite" / "gen", {"a": (6, 4), "a-b": (5, 7), "c": (3, 2)})
    real, fake = unit_files(tmp_path, folder, sample=5)
    official_real, official_fake = official_selection(folder, 5)
    assert (real, fake) == (official_real, official_fake)
    assert len(real) == len(fake) == 5
    # the paths' plain sort order would shuffle another list: a different draw
    random.seed(0)
    by_str = sorted(str(p) for p in folder.rglob("0_real/*.png"))
    random.shuffle(by_str)
    assert set(by_str[:5]) != official_real


def test_sample_falls_to_100_when_a_class_is_short_as_validate_py_does(tmp_path):
    folder = write_generator(tmp_path / "suite" / "gen", {"a": (70, 60), "b": (60, 80)}, size=(2, 2))
    real, fake = unit_files(tmp_path, folder, sample=1000)
    assert len(real) == len(fake) == 100
    assert (real, fake) == official_selection(folder, 1000)
    assert unit_files(tmp_path, folder, sample=130) == official_selection(folder, 130)  # 130 real, 140 fake


@pytest.mark.slow
def test_run_records_the_sample_and_a_sample_that_keeps_every_file_reuses_the_scores(tmp_path):
    folder = write_generator(tmp_path / "GANGen-Detection" / "AttGAN", {"a": (4, 3), "b": (3, 5)}, size=(32, 32))
    suite = folder.parent
    common = ["run", "--detector", "npr", "--weights", "demo", "--suite", str(suite), "--workers", "0",
              "--output", str(tmp_path / "results"), "-q"]
    assert main([*common, "--sample", "3"]) == 0
    assert main([*common]) == 0
    assert main([*common, "--sample", "100"]) == 0  # 7 and 8 images: the fallback 100 keeps all of them
    # The three runs can start within one second, so their time prefixes may tie: order them by the
    # suffix each run name carries for its sample rather than by name.
    by_suffix = {run.name.rsplit("-", 1)[-1]: run for run in (tmp_path / "results" / "runs").iterdir()}
    assert len(by_suffix) == 3, sorted(by_suffix)
    runs = [by_suffix["sample3"], by_suffix["gangen"], by_suffix["sample100"]]
    infos = [json.loads((run / "run.json").read_text()) for run in runs]
    assert [info["sample_per_class"] for info in infos] == [3, None, 100]
    import pandas as pd

    scored = set(pd.read_parquet(runs[0] / "scores.parquet")["path"])
    official_real, official_fake = official_selection(folder, 3)
    assert scored == {os.path.relpath(p, suite) for p in official_real | official_fake}
    keys = [info["work_keys"] for info in infos]
    assert keys[0] != keys[1] and keys[1] == keys[2]  # a key moves only when the files scored do


def test_sample_and_limit_together_is_a_usage_error(tmp_path, capsys):
    assert main(["run", "--detector", "npr", "--suite", str(tmp_path), "--sample", "3", "--limit", "2"]) == 2
    assert "--sample and --limit" in capsys.readouterr().err
