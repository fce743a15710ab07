"""Facts about files on disk that every reader of a suite shares: which files may be read at all, and how a
path is written as text.

Regular files only. A suite folder can hold things that look like images by name but are not files: a FIFO
(named pipe), whose `open` waits for a writer forever; a symlink to `/dev/zero` or another device, whose
read never ends; a socket; a dangling symlink. Every reader (decoding for `bench run` and `bench predict`,
the content fingerprint of the score cache, `bench data check`, `bench audit`, masks) asks `file_problem`
first, from `os.stat` alone (which never blocks), and skips what is not a regular file with that reason.

Paths as text. On Linux a file name is bytes; one that is not valid UTF-8 reaches Python with lone
surrogates (PEP 383), which cannot be written to UTF-8 (a parquet column, a hash, a plot title).
`path_text` writes such bytes as backslash escapes (`bad\\xff.png`), so the name shows, hashes and stores
as text; valid names are unchanged.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path, PurePath

_KINDS = (
    (stat.S_ISFIFO, "a FIFO, a named pipe"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a folder"),
)


def file_problem(path: str | os.PathLike) -> str | None:
    """Why `path` cannot be read as an image file (None: it is a regular file, or a symlink to one).

    Never opens the file: `os.stat` answers, so a FIFO or a device is refused without blocking."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            return f"broken symlink (its target {os.readlink(path)} does not exist)"
        return "cannot read file (No such file or directory)"
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "symlink loop (the link points back to itself)"
        return f"cannot read file ({error.strerror or error})"
    if stat.S_ISREG(info.st_mode):
        return None
    kind = next((text for test, text in _KINDS if test(info.st_mode)), "not a file")
    via = f"a symlink to {os.path.realpath(path)}, " if os.path.islink(path) else ""
    return f"not a regular file ({via}{kind}); only regular files are read"


def path_text(path: str | os.PathLike) -> str:
    """A path as printable, UTF-8-safe text with `/` separators: bytes of the name that are not valid
    UTF-8 are shown as backslash escapes (`\\xff`)."""
    return name_text(PurePath(os.fsdecode(path)).as_posix())


def name_text(text: str) -> str:
    """A name read from the file system (a folder's name naming a suite or generator) as UTF-8-safe text:
    bytes that are not valid UTF-8 as backslash escapes, as `path_text` writes them; any other name as it is."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate no file system decoding makes: escape it as it is
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def relative_text(path: str | os.PathLike, root: str | os.PathLike) -> str:
    """`path` relative to `root` as `path_text` writes it: the key a suite's file is known by (scores,
    the cache's fingerprint, the seed of a random perturbation)."""
    return path_text(Path(path).relative_to(root))
