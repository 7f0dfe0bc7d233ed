"""``tetra probe``: what the running kernel offers, measured on the spot.

A policy hook picks its mechanism from what the kernel offers, and custom
kernels offer less than their version suggests; this report is where a user
sees what was picked from. It is a report, so missing features still exit 0;
it needs root because every line is measured by loading and attaching BPF
programs.
"""

import dataclasses
import os
import time
from collections.abc import Callable

import click
import orjson
from rich.console import Group, RenderableType
from rich.text import Text

from tetra.cli import tables
from tetra.kernel.feature_advice import ADVICE
from tetra.kernel.features import GROUPS, Feature, probe_kernel

_MARKS = {True: Text("✔", style="green"), False: Text("✘", style="red")}


def _render_table(features: list[Feature], elapsed: float) -> None:
    """The table (a line per feature, ✔ or ✘ and what was measured), then what each ✘ means."""
    table = tables.table("GROUP", "FEATURE", "", "DETAIL", title=f"tetra probe (measured in {elapsed:.1f} s)")
    for group in GROUPS:
        for index, feature in enumerate(f for f in features if f.group == group):
            table.add_row(group if index == 0 else "", feature.name, _MARKS[feature.available], feature.detail)
    parts: list[RenderableType] = [table]
    missing = [f for f in features if not f.available and f.name in ADVICE]
    if missing:
        parts.append(Text("\nWhat the ✘ lines mean:", style="bold"))
    for feature in missing:
        advice = ADVICE[feature.name]
        parts += [Text(f"✘ {feature.name}: missing {advice.missing}", style="red"),
                  Text(f"    without it: {advice.effect}"), Text(f"    to do: {advice.remedy}")]
    tables.echo(Group(*parts))


def report_json(features: list[Feature]) -> bytes:
    """``{"features": [{"name", "group", "available", "detail", "missing", "effect", "remedy"}, ...]}``:
    the last three for the features that are not available (`tetra probe -o json`, and `tetra bugtool`'s
    probe.json)."""
    entries = [{**dataclasses.asdict(f), **(dataclasses.asdict(ADVICE[f.name]) if not f.available
                                             and f.name in ADVICE else {})} for f in features]
    return orjson.dumps({"features": entries}, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)


def _render_json(features: list[Feature], _elapsed: float) -> None:
    click.echo(report_json(features), nl=False)


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
