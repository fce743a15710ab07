"""Where a result came from: package version, git commit, library versions (cheap to import)."""

from __future__ import annotations

import subprocess
from datetime import datetime, timezone
from pathlib import Path


def git_commit() -> str | None:
    """The checkout's commit, or None outside a git checkout (e.g. an installed wheel)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).resolve().parent,
            capture_output=True, text=True, timeout=5, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
