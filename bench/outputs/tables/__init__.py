"""Paper-style tables: the reported numbers beside reproduced ones, as LaTeX or Markdown."""

from bench.outputs.tables.assemble import Table, build_table
from bench.outputs.tables.render import EXTENSIONS, FORMATS, render
from bench.outputs.tables.reproduced import reproduced_models

__all__ = ["EXTENSIONS", "FORMATS", "Table", "build_table", "render", "reproduced_models"]
