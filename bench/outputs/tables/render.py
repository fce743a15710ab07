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
    env.filters.update(tex=tex_escape, texnum=tex_number, md=md_escape)
    return env


def render(table: Table, fmt: str) -> str:
    return _environment().get_template(FORMATS[fmt]).render(table=table, source=reported.source())
