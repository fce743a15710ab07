"""`bench embed` and `bench figure visual`: features through the declared hook under the suite's
protocol, cached like scores; the numbers match scikit-learn on independently computed features."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from sklearn.metrics import silhouette_score
from tests_support import write_suite

from bench.analyses.embeddings import compute_embeddings
from bench.cli import main
from bench.engine.config import EvalConfig
from bench.engine.decode import DecodeSpec
from bench.engine.store import ResultsStore
from bench.engine.suites import ResolvedSuite, suite_for_path
from detectors import load_detector
from detectors.layers import FeatureTap, feature_module

pytestmark = pytest.mark.slow  # each test scores a small suite with the two trained (demo) detectors


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    # a folder suite: the CLI evaluates it at 256x256 like most paper suites, so it is kept tiny
    return write_suite(tmp_path_factory.mktemp("embed") / "suite", {"g1": 5, "g2": 5}, size=(40, 40))


@pytest.fixture(scope="module")
def native_suite(tmp_path_factory):
    """The same layout at native size (as the demo and GANGen suites): 64x64 images keep the models cheap."""
    root = write_suite(tmp_path_factory.mktemp("embed-native") / "native", {"g1": 6}, size=(64, 64))
    for path in root.rglob("*.png"):  # write_suite varies sizes; make them all 64x64
        Image.open(path).crop((0, 0, 64, 64)).save(path)
    return ResolvedSuite(replace(suite_for_path(root), resize=None), root, True)


def _independent_features(detector: str, files: list, resize: int | None) -> np.ndarray:
    """The plain model (no fast path, no scoring loop) on the suite's protocol, features by a hook."""
    loaded = load_detector(detector, "demo")
    spec = DecodeSpec.for_detector(resize, loaded.detector.preprocessing)
    pixels = torch.stack([spec.decode(f).pixels for f in files])
    with torch.no_grad(), FeatureTap(feature_module(loaded.detector, loaded.model)) as tap:
        loaded.model.eval()(loaded.detector.preprocessing.normalize(pixels))
    return tap.features.numpy()


def test_features_are_the_heads_input_under_the_suite_protocol_and_cached(native_suite, tmp_path, monkeypatch):
    loaded = [load_detector(name, "demo") for name in ("lfm", "npr")]
    config = EvalConfig(output=str(tmp_path), device="cpu", workers=0, progress=False)
    store = ResultsStore(tmp_path)
    found = compute_embeddings(loaded, [native_suite], config=config, store=store)
    assert [(e.detector, e.generator) for e in found] == [("lfm", "g1"), ("npr", "g1")]
    for embedding in found:
        assert embedding.skipped == 0 and list(embedding.labels) == [0] * 6 + [1] * 6
        expected = _independent_features(embedding.detector, [native_suite.root / p for p in embedding.paths], None)
        assert embedding.features.shape == expected.shape  # lfm: 64 x 16 Top-K values; npr: 512
        np.testing.assert_allclose(embedding.features, expected, rtol=1e-4, atol=1e-4)
    keys = [json.loads(p.read_text()) for p in (tmp_path / "feature-cache").glob("*/key.json")]
    assert sorted(k["feature_layer"] for k in keys) == ["avgpool", "pooled"]
    assert {k["protocol"] for k in keys} == {"native"}

    def no_scoring(*args, **kwargs):
        raise AssertionError("features were recomputed instead of read from the cache")

    monkeypatch.setattr("bench.engine.runner.score_images", no_scoring)
    again = compute_embeddings(loaded, [native_suite], config=config, store=store)
    for first, second in zip(found, again):
        np.testing.assert_array_equal(first.features, second.features)
    with pytest.raises(AssertionError, match="recomputed"):
        compute_embeddings(loaded, [native_suite], config=replace(config, fresh=True), store=store)


def test_an_interrupted_extraction_resumes_from_its_part_files(native_suite, tmp_path, monkeypatch):
    """Features go through the runner's units: rows reach part files while a unit runs, so a killed
    extraction, started again, decodes only the images it had not finished (counted decodes)."""
    import bench.engine.decode

    monkeypatch.setenv("BENCH_PART_EVERY", "4")
    loaded = [load_detector("lfm", "demo")]
    config = EvalConfig(output=str(tmp_path), device="cpu", workers=0, batch_size=4, progress=False)
    real_decode = bench.engine.decode.decode_image
    decoded: list[str] = []

    def counted(path, *args, **kwargs):
        if stop_after is not None and len(decoded) >= stop_after:
            raise KeyboardInterrupt
        decoded.append(str(path))
        return real_decode(path, *args, **kwargs)

    monkeypatch.setattr(bench.engine.decode, "decode_image", counted)
    stop_after = 6  # a Ctrl-C while decoding the 7th image: the first 4 are in a part file
    with pytest.raises(KeyboardInterrupt):
        compute_embeddings(loaded, [native_suite], config=config, store=ResultsStore(tmp_path))
    first_pass = list(decoded)
    stop_after, decoded[:] = None, []
    resumed = compute_embeddings(loaded, [native_suite], config=config, store=ResultsStore(tmp_path))[0]
    assert len(decoded) == 12 - 4 and not set(decoded) & set(first_pass[:4])
    expected = _independent_features("lfm", [native_suite.root / p for p in resumed.paths], None)
    np.testing.assert_allclose(resumed.features, expected, rtol=1e-4, atol=1e-4)


def test_embed_command_numbers_points_and_picture(suite, tmp_path, capsys):
    out, results = tmp_path / "out", tmp_path / "results"
    argv = ["embed", "--detector", "lfm,npr", "--weights", "demo", "--suite", str(suite), "--generators", "g1",
            "--output", str(out), "--results", str(results), "--workers", "0", "--json"]
    assert main(argv) == 0
    document = json.loads(capsys.readouterr().out)
    assert document == json.loads((out / "embed.json").read_text())
    records = {r["detector"]: r for r in document["results"]}
    assert records["lfm"]["dim"] == 1024 and records["npr"]["dim"] == 512
    assert records["lfm"]["n_real"] == records["lfm"]["n_fake"] == 5
    # 5 + 5 images: 5 folds, and k = 10 - ceil(10 / 5) = 8, the smallest training split, not 10
    assert (records["lfm"]["knn_k"], records["lfm"]["folds"]) == (8, 5)
    assert main([a for a in argv if a != "--json"]) == 0  # features cached: only the numbers again
    text = capsys.readouterr().out
    assert "8-NN, 5-fold" in text and "10-NN" not in text
    for folder in (p for p in (results / "feature-cache").iterdir() if p.is_dir()):  # beside each: its .lock
        key = json.loads((folder / "key.json").read_text())
        frame = pd.read_parquet(folder / "scores.parquet")
        features = np.stack(frame["features"].to_list())
        expected = _independent_features(key["detector"], [suite / p for p in frame["path"]], 256)
        np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-4)
        labels = frame["label"].to_numpy()
        assert records[key["detector"]]["silhouette"] == pytest.approx(silhouette_score(expected, labels), abs=1e-3)
    points = pd.read_csv(out / "points.csv")
    assert len(points) == 2 * 10 and set(points["label"]) == {0, 1}
    assert Image.open(out / "tsne.png").size[0] > 400


def test_embed_unknown_generator_exits_2(suite, tmp_path, capsys):
    code = main(["embed", "--detector", "lfm", "--weights", "demo", "--suite", str(suite), "--generators", "g3",
                 "--output", str(tmp_path / "o"), "--results", str(tmp_path / "r")])
    assert code == 2
    assert "--generators g3: not in the chosen suites (available: g1, g2)" in capsys.readouterr().err


def test_figure_visual_from_a_config(suite, tmp_path, capsys):
    config = {
        "detectors": ["npr", "lfm"], "method": "gradcam",
        "paper": {"cam": {"suite": "ufd", "generator": "dalle"},
                  "tsne": [{"suite": "ufd", "generator": "dalle", "label": "DALL-E"}]},
        "demo": {"weights": "demo", "cam": {"suite": str(suite), "generator": "g1"},
                 "tsne": [{"suite": str(suite), "generator": "g1", "label": "G1"},
                          {"suite": str(suite), "generator": "g2", "label": "G2"}]},
    }
    path = tmp_path / "visual.json"
    path.write_text(json.dumps(config))
    out = tmp_path / "fig"
    code = main(["figure", "visual", "--config", str(path), "--data-root", str(tmp_path / "no-data"),
                 "--output", str(out), "--results", str(tmp_path / "r"), "--limit", "4", "--json"])
    assert code == 0
    document = json.loads(capsys.readouterr().out)
    assert document["demo"] is True and "not found under" in document["note"]
    assert [image["truth"] for image in document["cam_images"]] == [1, 0]
    assert {(r["detector"], r["generator"]) for r in document["tsne"]} == {
        (d, g) for d in ("npr", "lfm") for g in ("g1", "g2")}
    assert (out / "visual.pdf").read_bytes()[:4] == b"%PDF"
    assert Image.open(out / "visual.png").size[0] > 1000
