"""The README stays short and its two commands stay true; every link between the docs resolves."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
MAIN_COMMAND = "python3 -m venv .venv && . .venv/bin/activate && pip install -e . && bench run --detector lfm --suite all"
TEST_COMMAND = "python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[test]' && pytest -q"


def shell_blocks(text: str) -> list[str]:
    return [block.strip() for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S)]


def test_readme_is_short_and_gives_the_two_commands():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) < 200, "README.md must stay under 200 lines: move detail into docs/"
    blocks = shell_blocks(text)
    assert MAIN_COMMAND in blocks and TEST_COMMAND in blocks


def test_ci_runs_the_readme_test_command():
    """.ci/run installs and tests exactly as the README says (pip's -q only quietens the install)."""
    script = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    marked = re.search(r'^# --- README: "Run the tests" ---\n(.*?)\n# --- end ---$', script, flags=re.S | re.M)
    assert marked, ".ci/run lost its marker lines around the README's test command"
    assert marked.group(1).strip().replace("pip install -q ", "pip install ") == TEST_COMMAND


def markdown_files() -> list[Path]:
    return [README, *sorted((REPO / "docs").glob("*.md"))]


def test_every_relative_link_in_the_docs_resolves():
    broken = []
    for page in markdown_files():
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)  # code is not linked
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = target.split("#", 1)[0]
            if not (page.parent / path).exists():
                broken.append(f"{page.relative_to(REPO)} -> {target}")
    assert not broken, "links to missing files: " + ", ".join(broken)


def test_every_docs_page_is_reachable_from_the_index():
    index = (REPO / "docs" / "index.md").read_text(encoding="utf-8")
    linked = set(re.findall(r"\]\(([\w.-]+\.md)(?:#[^)]*)?\)", index))
    pages = {page.name for page in (REPO / "docs").glob("*.md")} - {"index.md"}
    assert pages <= linked, f"docs/index.md does not link {sorted(pages - linked)}"
