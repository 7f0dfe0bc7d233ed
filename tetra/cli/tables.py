"""The CLI's one table style, printed at its natural width: names are never cut.

Rich fits a table to the terminal (80 columns when the output is piped) by
wrapping cells or cutting them with an ellipsis, and ``sensitive-file-r…`` cannot
be pasted into the next command. So every table (``tracingpolicy list``,
``status``, ``compile``, ``probe``) is laid out as wide as its longest cells; a
terminal narrower than that wraps whole lines, which keeps every name whole.
One style for all of them: no box, a bold header, numbers right-aligned.
"""

import sys
from collections.abc import Collection
from typing import IO

from rich.console import Console, RenderableType
from rich.measure import Measurement
from rich.table import Table

_UNBOUNDED = 1 << 16  # columns to measure in: wider than any table


def table(*columns: str, right: Collection[str] = (), title: str | None = None) -> Table:
    """A table in the CLI's style; ``right``: the columns of numbers."""
    out = Table(box=None, pad_edge=False, title=title, title_justify="left", title_style="bold")
    for column in columns:
        out.add_column(column, justify="right" if column in right else "left", no_wrap=True)
    return out


def echo(renderable: RenderableType, file: IO[str] | None = None) -> None:
    """Print ``renderable`` (a table, or a Group of them) at its natural width on ``file`` (stdout)."""
    stream = file or sys.stdout
    measuring = Console(file=stream, width=_UNBOUNDED, highlight=False)
    width = Measurement.get(measuring, measuring.options, renderable).maximum
    Console(file=stream, width=max(width, 1), highlight=False, soft_wrap=True).print(renderable)
