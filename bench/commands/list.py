"""Show what is registered: detectors, suites, named weights and perturbations."""

from __future__ import annotations

import argparse

from bench.outputs.textable import format_table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", nargs="?", choices=["detectors", "suites", "weights", "perturbations"],
                        help="default: all four")


def list_detectors_table() -> str:
    from detectors import get_detector, list_detectors
    from detectors.registry import list_prefixes

    rows = []
    for name in list_detectors():
        d = get_detector(name)
        rows.append([name, d.display_name, d.weights_family, d.default_weights or "-", d.description])
    for prefix, description in list_prefixes().items():
        rows.append([f"{prefix}:<name>", "-", "(the name)", "-", description])
    return format_table(["detector", "display name", "weights family", "default weights", "what it is"], rows)


def list_suites_table() -> str:
    from bench.engine.suites import GROUPS, SUITES

    rows = [
        [s.name, ", ".join(s.aliases) or "-", s.split, "native" if s.resize is None else f"{s.resize}x{s.resize}",
         s.folder, str(len(s.generators)) if s.generators else "from disk"]
        for s in SUITES.values()
    ]
    table = format_table(["suite", "aliases", "split", "size", "folder under the data root", "generators"], rows)
    groups = "\n".join(f"  {g} = {' + '.join(members)}" for g, members in GROUPS.items())
    return f"{table}\n\ngroups:\n{groups}"


def list_weights_table() -> str:
    from detectors.weights import all_weights, local_path

    rows = [
        [e.name, "bundled" if e.bundled else ("yes" if local_path(e) else "no"), e.filename,
         "yes" if e.pinned else "no: first file seen is recorded", (e.sha256 or "-")[:16], e.licence, e.source]
        for e in all_weights()
    ]
    table = format_table(["weights", "on this machine", "file", "sha256 pinned", "sha256", "licence", "source"], rows)
    return (table + "\n\nfiles not on this machine: `bench weights fetch NAME`, or download the source by hand and "
            "save it under the name in `file` in a folder named by $BENCH_WEIGHTS_DIR")


def list_perturbations_table() -> str:
    from bench.engine.perturb import CHAINS, describe

    table = format_table(["perturbation", "parameters (defaults)", "what it does", "default sweep grid"], describe())
    chains = "\n".join(f"  chain:{name} = {' -> '.join(c.steps)}: {c.description}" for name, c in CHAINS.items())
    return f"{table}\n\nchains:\n{chains}\n\nspec: NAME[:ARG][:KEY=VALUE,...], e.g. jpeg:q=75, resize:scale=0.5,back=1, reencode:png"


def run(args: argparse.Namespace) -> int:
    sections = {"detectors": list_detectors_table, "suites": list_suites_table, "weights": list_weights_table,
                "perturbations": list_perturbations_table}
    chosen = [args.what] if args.what else list(sections)
    print("\n\n".join(sections[name]() for name in chosen))
    return 0
