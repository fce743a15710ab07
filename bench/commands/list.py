"""Show what is registered (detectors, suites, named weights, perturbations), or the finished runs under a
results root with their key settings and headline metrics (`bench list runs`)."""

from __future__ import annotations

import argparse
import json
import sys

from bench.outputs.textable import format_table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", nargs="?", choices=["detectors", "suites", "weights", "perturbations", "runs"],
                        help="default: the first four; runs: the finished runs under --output")
    parser.add_argument("--output", help="runs: the results root (default: $BENCH_RESULTS or ./results)")
    parser.add_argument("--json", action="store_true", help="runs: print them as JSON")


def render_runs_table(runs: list[dict]) -> str:
    """The runs, one row each: what tells them apart, and ACC/AP (mean over all generators, %)."""
    def pct(value) -> str:
        return "-" if value is None else f"{100 * value:.1f}"

    rows = [[r["run_id"], r["detector"], r["weights"], "+".join(r["suites"]), r["perturbation"] or "clean",
             r["protocol"], r["calibration"] or "-", r["per_class"] or "all", r["n_images"], pct(r["acc"]), pct(r["ap"])]
            for r in runs]
    table = format_table(["run", "detector", "weights", "suites", "perturbation", "protocol", "calibrated on",
                          "images per class", "images", "ACC", "AP"], rows,
                         [False] * 8 + [True, True, True])
    return f"{table}\n\n{len(runs)} finished run(s); ACC and AP: mean over all generators of the run, in %"


def render_detectors_table() -> str:
    from bench import api

    rows = []
    for name in api.list_detectors():
        d = api.get_detector(name)
        rows.append([name, d.display_name, d.weights_family, d.default_weights or "-", d.description])
    for prefix, description in api.list_prefixes().items():
        rows.append([f"{prefix}:<name>", "-", "(the name)", "-", description])
    return format_table(["detector", "display name", "weights family", "default weights", "what it is"], rows)


def render_suites_table() -> str:
    from bench import api

    rows = [
        [s.name, ", ".join(s.aliases) or "-", s.split, api.suite_resolution(s).spec, s.layout or "generator folders",
         s.folder, str(len(s.generators)) if s.generators else "from disk"]
        for s in api.SUITES.values()
    ]
    table = format_table(["suite", "aliases", "split", "resolution", "layout", "folder under the data root",
                          "generators"], rows)
    groups = "\n".join(f"  {g} = {' + '.join(members)}" for g, members in api.GROUPS.items())
    wild = "\n".join(f"  {s.name}: {s.title}\n    licence: {s.licence}\n    resolution: {s.resolution_source}"
                      for s in api.SUITES.values() if s.group == "wild")
    return (f"{table}\n\ngroups:\n{groups}\n\nin-the-wild suites (layouts, counts and sources: docs/wild.md; "
            f"`bench data check --suite NAME` checks one):\n{wild}")


def render_weights_table() -> str:
    from bench import api

    rows = [
        [e.name, "bundled" if e.bundled else ("yes" if api.local_path(e) else "no"), e.filename,
         "yes" if e.pinned else "no: first file seen is recorded", (e.sha256 or "-")[:16], e.licence, e.source]
        for e in api.all_weights()
    ]
    table = format_table(["weights", "on this machine", "file", "sha256 pinned", "sha256", "licence", "source"], rows)
    return (table + "\n\nfiles not on this machine: `bench weights fetch NAME`, or download the source by hand and "
            "save it under the name in `file` in a folder named by $BENCH_WEIGHTS_DIR")


def render_perturbations_table() -> str:
    from bench import api

    table = format_table(["perturbation", "parameters (defaults)", "what it does", "default sweep grid"],
                         api.describe_perturbations())
    chains = "\n".join(f"  chain:{name} = {' -> '.join(c.steps)}: {c.description}" for name, c in api.CHAINS.items())
    return f"{table}\n\nchains:\n{chains}\n\nspec: NAME[:ARG][:KEY=VALUE,...], e.g. jpeg:q=75, resize:scale=0.5,back=1, reencode:png"


def run(args: argparse.Namespace) -> int:
    if args.what == "runs":
        from bench import api

        unreadable: list = []
        runs = api.list_runs(args.output, unreadable)
        if unreadable:  # a truncated metrics.json is not "0 finished runs": say which folders and why
            print(f"warning: {api.unreadable_note(unreadable)}", file=sys.stderr)
        print(json.dumps(api.json_safe(runs), indent=1) if args.json else render_runs_table(runs))
        return 0
    sections = {"detectors": render_detectors_table, "suites": render_suites_table, "weights": render_weights_table,
                "perturbations": render_perturbations_table}
    chosen = [args.what] if args.what else list(sections)
    print("\n\n".join(sections[name]() for name in chosen))
    return 0
