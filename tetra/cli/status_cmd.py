"""``tetra status`` and ``tetra version``: what a running agent is doing, and which versions talk.

``status`` shows every number that tells whether events can be trusted:
sensors and their attach mechanisms, policies with their hook counters,
events by type with the rate the agent measured, each loss counter, the
process cache and the exporters. A loss counter above zero is shown in red.
``-o json`` prints the StatusResponse with every field, zeros included, and
its counters as JSON numbers (tetra/api/plainjson.py).
"""

from collections import Counter
from typing import Any

import click
import orjson
from rich.console import Group
from rich.table import Table
from rich.text import Text

from tetra import __version__
from tetra.cli import tables
from tetra.cli.options import client_options
from tetra.cli.policy_api_cmd import policy_table, state_word


def _status(client: Any) -> dict[str, Any]:
    from tetra.api import pb
    from tetra.api.client import Client
    from tetra.api.plainjson import message_json

    connection = Client(client)
    try:
        response = connection.call("GetStatus", pb.GetStatusRequest())
    finally:
        connection.close()
    return message_json(response)


@click.command()
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@client_options
def status(output: str, client: Any) -> None:
    """The running agent: sensors, policies, event rates, losses, cache and exporters."""
    state = _status(client)
    if output == "json":
        click.echo(orjson.dumps(state, option=orjson.OPT_INDENT_2).decode())
        return
    tables.echo(render(state))


def _table(*columns: str) -> Table:
    return tables.table(*columns, right=("TOTAL", "RATE/S", "SENT", "LOST", "VALUE", "QUEUED", "DROPPED"))


def _count(value: int) -> Text:
    """A loss counter: red when it is not zero."""
    return Text(str(value), style="bold red" if value else "")


def _policy_counts(policies: list[dict[str, Any]]) -> Text:
    """"policies: 3 enabled, 1 load_error (broken)": whether the node is protected as intended, at a glance."""
    failed = [p["name"] for p in policies if p["state"] == "TP_STATE_LOAD_ERROR"]
    enabled = sum(p["state"] == "TP_STATE_ENABLED" for p in policies)
    others = Counter(p["state"] for p in policies if p["state"] not in ("TP_STATE_ENABLED", "TP_STATE_LOAD_ERROR"))
    text = Text(f"policies: {enabled} enabled, ")
    text.append(f"{len(failed)} load_error" + (f" ({', '.join(failed)})" if failed else ""),
                style="bold red" if failed else "")
    for state, count in sorted(others.items()):
        text.append(f", {count} {state_word(state)}")
    return text


def render(state: dict[str, Any]) -> Group:
    """The status as rich tables, one per concern."""
    title = Text(f"tetra agent {state['version']} on {state['node_name']}, up {state['uptime_seconds']:.0f}s",
                 style="bold")
    sensors = _table("SENSOR", "HOOK", "MECHANISM")
    for sensor in state["sensors"]:
        for hook in sensor["hooks"]:
            sensors.add_row(sensor["name"], hook["hook"], hook["mechanism"])
    events = _table("EVENTS", "TOTAL", "RATE/S")
    for row in state["events"]:
        events.add_row(row["type"], str(row["total"]), f"{row['rate']:.1f}")
    losses = state["losses"]
    lost = _table("LOSS", "VALUE")
    for row in losses["kernel"]:
        lost.add_row(f"kernel ring buffer: {row['opcode']} (of {row['sent']} sent)", _count(row["lost"]))
    throttled = losses.get("kernel_throttled", 0)
    if throttled or losses.get("throttled_cgroups", 0):  # --cgroup-rate's drops: by design, but never silent
        lost.add_row(f"kernel: throttled by --cgroup-rate ({losses.get('throttled_cgroups', 0)} cgroups now)",
                     _count(throttled))
    lost.add_row("decode errors", _count(losses["decode_errors"]))
    for name, value in sorted(losses["pipeline"].items()):
        if name not in ("records", "decode_errors"):
            lost.add_row(f"pipeline: {name}", _count(value))
    lost.add_row("subscriber queues full", _count(losses["subscriber_dropped"]))
    lost.add_row("events not convertible to protobuf", _count(losses["convert_errors"]))
    lost.add_row("stream CEL expressions that failed (no match)", _count(losses.get("cel_errors", 0)))
    lost.add_row("exporter errors", _count(losses["exporter_errors"]))
    for row in state.get("user_actions", ()):  # GetUrl / DnsLookup: those not made are losses too
        lost.add_row(f"{row['action']} requests failed (of {row.get('done', 0) + row.get('failed', 0)} made)",
                     _count(row.get("failed", 0)))
        for outcome in ("rate_limited", "dropped_queue_full", "dropped_at_close"):
            lost.add_row(f"{row['action']} requests not made: {outcome}", _count(row.get(outcome, 0)))
    cache = state["process_cache"]
    exporters = _table("EXPORTER", "TARGET", "STATE", "COUNTERS")
    for e in state["exporters"]:
        counters = ", ".join(f"{k} {v}" for k, v in sorted(e.get("counters", {}).items()))
        exporters.add_row(e["name"], e["target"], e["state"], counters)
    subscribers = _table("SUBSCRIBER", "PEER", "QUEUED", "SENT", "DROPPED")
    for s in state["subscribers"]:
        subscribers.add_row(str(s["id"]), s["peer"], str(s["queued"]), str(s["sent"]), _count(s["dropped"]))
    parts: list[Any] = [title, Text(), sensors, Text(), events, Text(), lost, Text(),
                        Text(f"process cache: {cache['size']} of {cache['capacity']}, "
                             f"{cache['evictions']} evicted"), Text(), exporters]
    if state["policies"]:
        parts += [Text(), _policy_counts(state["policies"]), policy_table(state["policies"])]
    if state["subscribers"]:
        parts += [Text(), subscribers]
    return Group(*parts)


@click.command()
@click.option("-s", "--server", is_flag=True, help="Also ask the running agent for its version.")
@client_options
def version(server: bool, client: Any) -> None:
    """This client's version and, with -s, the running agent's."""
    from tetra.api import tg_sensors
    from tetra.api.client import Client

    click.echo(f"client {__version__}")
    if not server:
        return
    connection = Client(client)
    try:
        agent = connection.call("GetVersion", tg_sensors.GetVersionRequest()).version
    finally:
        connection.close()
    click.echo(f"agent  {agent} ({client.address})")
