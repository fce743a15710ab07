"""The in-the-wild suites on miniature copies of their published layouts (names and nesting as their
authors document them), their labels, their published counts in `bench data check`, and layouts that do not
match: each a usage error naming the file (and line), never a silently wrong label."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests_support import write_synthwildx

from bench.cli import main
from bench.engine.suites import GROUPS, SUITES, WILD_SUITES, discover, resolve_suites
from bench.errors import BenchError


def save(path: Path, seed: int = 0, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)).save(path, format=fmt)
    return path


def found(data_root: Path, name: str):
    (resolved,) = resolve_suites(name, data_root)
    return {g.name: g for g in discover(resolved.root, resolved.suite)}, resolved.root


def labels(generator, root: Path) -> dict[str, int]:
    return {**{p.relative_to(root).as_posix(): 0 for p in generator.real},
            **{p.relative_to(root).as_posix(): 1 for p in generator.fake}}


def test_registry_has_the_wild_group_with_sources_and_policies():
    assert set(GROUPS["wild"]) == set(WILD_SUITES) >= {"chameleon", "wildrf", "synthwildx", "synthbuster",
                                                        "cospy-bench", "aigibench", "genimage", "sofake-ood", "openfake"}
    for name in WILD_SUITES:
        suite = SUITES[name]
        assert suite.source and suite.licence and suite.resolution_source and suite.group == "wild"


def test_wildrf_platform_folders_and_a_missing_platform(tmp_path, capsys):
    root = tmp_path / "WildRF" / "test"
    for i, platform in enumerate(("reddit", "twitter", "facebook")):
        save(root / platform / "0_real" / f"r{i}.jpg", i)
        save(root / platform / "1_fake" / f"f{i}.png", 10 + i)
    generators, suite_root = found(tmp_path, "wildrf")
    assert list(generators) == ["reddit", "twitter", "facebook"]
    assert labels(generators["twitter"], suite_root) == {"twitter/0_real/r1.jpg": 0, "twitter/1_fake/f1.png": 1}
    for path in (root / "twitter").rglob("*"):
        if path.is_file():
            path.unlink()
    for folder in sorted((root / "twitter").rglob("*"), reverse=True):
        folder.rmdir()
    (root / "twitter").rmdir()
    code = main(["run", "--detector", "npr", "--weights", "demo", "--suite", "wildrf", "--data-root", str(tmp_path),
                 "--output", str(tmp_path / "results")])
    assert code == 2
    err = capsys.readouterr().err
    assert str(root / "twitter") in err and "missing" in err
    assert main(["data", "check", "--data-root", str(tmp_path), "--suite", "wildrf"]) == 2
    assert f"UNUSABLE: missing folder(s) {root / 'twitter'}" in capsys.readouterr().out


def test_chameleon_is_one_pair_of_label_folders(tmp_path):
    save(tmp_path / "Chameleon" / "test" / "0_real" / "a.jpg", 1)
    save(tmp_path / "Chameleon" / "test" / "1_fake" / "b.png", 2)
    generators, root = found(tmp_path, "chameleon")
    assert list(generators) == ["chameleon"]
    assert labels(generators["chameleon"], root) == {"0_real/a.jpg": 0, "1_fake/b.png": 1}


def test_synthbuster_reals_beside_generator_folders(tmp_path):
    root = tmp_path / "synthbuster"
    for i in range(2):
        save(root / "real_RAISE_1k" / f"r{i}.png", i)
    save(root / "dalle2" / "x.png", 5)
    save(root / "stable-diffusion-xl" / "y.png", 6)
    save(root / "flux-extra" / "z.png", 7)
    generators, suite_root = found(tmp_path, "synthbuster")
    assert list(generators) == ["dalle2", "stable-diffusion-xl", "flux-extra"]
    assert generators["flux-extra"].extra and not generators["dalle2"].extra
    assert labels(generators["dalle2"], suite_root) == {"real_RAISE_1k/r0.png": 0, "real_RAISE_1k/r1.png": 0,
                                                        "dalle2/x.png": 1}
    for path in (root / "real_RAISE_1k").iterdir():
        path.unlink()
    (root / "real_RAISE_1k").rmdir()
    with pytest.raises(BenchError, match="real_RAISE_1k is missing"):
        found(tmp_path, "synthbuster")


def test_synthwildx_list_labels_and_shared_reals(tmp_path):
    write_synthwildx(tmp_path / "SynthWildX")
    generators, root = found(tmp_path, "synthwildx")
    assert list(generators) == ["dalle3", "firefly", "midjourney_v5"]
    assert labels(generators["firefly"], root) == {"real/F0.jpg": 0, "real/F1.jpg": 0, "firefly/F3.jpg": 1}


@pytest.mark.parametrize("broken, message", [
    ("url,filename,typ,score", "list.csv, line 1: header url,filename,typ,score: unknown columns: score"),
    ("url,filename", "line 1: header url,filename: missing columns: typ"),
    ("url,filename,typ\nu,../outside.jpg,dalle3", "line 2: ../outside.jpg is not a file inside"),
    ("url,filename,typ\nu,dalle3/a.jpg,dalle3\nu,dalle3/a.jpg,dalle3", "line 3: dalle3/a.jpg is listed again"),
    ("url,filename,typ\nu,dalle3/a.jpg,", "line 2: no typ"),
])
def test_a_synthwildx_list_that_does_not_match_is_an_error_naming_file_and_line(tmp_path, broken, message, capsys):
    root = tmp_path / "SynthWildX"
    save(root / "dalle3" / "a.jpg")
    (root / "list.csv").write_text(broken + "\n")
    with pytest.raises(BenchError, match="list.csv") as error:
        found(tmp_path, "synthwildx")
    assert message in str(error.value)
    assert main(["run", "--detector", "npr", "--weights", "demo", "--suite", "synthwildx", "--data-root",
                 str(tmp_path), "--output", str(tmp_path / "results")]) == 2
    assert message in capsys.readouterr().err


def test_data_check_names_missing_and_extra_files_against_the_published_counts(tmp_path, capsys):
    root = write_synthwildx(tmp_path / "SynthWildX")
    (root / "firefly" / "F3.jpg").unlink()  # listed, not on disk
    save(root / "dalle3" / "stray.jpg", 9, "JPEG")  # on disk, not listed
    code = main(["data", "check", "--data-root", str(tmp_path), "--suite", "synthwildx"])
    out = capsys.readouterr().out
    assert code == 1
    assert "listed but not on disk: 1 file(s)" in out and "  firefly/F3.jpg" in out
    assert "on disk but not listed: 1 image file(s)" in out and "  dalle3/stray.jpg" in out
    assert "DIFFERS: real 2 of 500, fake 1 of 500" in out  # dalle3 against list.csv's 500 per typ


def test_data_check_passes_a_layout_with_the_published_counts(tmp_path, capsys, monkeypatch):
    from dataclasses import replace

    import bench.engine.suites as suites

    root = write_synthwildx(tmp_path / "SynthWildX")
    small = replace(SUITES["synthwildx"], expected=(("dalle3", 2, 1), ("firefly", 2, 1), ("midjourney_v5", 2, 1)))
    monkeypatch.setitem(suites.SUITES, "synthwildx", small)
    assert main(["data", "check", "--data-root", str(tmp_path), "--suite", "synthwildx"]) == 0
    assert "as published" in capsys.readouterr().out
    save(root / "dalle3" / "one-more.jpg", 4, "JPEG")
    assert main(["data", "check", "--data-root", str(tmp_path), "--suite", "synthwildx"]) == 1


@pytest.mark.parametrize("row, message", [
    ("a.png,2,flux", "line 2: label '2' is not 0/1 or real/fake"),
    ("/etc/passwd,1,flux", "line 2: /etc/passwd is outside"),
])
def test_labels_csv_suites_refuse_bad_labels_and_outside_paths(tmp_path, row, message):
    root = tmp_path / "OpenFake"
    save(root / "a.png")
    (root / "labels.csv").write_text(f"path,label,generator\n{row}\n")
    with pytest.raises(BenchError, match="labels.csv") as error:
        found(tmp_path, "openfake")
    assert message in str(error.value)


def test_labels_csv_suite_reads_labels_and_generators(tmp_path):
    root = tmp_path / "OpenFake"
    for name in ("r1.jpg", "r2.jpg", "f1.png", "f2.png"):
        save(root / "images" / name)
    (root / "labels.csv").write_text("path,label,generator\nimages/r1.jpg,real,\nimages/r2.jpg,0,\n"
                                     "images/f1.png,fake,flux-1.1-pro\nimages/f2.png,1,sd-3.5\n")
    generators, suite_root = found(tmp_path, "openfake")
    assert list(generators) == ["flux-1.1-pro", "sd-3.5"]
    assert labels(generators["sd-3.5"], suite_root) == {"images/r1.jpg": 0, "images/r2.jpg": 0, "images/f2.png": 1}


def test_genimage_ai_and_nature_under_val_by_download_or_readme_names(tmp_path):
    root = tmp_path / "GenImage"
    save(root / "imagenet_ai_0419_sdv4" / "val" / "ai" / "a.png", 1)
    save(root / "imagenet_ai_0419_sdv4" / "val" / "nature" / "n.JPEG", 2)
    save(root / "imagenet_ai_0419_sdv4" / "train" / "ai" / "t.png", 3)  # the training split is not scored
    save(root / "BigGAN" / "val" / "ai" / "b.png", 4)
    save(root / "BigGAN" / "val" / "nature" / "m.JPEG", 5)
    generators, suite_root = found(tmp_path, "genimage")
    assert list(generators) == ["sdv4", "biggan"]
    assert labels(generators["sdv4"], suite_root) == {"imagenet_ai_0419_sdv4/val/nature/n.JPEG": 0,
                                                      "imagenet_ai_0419_sdv4/val/ai/a.png": 1}
    (root / "BigGAN" / "val" / "nature" / "m.JPEG").unlink()
    (root / "BigGAN" / "val" / "nature").rmdir()
    with pytest.raises(BenchError, match="nature"):
        found(tmp_path, "genimage")


def test_cospy_bench_scores_the_first_balanced_files_per_source_and_model(tmp_path):
    root = tmp_path / "Co-Spy-Bench"
    for i in range(3):
        save(root / "real_image_examples" / "CC3M" / f"{i}.jpg", i)
    for i in range(2):
        save(root / "synthetic" / "cc3m" / "black-forest-labs@FLUX.1-dev" / f"{i}.png", 10 + i)
    generators, suite_root = found(tmp_path, "cospy-bench")
    assert list(generators) == ["cc3m:black-forest-labs@FLUX.1-dev"]
    got = labels(generators["cc3m:black-forest-labs@FLUX.1-dev"], suite_root)
    assert got == {"real_image_examples/CC3M/0.jpg": 0, "real_image_examples/CC3M/1.jpg": 0,
                   "synthetic/cc3m/black-forest-labs@FLUX.1-dev/0.png": 1,
                   "synthetic/cc3m/black-forest-labs@FLUX.1-dev/1.png": 1}
    save(root / "synthetic" / "sbu" / "m" / "0.png")
    with pytest.raises(BenchError, match="real_image_examples/SBU"):
        found(tmp_path, "cospy-bench")


def test_aigibench_counts_are_checked(tmp_path, capsys):
    save(tmp_path / "AIGIBench" / "test" / "SocialRF" / "0_real" / "a.jpg")
    save(tmp_path / "AIGIBench" / "test" / "SocialRF" / "1_fake" / "b.png")
    assert main(["data", "check", "--data-root", str(tmp_path), "--suite", "aigibench"]) == 1
    out = capsys.readouterr().out
    assert "SocialRF" in out and "DIFFERS: real 1 of 3000, fake 1 of 3000" in out and "CommunityAI" in out


def test_a_folder_named_test_is_not_taken_for_a_wild_suite(tmp_path):
    save(tmp_path / "test" / "gen" / "0_real" / "a.png")
    (resolved,) = resolve_suites(str(tmp_path / "test"), tmp_path)
    assert resolved.suite.name == "test" and resolved.suite.layout is None
