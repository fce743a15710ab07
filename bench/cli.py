"""The `bench` command: a few verbs, each in its own module under bench/commands/."""

from __future__ import annotations

import argparse
import importlib
import logging
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
    "sweep": "Robustness sweep: detectors x perturbation levels -> table and plots",
    "weights": "List or fetch named weights",
    "explain": "Class-activation maps (Grad-CAM) of detectors on images, with localisation numbers",
    "report": "Render run folders as one self-contained HTML page",
    "embed": "Pooled features of detectors on a suite: t-SNE plots, silhouette and k-NN separation",
    "figure": "Regenerate a paper figure (visual: Grad-CAM and t-SNE of NPR vs LFM)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__)
    parser.add_argument("--version", action="version", version=f"lfm-bench {__version__}")
    verbosity = argparse.ArgumentParser(add_help=False)
    verbosity.add_argument("-v", "--verbose", action="count", default=0, help="more messages (-vv: debug)")
    verbosity.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only, no progress bars")
    verbs = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for verb, help_text in COMMANDS.items():
        module = importlib.import_module(f"bench.commands.{verb}")
        sub = verbs.add_parser(verb, help=help_text, description=module.__doc__, parents=[verbosity])
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


class _MessageFormatter(logging.Formatter):
    """Info as the plain message (it is meant for the user); warnings and worse say so."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        if record.levelno >= logging.WARNING:
            return f"{record.levelname.lower()}: {message}"
        return message


def configure_logging(verbose: int = 0, quiet: bool = False) -> None:
    """Library modules log under the `bench`, `detectors` and `lfm` loggers; the CLI shows them on stderr
    (the stream as it is now, so that a caller that swapped sys.stderr sees the messages)."""
    level = logging.WARNING if quiet else logging.DEBUG if verbose > 1 else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_MessageFormatter("%(message)s"))
    for name in ("bench", "detectors", "lfm"):
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if getattr(h, "_bench_cli", False)]:
            logger.removeHandler(old)
        handler._bench_cli = True
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose, args.quiet)
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
