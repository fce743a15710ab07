"""Named weights: lookup, BENCH_WEIGHTS_DIR, download into the cache (from local file:// URLs), sha256."""

from __future__ import annotations

import dataclasses

import pytest

from bench.errors import BenchError, UnknownNameError
from detectors import get_detector, resolve_weights
from detectors.weights import cache_dir, fetch, get_weights_entry, sha256_of


def test_registered_names():
    assert get_weights_entry("lfm:official").sha256.startswith("903036979adb")
    for name in ("npr:official", "cnndetection:blur_jpg_prob0.5", "cnndetection:blur_jpg_prob0.1"):
        assert get_weights_entry(name).url.startswith("https://")
    with pytest.raises(UnknownNameError, match="Did you mean: lfm:official"):
        get_weights_entry("lfm:oficial")


def test_missing_named_weights_give_the_fetch_command():
    with pytest.raises(BenchError, match="bench weights fetch lfm:official"):
        resolve_weights(get_detector("lfm"), None)


def test_weights_dir_is_used_and_verified(shared_dir, monkeypatch):
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(shared_dir / "weights"))
    resolved = resolve_weights(get_detector("lfm-official"), "official")  # family lfm, tag official
    assert resolved.name == "lfm:official"
    assert resolved.sha256 == get_weights_entry("lfm:official").sha256


def test_fetch_downloads_once_and_checks_the_hash(official_lfm_path):
    entry = dataclasses.replace(get_weights_entry("lfm:official"), url=official_lfm_path.as_uri())
    path = fetch(entry, progress=False)
    assert path == cache_dir() / entry.filename
    assert sha256_of(path) == entry.sha256
    assert fetch(entry, progress=False) == path  # second call: already cached


def test_fetch_refuses_a_file_with_the_wrong_hash(official_lfm_path):
    entry = dataclasses.replace(get_weights_entry("lfm:official"), url=official_lfm_path.as_uri(), sha256="0" * 64)
    with pytest.raises(BenchError, match="sha256"):
        fetch(entry, progress=False)
    assert not (cache_dir() / entry.filename).exists()


def test_unpinned_hash_is_recorded(official_lfm_path, capsys):
    entry = dataclasses.replace(
        get_weights_entry("npr:official"), url=official_lfm_path.as_uri(), filename="unpinned.pth"
    )
    path = fetch(entry, progress=False)
    recorded = path.with_name(path.name + ".sha256").read_text().strip()
    assert recorded == sha256_of(official_lfm_path)
    assert "no pinned sha256" in capsys.readouterr().err


def test_unreachable_url_is_a_clear_error(tmp_path):
    entry = dataclasses.replace(get_weights_entry("lfm:official"), url=(tmp_path / "nowhere.pth").as_uri())
    with pytest.raises(BenchError, match="could not download"):
        fetch(entry, progress=False)
