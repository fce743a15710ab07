"""The offline demo suites (synthetic demo data, not a paper benchmark) and the bundled demo weights.

`ensure_demo_data(data_root)` builds `<data_root>/demo/` on first use from photographs that ship inside
scikit-image and scikit-learn, deterministically and without a network, and reuses it afterwards; see
`bench.demo.build` for the layout, `bench.demo.real` for the real patches and the train/test split and
`bench.demo.generators` for the generator-like pipelines that make the fakes. `bench.demo.local` builds
the local-forgery suites with masks under `<data_root>/demo-local-data/`. The demo weights live in
`detectors/bundled/` (package data).
"""

from bench.demo.build import (
    DEFAULT_COUNTS,
    DEMO_NOTE,
    DEMO_SUITES,
    IMAGE_SIZE,
    content_hash,
    demo_root,
    demo_suite_root,
    ensure_demo_data,
)
from bench.demo.local import LOCAL_SUITES, ensure_local_data


def ensure_demo_suites(data_root, names, *, quiet: bool = False) -> None:
    """Build whichever demo trees the named suites live in (each build is a no-op when up to date)."""
    names = set(names)
    if names & set(DEMO_SUITES):
        ensure_demo_data(data_root, quiet=quiet)
    if names & set(LOCAL_SUITES):
        ensure_local_data(data_root, quiet=quiet)


__all__ = [
    "DEFAULT_COUNTS",
    "DEMO_NOTE",
    "DEMO_SUITES",
    "IMAGE_SIZE",
    "content_hash",
    "demo_root",
    "demo_suite_root",
    "LOCAL_SUITES",
    "ensure_demo_data",
    "ensure_demo_suites",
    "ensure_local_data",
]
