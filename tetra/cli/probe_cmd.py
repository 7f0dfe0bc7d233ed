"""``tetra probe``: what the running kernel offers, measured on the spot.

A policy hook picks its mechanism from what the kernel offers, and custom
kernels offer less than their version suggests; this report is where a user
sees what was picked from. It is a report, so missing features still exit 0;
it needs root because every line is measured by loading and attaching BPF
programs.
"""

import os
import time
from collections.abc import Callable

import click
import orjson
from rich.console import Console
from rich.table import Table

from tetra.kernel.features import GROUPS, Feature, probe_kernel

_MARKS = {True: "[green]✔[/green]", False: "[red]✘[/red]"}


def _render_table(features: list[Feature], elapsed: float) -> None:
    """One rich table, a section per group, each line marked ✔ or ✘."""
    table = Table(title="tetra probe", caption=f"measured in {elapsed:.1f} s")
    for column in ("group", "feature", ""):
        table.add_column(column)
    table.add_column("detail", overflow="fold")  # paths in kernel messages have no spaces
    for group in GROUPS:
        members = [feature for feature in features if feature.group == group]
        for index, feature in enumerate(members):
            table.add_row(
                group if index == 0 else "",
                feature.name,
                _MARKS[feature.available],
                feature.detail,
                end_section=index == len(members) - 1,
            )
    Console().print(table)


def _render_json(features: list[Feature], _elapsed: float) -> None:
    """``{"features": [{"name", "group", "available", "detail"}, ...]}`` on stdout."""
    document = orjson.dumps(
        {"features": features}, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE
    )
    click.echo(document, nl=False)


_RENDERERS: dict[str, Callable[[list[Feature], float], None]] = {
    "table": _render_table,
    "json": _render_json,
}


@click.command()
@click.option(
    "-o",
    "--output",
    type=click.Choice(list(_RENDERERS)),
    default="table",
    show_default=True,
    help="Report format.",
)
def probe(output: str) -> None:
    """Report which eBPF features the running kernel offers, each one measured."""
    if os.geteuid() != 0:
        raise click.ClickException(
            "tetra probe needs root: it measures each feature by loading BPF programs"
        )
    started = time.monotonic()
    features = probe_kernel()
    _RENDERERS[output](features, time.monotonic() - started)
