"""Lay a `Table` out as booktabs LaTeX or Markdown with the jinja2 templates in templates/.

The templates use `<< >>` for values and `<% %>` for statements instead of jinja's braces, which would
collide with LaTeX's.
"""

from __future__ import annotations

import re
from functools import cache

import jinja2

from bench.outputs import reported
from bench.outputs.tables.assemble import Table

FORMATS = {"markdown": "table.md.j2", "latex": "table.tex.j2"}
EXTENSIONS = {"markdown": "md", "latex": "tex"}

_TEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}
_TEX_PATTERN = re.compile("|".join(re.escape(c) for c in _TEX_SPECIAL))


def tex_escape(text: object) -> str:
    return _TEX_PATTERN.sub(lambda m: _TEX_SPECIAL[m.group()], str(text))


def tex_number(text: str) -> str:
    """A real minus sign for negative deltas (a bare '-' sets as a hyphen)."""
    return "$-$" + text[1:] if text.startswith("-") else text


def md_escape(text: object) -> str:
    return str(text).replace("|", r"\|").replace("*", r"\*")


def _interval_text(cell, style: str | None) -> tuple[str, str] | None:
    if style is None or cell.low is None:
        return None
    if style == "pm":
        return "pm", f"{(cell.high - cell.low) / 2:.1f}"
    return "brackets", f"{cell.low:.1f}, {cell.high:.1f}"


def ci_markdown(cell, style: str | None) -> str:
    """`--ci`: ` ± 0.8` or ` [94.3, 95.9]` after a reproduced value."""
    shown = _interval_text(cell, style)
    if shown is None:
        return ""
    return f" ± {shown[1]}" if shown[0] == "pm" else f" [{shown[1]}]"


def ci_latex(cell, style: str | None) -> str:
    shown = _interval_text(cell, style)
    if shown is None:
        return ""
    return (f"{{\\scriptsize$\\pm${shown[1]}}}" if shown[0] == "pm" else f"{{\\scriptsize\\,[{shown[1]}]}}")


def _widths(cell) -> str:
    return "" if cell.widths is None or cell.widths == float("inf") else f"{cell.widths:.1f}"


def verdict_markdown(cell) -> str:
    """`--compare`: ✓ (the reported value inside the reproduced interval), ↑k or ↓k (above or below it,
    k interval widths beyond its end)."""
    if cell.verdict is None:
        return ""
    return {"inside": " ✓", "above": f" ↑{_widths(cell)}", "below": f" ↓{_widths(cell)}"}[cell.verdict]


def verdict_latex(cell) -> str:
    if cell.verdict is None:
        return ""
    return {"inside": "\\,$\\surd$", "above": f"\\,$\\uparrow${_widths(cell)}",
            "below": f"\\,$\\downarrow${_widths(cell)}"}[cell.verdict]


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("bench.outputs.tables", "templates"),
        block_start_string="<%", block_end_string="%>",
        variable_start_string="<<", variable_end_string=">>",
        comment_start_string="<#", comment_end_string="#>",
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined, autoescape=False,
    )
    env.filters.update(tex=tex_escape, texnum=tex_number, md=md_escape, ci_md=ci_markdown, ci_tex=ci_latex,
                       verdict_md=verdict_markdown, verdict_tex=verdict_latex)
    return env


def render(table: Table, fmt: str) -> str:
    return _environment().get_template(FORMATS[fmt]).render(table=table, source=reported.source())
