"""Shared fixtures. `../shared` (beside the checkout) holds the official checkpoint, sample images and
reference logits; tests that need it skip with a reason when it is absent, and fail instead when
BENCH_REQUIRE_SHARED=1 (as in CI), so that a missing folder cannot turn into a silent pass."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BENCH_SHARED") or REPO.parent / "shared")
OFFICIAL_LFM = SHARED / "weights" / "lfm_official_bs_model.pth"


def require_shared(*relative: str) -> Path:
    missing = [r for r in relative if not (SHARED / r).exists()] if SHARED.is_dir() else ["(the folder itself)"]
    if missing:
        message = f"needs {SHARED} with {', '.join(missing)}"
        if os.environ.get("BENCH_REQUIRE_SHARED") == "1":
            pytest.fail(message + " (BENCH_REQUIRE_SHARED=1)")
        pytest.skip(message)
    return SHARED


@pytest.fixture
def shared_dir() -> Path:
    return require_shared("weights/lfm_official_bs_model.pth", "samples", "reference/lfm_official_logits.json")


@pytest.fixture
def official_lfm_path(shared_dir) -> Path:
    return OFFICIAL_LFM


@pytest.fixture(scope="session")
def demo_data_root(tmp_path_factory) -> Path:
    """A data root holding the default demo suites, built once per test session."""
    from bench.demo import ensure_demo_data

    root = tmp_path_factory.mktemp("demo-data-root")
    ensure_demo_data(root, quiet=True)
    return root


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Never touch the user's weights cache or results from tests."""
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("BENCH_WEIGHTS_DIR", raising=False)
    monkeypatch.delenv("BENCH_RESULTS", raising=False)
    monkeypatch.delenv("BENCH_DATA", raising=False)
