"""Show what is registered: detectors, suites, named weights and perturbations."""

from __future__ import annotations

import argparse

from bench.outputs.textable import format_table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", nargs="?", choices=["detectors", "suites", "weights", "perturbations"],
                        help="default: all four")


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
        [s.name, ", ".join(s.aliases) or "-", s.split, "native" if s.resize is None else f"{s.resize}x{s.resize}",
         s.folder, str(len(s.generators)) if s.generators else "from disk"]
        for s in api.SUITES.values()
    ]
    table = format_table(["suite", "aliases", "split", "size", "folder under the data root", "generators"], rows)
    groups = "\n".join(f"  {g} = {' + '.join(members)}" for g, members in api.GROUPS.items())
    return f"{table}\n\ngroups:\n{groups}"


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
    sections = {"detectors": render_detectors_table, "suites": render_suites_table, "weights": render_weights_table,
                "perturbations": render_perturbations_table}
    chosen = [args.what] if args.what else list(sections)
    print("\n\n".join(sections[name]() for name in chosen))
    return 0
