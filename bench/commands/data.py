"""Inspect a data root: which suites are there, their generators with real/fake counts, and the files
that `bench run` would have to skip.

`bench data check` with no `--suite` looks at the five paper suites (each reported, found or missing,
with where to download it) and at any demo or training set that is present. Each file is opened and
verified (`--full` decodes every file as `bench run` does, which also catches truncated JPEGs).

On native-size suites, files are also checked against the limits `bench run` applies: the smallest side
the model takes (`--detector`, default lfm: about 24 px) and the native-size pixel limit (`--max-pixels`).
Broken symlinks, symlink loops and animated images are listed with their reason; a folder that looks
like a misspelt `0_real`/`1_fake` (`0_Real`, `real`, `1-fake`) makes the suite unusable, as `bench run`
refuses it.

Exit status: 2 when a suite named explicitly (by name, alias or PATH) is missing or has no usable
generator (or a published layout that does not match, e.g. a WildRF platform folder missing), or when none
of the suites looked at is usable; 1 when a suite named explicitly differs from its published counts or
list (files missing or extra, each named); 0 otherwise. Suites reached through a group
(or the default listing) that are missing are reported, not an error. Damaged files, one-class or empty
generators are reported and do not change the exit status: `bench run` skips and lists them.
"""

from __future__ import annotations

import argparse
import sys

from bench.errors import EXIT_CHECK_FAILED, EXIT_OK, EXIT_USAGE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["check"], help="check: report suites, generators and unusable files")
    parser.add_argument("--data-root", help="default: $BENCH_DATA or ./datasets")
    parser.add_argument(
        "--suite", action="append", metavar="NAME|GROUP|PATH",
        help="repeatable or comma-separated; default: the paper suites, plus demo and training sets present",
    )
    parser.add_argument("--full", action="store_true", help="decode every file completely (slower, thorough)")
    parser.add_argument("--workers", type=int, default=None, help="threads for the file pass (default: min(8, CPUs))")
    parser.add_argument("--detector", default="lfm",
                        help="whose smallest input side native-size images are checked against (default lfm)")
    parser.add_argument("--max-pixels", default=None, metavar="N|WxH|none",
                        help="native-size pixel limit (default: $BENCH_MAX_PIXELS or 4096x4096)")


def run(args: argparse.Namespace) -> int:
    from bench import api
    from bench.errors import BenchError

    if args.action != "check":  # argparse enforces the choice; kept for direct callers
        raise BenchError(f"unknown action {args.action!r}; use `bench data check`")
    root = api.data_root(args.data_root)
    print(f"data root: {api.show_path(root)}" + ("" if root.is_dir() else " (does not exist)"))
    result = api.check_data(root, args.suite, full=args.full, workers=args.workers, detector=args.detector,
                            max_pixels=args.max_pixels, progress=not getattr(args, "quiet", False),
                            on_suite=lambda suite: print("\n" + "\n".join(suite.lines), flush=True))
    print(f"\nsummary: {result.n_usable} of {len(result.suites)} suites usable (checked in {result.seconds:.1f} s"
          f"{', every file fully decoded' if args.full else ''}; nothing written)")
    if result.failures:
        print(f"bench data check: error: {'; '.join(result.failures)}", file=sys.stderr)
        return EXIT_USAGE
    if result.count_failures:
        print(f"bench data check: {'; '.join(result.count_failures)} (listed above)", file=sys.stderr)
        return EXIT_CHECK_FAILED
    if result.n_usable == 0:
        print(
            f"bench data check: error: no usable suite under {api.show_path(root)}. Download the suites (see "
            f"{api.README_DATA_SECTION}) or pass --data-root; `bench run` falls back to the synthetic demo suites.",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return EXIT_OK
