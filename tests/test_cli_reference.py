"""docs/cli.md is generated from the argument parsers (`python -m bench.cli --markdown-reference`); these
tests fail when the committed page is stale or leaves out a verb or an option that `--help` shows."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cli import COMMANDS, REFERENCE_COMMAND, main, markdown_reference

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "cli.md"


def test_committed_reference_is_what_the_parsers_generate():
    assert PAGE.read_text(encoding="utf-8") == markdown_reference(), (
        f"docs/cli.md is stale: regenerate it with `{REFERENCE_COMMAND}`"
    )


def test_the_documented_command_writes_the_page():
    done = subprocess.run([sys.executable, "-m", "bench.cli", "--markdown-reference"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == markdown_reference()


def sections(page: str) -> dict[str, str]:
    parts = re.split(r"^## bench (\S+)$", page, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2]))


@pytest.mark.parametrize("verb", list(COMMANDS))
def test_every_option_that_help_shows_is_in_the_page(verb, capsys):
    """An independent reading: argparse's own `--help` text for the verb, not the generator's walk."""
    with pytest.raises(SystemExit) as done:
        main([verb, "--help"])
    assert done.value.code == 0
    help_text = capsys.readouterr().out
    invocations = re.findall(r"^  (-[^ ].*?)(?:  |$)", help_text.split("options:", 1)[1], flags=re.MULTILINE)
    options = {flag for line in invocations for flag in re.findall(r"(?<![\w-])--?[a-zA-Z][\w-]*", line)}
    options -= {"-h", "--help", "-v", "--verbose", "-q", "--quiet"}
    section = sections(markdown_reference())[verb]
    documented = set(re.findall(r"^\| `([^`]*)`", section, flags=re.MULTILINE))
    documented_options = {flag for row in documented for flag in re.findall(r"--?[a-zA-Z][\w-]*", row)}
    assert options <= documented_options, f"bench {verb}: {sorted(options - documented_options)} missing"
    usage = help_text.split("\n\n", 1)[0]
    assert " ".join(usage.split()) in " ".join(section.split())  # the same usage, wrapped the same or not
