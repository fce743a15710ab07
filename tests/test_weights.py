"""Named weights: lookup, BENCH_WEIGHTS_DIR, download into the cache (from local file:// URLs), sha256."""

from __future__ import annotations

import dataclasses
import hashlib
import urllib.request
from pathlib import Path

import pytest
import torch

from bench.cli import main
from bench.errors import BenchError, UnknownNameError
from detectors import get_detector, load_detector, resolve_weights
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


def test_fetch_downloads_once_and_checks_the_hash(tmp_path, monkeypatch):
    """The first fetch downloads (one urlopen) and verifies; the second finds the cached file and opens
    no connection at all, even when the source is gone."""
    source = tmp_path / "source.pth"
    source.write_bytes(b"checkpoint bytes " * 1000)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    entry = dataclasses.replace(get_weights_entry("lfm:official"), url=source.as_uri(), sha256=digest,
                                filename="fetched.pth")
    opened = []
    real_urlopen = urllib.request.urlopen

    def counting_urlopen(*args, **kwargs):
        opened.append(args[0])
        return real_urlopen(*args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", counting_urlopen)
    path = fetch(entry, progress=False)
    assert path == cache_dir() / entry.filename and opened == [source.as_uri()]
    assert path.read_bytes() == source.read_bytes()
    source.unlink()
    assert fetch(entry, progress=False) == path
    assert opened == [source.as_uri()]  # no second download


def test_fetch_refuses_a_file_with_the_wrong_hash(official_lfm_path):
    entry = dataclasses.replace(get_weights_entry("lfm:official"), url=official_lfm_path.as_uri(), sha256="0" * 64)
    with pytest.raises(BenchError, match="sha256"):
        fetch(entry, progress=False)
    assert not (cache_dir() / entry.filename).exists()


def test_unpinned_hash_is_recorded(official_lfm_path, caplog):
    entry = dataclasses.replace(
        get_weights_entry("npr:official"), url=official_lfm_path.as_uri(), filename="unpinned.pth"
    )
    path = fetch(entry, progress=False)
    recorded = path.with_name(path.name + ".sha256").read_text().strip()
    assert recorded == sha256_of(official_lfm_path)
    assert "no pinned sha256" in caplog.text  # logged (library code logs; the CLI shows warnings)


def test_an_unpinned_file_that_changes_after_its_hash_was_recorded_is_refused(capsys):
    """npr:official has no pinned sha256: the first use records the file's hash beside it; a file with other
    bytes under the same name later is refused (resolving, loading and fetching alike)."""
    entry = get_weights_entry("npr:official")
    assert entry.sha256 is None  # the premise: an unpinned entry
    path = cache_dir() / entry.filename
    path.parent.mkdir(parents=True)
    path.write_bytes(b"the bytes first seen" * 100)
    first = hashlib.sha256(path.read_bytes()).hexdigest()
    assert resolve_weights(get_detector("npr"), "official").sha256 == first
    assert path.with_name(path.name + ".sha256").read_text().strip() == first
    assert resolve_weights(get_detector("npr"), "npr:official").sha256 == first  # unchanged: accepted again

    path.write_bytes(b"other bytes, same name" * 100)
    for attempt in (lambda: resolve_weights(get_detector("npr"), "official"),
                    lambda: load_detector("npr", "npr:official"),
                    lambda: fetch(entry, progress=False)):
        with pytest.raises(BenchError, match=f"recorded {first}"):
            attempt()
    assert main(["weights", "fetch", "npr:official"]) == 2
    assert "the file changed" in capsys.readouterr().err


def test_unreachable_url_is_a_clear_error(tmp_path):
    entry = dataclasses.replace(get_weights_entry("lfm:official"), url=(tmp_path / "nowhere.pth").as_uri())
    with pytest.raises(BenchError, match="could not download"):
        fetch(entry, progress=False)


def test_weights_page_and_weights_list_say_which_weights_are_pinned(capsys):
    """Issue 11, item 5: the docs (docs/weights.md, the weights table) claim no more verification than the
    code does."""
    import re

    from bench.cli import main
    from detectors.weights import all_weights

    page = (Path(__file__).resolve().parents[1] / "docs" / "weights.md").read_text(encoding="utf-8")
    claimed = {}
    for names, pinned in re.findall(r"^\| (`[^|]+) \| (yes|no)\b", page, flags=re.MULTILINE):
        for name in re.findall(r"`([^`]+)`", names):
            claimed[name] = pinned == "yes"
    assert claimed == {e.name: e.pinned for e in all_weights()}
    assert main(["weights", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for entry in all_weights():
        line = next(line for line in lines if line.startswith(entry.name + " "))
        assert ("no: first file seen is recorded" in line) == (not entry.pinned)


def test_univfd_head_is_pinned_and_a_pinned_file_is_verified_against_its_hash(tmp_path, monkeypatch):
    """univfd:official carries the official fc_weights.pth's sha256 (detectors/weights.py cites the file's
    git blob and commit; the file itself is not redistributed here). A file under BENCH_WEIGHTS_DIR is
    accepted only when its bytes have the pinned hash: one changed byte is refused, nothing is recorded."""
    import dataclasses
    import re

    from detectors.weights import require_local

    official = get_weights_entry("univfd:official")
    assert official.pinned and re.fullmatch(r"[0-9a-f]{64}", official.sha256)
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(tmp_path))
    head = {"weight": torch.full((1, 768), 0.25), "bias": torch.zeros(1)}
    torch.save(head, tmp_path / official.filename)
    data = (tmp_path / official.filename).read_bytes()
    entry = dataclasses.replace(official, sha256=hashlib.sha256(data).hexdigest())
    assert require_local(entry, "test") == tmp_path / official.filename
    assert not (tmp_path / f"{official.filename}.sha256").exists()  # pinned: nothing is recorded beside it
    damaged = bytearray(data)
    damaged[len(damaged) // 2] ^= 0xFF
    (tmp_path / official.filename).write_bytes(bytes(damaged))
    with pytest.raises(BenchError, match=f"expected {entry.sha256[:10]}"):
        require_local(entry, "test")
    with pytest.raises(BenchError, match=f"expected {official.sha256[:10]}"):
        require_local(official, "test")  # our stand-in is not the official file


def test_the_docstring_names_exactly_the_unpinned_entries():
    """detectors/weights.py's docstring lists the entries without a pinned hash; the registry decides."""
    import re

    import detectors.weights as weights

    sentence = weights.__doc__.split("Not every entry is pinned:")[1].split(" have no published hash")[0]
    named = set(re.findall(r"`([a-z0-9_.-]+:[A-Za-z0-9_.-]+)`", sentence))
    assert named == {e.name for e in weights.all_weights() if not e.pinned}
