"""bench.engine.suites: names, aliases, groups, did-you-mean, PATH suites and discovery on disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.demo import DEMO_SUITES
from bench.engine.suites import GROUPS, PAPER_SUITES, SUITES, default_data_root, discover, resolve_suites
from bench.errors import BenchError, UnknownNameError


def touch(root: Path, *relative: str) -> None:
    for rel in relative:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not decoded by discovery")


def names(resolved) -> list[str]:
    return [r.suite.name for r in resolved]


def test_paper_suites_and_their_columns():
    assert PAPER_SUITES == ("forensynths", "gangen", "diffusionforensics", "ufd", "diffusion1kstep")
    assert [len(SUITES[n].generators) for n in PAPER_SUITES] == [8, 9, 8, 8, 5]
    assert SUITES["forensynths"].generators[:3] == ("progan", "stylegan", "stylegan2")
    assert [SUITES[n].resize for n in PAPER_SUITES] == [256, None, 256, 256, 256]
    for suite in SUITES.values():
        assert suite.source and suite.title and suite.split in ("test", "train", "val")
        # native only where the paper (GANGen), the demo or a wild set's authors' test code says so
        assert (suite.resize is None) == (suite.demo or suite.name == "gangen" or suite.resolution_source.startswith("native"))
    assert SUITES["progan4"].split == "train" and SUITES["progan4-val"].split == "val"
    # the demo suites' columns are the demo builder's generators, in its order
    assert SUITES["demo-gan"].generators == tuple(DEMO_SUITES["demo-gan"]) and SUITES["demo-gan"].folder == "demo/demo-gan"


def test_aliases_groups_and_comma_lists(tmp_path):
    assert names(resolve_suites("testset1", tmp_path)) == ["forensynths"]
    assert names(resolve_suites("TestSet4", tmp_path)) == ["ufd"]
    assert names(resolve_suites("gan", tmp_path)) == ["forensynths", "gangen"]
    assert names(resolve_suites("diffusion", tmp_path)) == ["diffusionforensics", "ufd"]
    assert names(resolve_suites("all", tmp_path)) == list(PAPER_SUITES)
    assert names(resolve_suites("demo", tmp_path)) == GROUPS["demo"] == ["demo-gan", "demo-diffusion"]
    # order as given, each suite once
    assert names(resolve_suites("testset5, gan,forensynths", tmp_path)) == ["diffusion1kstep", "forensynths", "gangen"]
    resolved = resolve_suites("gangen", tmp_path)[0]
    assert resolved.root == tmp_path / "Generalization_Test" / "GANGen-Detection"
    assert resolved.exists is False


def test_unknown_name_suggests_close_ones(tmp_path):
    with pytest.raises(UnknownNameError) as caught:
        resolve_suites("forensynth", tmp_path)
    assert "Did you mean: forensynths" in str(caught.value)
    assert isinstance(caught.value, BenchError) and caught.value.exit_code == 2
    with pytest.raises(UnknownNameError, match="testset3"):
        resolve_suites("gan,testset33", tmp_path)
    with pytest.raises(BenchError, match="no suite given"):
        resolve_suites(" , ", tmp_path)


def test_missing_path_is_an_error_not_a_name(tmp_path):
    with pytest.raises(BenchError, match="no such folder") as caught:
        resolve_suites(str(tmp_path / "nowhere"), tmp_path)
    assert not isinstance(caught.value, UnknownNameError)
    touch(tmp_path, "afile.png")
    with pytest.raises(BenchError, match="is a file"):
        resolve_suites(str(tmp_path / "afile.png"), tmp_path)


def test_path_suite_with_generator_subfolders(tmp_path):
    root = tmp_path / "mine"
    touch(root, "genB/0_real/a.png", "genB/1_fake/b.png", "genA/sub/0_real/c.jpg", "genA/sub/1_fake/d.JPEG")
    (resolved,) = resolve_suites(str(root), tmp_path / "unused")
    assert resolved.exists and resolved.root == root.absolute()
    assert resolved.suite.name == "mine" and resolved.suite.resize == 256 and resolved.suite.generators == ()
    found = discover(resolved.root, resolved.suite)
    assert [g.name for g in found] == ["genA", "genB"]  # no columns: sorted, none marked extra
    assert not any(g.extra for g in found)
    assert [p.name for p in found[0].real] == ["c.jpg"] and [p.name for p in found[0].fake] == ["d.JPEG"]


def test_path_suite_with_one_pair_is_one_generator(tmp_path, monkeypatch):
    root = tmp_path / "single_gen"
    touch(root, "0_real/r1.png", "0_real/r2.png", "1_fake/f1.webp")
    monkeypatch.chdir(tmp_path)
    (resolved,) = resolve_suites("./single_gen", tmp_path)
    (generator,) = discover(resolved.root, resolved.suite)
    assert generator.name == "single_gen"
    assert [p.name for p in generator.real] == ["r1.png", "r2.png"] and len(generator.fake) == 1


def test_path_ending_with_a_registered_folder_is_that_suite(tmp_path):
    elsewhere = tmp_path / "disk" / "GANGen-Detection"
    touch(elsewhere, "STGAN/0_real/a.png", "STGAN/1_fake/a.png", "AttGAN/0_real/a.png", "AttGAN/1_fake/a.png")
    (resolved,) = resolve_suites(str(elsewhere), tmp_path)
    assert resolved.suite.name == "gangen" and resolved.suite.resize is None
    assert [g.name for g in discover(resolved.root, resolved.suite)] == ["AttGAN", "STGAN"]
    # `train` alone is too generic to mean the ForenSynths training set
    touch(tmp_path, "other/train/x/0_real/a.png")
    assert resolve_suites(str(tmp_path / "other" / "train"), tmp_path)[0].suite.name == "train"


def test_forensynths_categories_merge_and_columns_come_first(tmp_path):
    root = tmp_path / "Generalization_Test" / "ForenSynths_test"
    touch(
        root,
        "progan/airplane/0_real/1.png", "progan/airplane/1_fake/1.png",
        "progan/bird/0_real/1.png", "progan/bird/0_real/2.png", "progan/bird/1_fake/1.png",
        "biggan/0_real/1.png", "biggan/1_fake/1.png",
        "crn/0_real/1.png", "crn/1_fake/1.png",
        "imle/0_real/1.png",
        "StyleGAN/bedroom/1_fake/1.png",  # other case than the column: reported in the column's spelling
        "notes/readme.txt",  # no 0_real/1_fake below it: not a generator
    )
    (resolved,) = resolve_suites("forensynths", tmp_path)
    found = discover(resolved.root, resolved.suite)
    assert [g.name for g in found] == ["progan", "stylegan", "biggan", "crn", "imle"]
    assert [g.extra for g in found] == [False, False, False, True, True]
    progan = found[0]
    assert [p.relative_to(root).as_posix() for p in progan.real] == [
        "progan/airplane/0_real/1.png", "progan/bird/0_real/1.png", "progan/bird/0_real/2.png"]
    assert len(progan.fake) == 2
    assert found[4].fake == []
    assert [g.name for g in discover(resolved.root, resolved.suite, extras=False)] == ["progan", "stylegan", "biggan"]


def test_deep_layouts_hidden_files_and_non_images(tmp_path):
    root = tmp_path / "Generalization_Test" / "DiffusionForensics"
    touch(
        root,
        "adm/imagenet/0_real/a.png", "adm/lsun_bedroom/deeper/1_fake/b.png",
        "adm/imagenet/0_real/._a.png", "adm/imagenet/0_real/notes.txt", "adm/imagenet/0_real/.DS_Store",
        "adm/imagenet/1_fake/nested/c.PNG",
        "adm/imagenet/readme.md",  # outside 0_real/1_fake: not a candidate, not reported
        "__MACOSX/adm/0_real/._a.png", ".cache/0_real/x.png",
    )
    (generator,) = discover(root, SUITES["diffusionforensics"])
    assert generator.name == "adm"
    assert [p.name for p in generator.real] == ["a.png"]
    assert sorted(p.name for p in generator.fake) == ["b.png", "c.PNG"]
    assert sorted(p.name for p in generator.other) == [".DS_Store", "._a.png", "notes.txt"]


def test_listed_only_training_set_keeps_its_classes(tmp_path):
    root = tmp_path / "ForenSynths_train_val" / "train"
    touch(root, *(f"{c}/{label}/1.png" for c in ("airplane", "car", "cat", "chair", "horse") for label in ("0_real", "1_fake")))
    (resolved,) = resolve_suites("progan4", tmp_path)
    assert [g.name for g in discover(resolved.root, resolved.suite)] == ["car", "cat", "chair", "horse"]


def test_non_ascii_names_and_symlink_loops(tmp_path):
    root = tmp_path / "données"
    touch(root, "génér/0_real/réel 1.png", "génér/1_fake/偽物.jpg")
    os.symlink(root / "génér", root / "génér" / "0_real" / "loop")
    (generator,) = discover(root)
    assert generator.name == "génér"
    assert [p.name for p in generator.real] == ["réel 1.png"] and [p.name for p in generator.fake] == ["偽物.jpg"]


def test_discover_is_deterministic_and_rejects_missing_roots(tmp_path):
    touch(tmp_path / "s", *(f"g/0_real/{n}.png" for n in ("b", "a", "c10", "c2")), "g/1_fake/z.png")
    first = discover(tmp_path / "s")
    assert [p.name for p in first[0].real] == ["a.png", "b.png", "c10.png", "c2.png"]
    assert discover(tmp_path / "s") == first
    with pytest.raises(BenchError, match="is not a folder"):
        discover(tmp_path / "absent")


def test_default_data_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert default_data_root() == tmp_path / "datasets"
    monkeypatch.setenv("BENCH_DATA", str(tmp_path / "elsewhere"))
    assert default_data_root() == tmp_path / "elsewhere"
