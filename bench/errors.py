"""Errors the CLI turns into a one-paragraph message and an exit code (never a traceback)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2


class BenchError(Exception):
    """A usage or input error: unknown name, missing data, bad checkpoint. Exit code 2 by default."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UnknownNameError(BenchError, KeyError):
    """A registry lookup of a name that is not registered."""

    def __init__(self, kind: str, name: str, known: Iterable[str]) -> None:
        known = sorted(known)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        plural = kind if kind.endswith("s") else f"{kind}s"  # "weights", not "weightss"
        super().__init__(f"Unknown {kind} {name!r}.{hint} Known {plural}: {', '.join(known)}.")
        self.name = name

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self.args[0]


def did_you_mean(name: str, known: Iterable[str]) -> list[str]:
    return difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.5)
