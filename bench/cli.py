"""The `bench` command: a few verbs, each in its own module under bench/commands/."""

from __future__ import annotations

import argparse
import importlib
import inspect
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
    "compare": "Paired comparison of two runs on the same images: differences, intervals, tests",
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


REFERENCE_WIDTH = 100
"""Columns of the usage lines in the CLI reference (fixed, so the page does not depend on the terminal)."""

REFERENCE_COMMAND = "python -m bench.cli --markdown-reference > docs/cli.md"


def markdown_reference(parser: argparse.ArgumentParser | None = None) -> str:
    """docs/cli.md, written from the argument parsers themselves: every verb with its one-line summary, its
    description (the command module's docstring), its usage and every argument with its help.
    `python -m bench.cli --markdown-reference > docs/cli.md` regenerates the page; a test fails when the
    committed page differs from what this returns."""
    parser = parser or build_parser()
    verbs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    summaries = {choice.dest: choice.help for choice in verbs._choices_actions}
    common = [a for a in next(iter(verbs.choices.values()))._actions if a.dest in ("verbose", "quiet")]
    lines = [
        "# CLI reference",
        "",
        f"<!-- Generated from the argument parsers by `{REFERENCE_COMMAND}`; do not edit by hand",
        "     (tests/test_cli_reference.py fails when this page is stale). -->",
        "",
        _markdown_text(inspect.cleandoc(parser.description or "")),
        "",
        "Exit codes: 0 success, 1 a check or regression failed, 2 a usage or input error (the message says what "
        "to do); 130 interrupted (finished work is kept). Results go to stdout, progress and messages to stderr. "
        "Every verb also takes:",
        "",
        *_argument_table(parser.prog, common),
        "",
        "| verb | what it does |",
        "|---|---|",
        *(f"| [`{verb}`](#bench-{verb}) | {_table_cell(summaries[verb])} |" for verb in verbs.choices),
    ]
    for verb, sub in verbs.choices.items():
        own = [a for a in sub._actions if a.dest not in ("help", "verbose", "quiet")]
        lines += ["", f"## bench {verb}", "", _markdown_text(inspect.cleandoc(sub.description or "")), "", "```text",
                  _usage(sub).rstrip(), "```", ""]
        lines += _argument_table(sub.prog, own) if own else ["No arguments."]
    return "\n".join(lines).replace("\n\n\n", "\n\n") + "\n"


def _usage(parser: argparse.ArgumentParser) -> str:
    formatter = argparse.HelpFormatter(parser.prog, width=REFERENCE_WIDTH)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    return formatter.format_help()


def _argument_table(prog: str, actions: list[argparse.Action]) -> list[str]:
    formatter = argparse.HelpFormatter(prog, width=REFERENCE_WIDTH)
    rows = ["| argument | help |", "|---|---|"]
    for action in actions:
        invocation = formatter._format_action_invocation(action)
        text = formatter._expand_help(action) if action.help else ""
        shows_default = action.nargs != 0 and not any(action.default is v for v in (None, argparse.SUPPRESS, False))
        if shows_default and "default" not in text.lower():
            text = f"{text} (default: {action.default})".strip()
        rows.append(f"| `{_table_cell(invocation)}` | {_table_cell(_markdown_text(text))} |")
    return rows


def _markdown_text(text: str) -> str:
    """Plain help text as Markdown: `<` and `*` outside inline code would be read as HTML or emphasis
    (lines indented by four spaces are code blocks and stay as they are)."""
    lines = []
    for line in text.split("\n"):
        parts = line.split("`")
        for i in range(0, len(parts) if not line.startswith("    ") else 0, 2):  # even parts: outside code
            parts[i] = parts[i].replace("<", "&lt;").replace("*", "\\*")
        lines.append("`".join(parts))
    return "\n".join(lines)


def _table_cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


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
    if sys.argv[1:] == ["--markdown-reference"]:
        sys.stdout.write(markdown_reference())
        sys.exit(0)
    sys.exit(main())
