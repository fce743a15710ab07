"""List named weights, or fetch one into the cache (verified by sha256)."""

from __future__ import annotations

import argparse

from bench.errors import BenchError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["list", "fetch"])
    parser.add_argument("names", nargs="*", metavar="NAME", help="weights to fetch, e.g. lfm:official")


def run(args: argparse.Namespace) -> int:
    from bench import api
    from bench.commands.list import render_weights_table

    if args.action == "list":
        print(render_weights_table())
        return 0
    if not args.names:
        raise BenchError("name the weights to fetch, e.g. `bench weights fetch lfm:official` (see `bench weights list`)")
    for name in args.names:
        entry, path, sha256 = api.fetch_weights(name)
        print(f"{entry.name}\t{path}\tsha256 {sha256}")
    return 0
