"""The `bench` command: a few verbs, each in its own module under bench/commands/."""

from __future__ import annotations

import argparse
import importlib
import sys

from bench import __version__
from bench.errors import BenchError

# verb -> module under bench.commands; each module has add_arguments(parser) and run(args) -> int
COMMANDS = {
    "list": "Show registered detectors, suites or weights",
    "run": "Evaluate detectors on suites; scores and metrics go to the results store",
    "predict": "Score image files or folders with one detector",
    "table": "Render paper-style tables (reported beside reproduced)",
    "profile": "Measure params, MACs/FLOPs, latency, throughput and memory",
    "train": "Train a detector with the paper's recipe",
    "check": "Compare stored or fresh results against committed baselines",
    "data": "Inspect a data root: which suites are there and usable",
    "audit": "Shortcut audit: can file format, JPEG quality or size alone tell real from fake?",
    "weights": "List or fetch named weights",
    "explain": "Class-activation maps (Grad-CAM) of detectors on images, with localisation numbers",
    "report": "Render run folders as one self-contained HTML page",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__)
    parser.add_argument("--version", action="version", version=f"lfm-bench {__version__}")
    verbs = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for verb, help_text in COMMANDS.items():
        module = importlib.import_module(f"bench.commands.{verb}")
        sub = verbs.add_parser(verb, help=help_text, description=module.__doc__)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except BenchError as error:
        print(f"bench {args.command}: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("bench: interrupted; finished work is kept and a rerun resumes it", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
