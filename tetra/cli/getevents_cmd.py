"""``tetra getevents``: the agent's events, live over gRPC or from JSON lines on standard input.

Where the events come from:

* standard input, when it is a pipe or a file (``tetra getevents < tetra.log``,
  ``cat tetragon.log | tetra getevents -o compact``): one JSON event per line,
  Tetragon's export files included; event types tetra does not know are kept
  in JSON output and skipped in compact output, lines that are not JSON
  objects are counted and reported at the end;
* otherwise (a terminal, /dev/null as under CI, or --server-address given)
  the agent's GetEvents stream.

The filter options are Tetragon's; values of one option OR, options AND.
``--cel-expression`` takes a CEL expression over Tetragon's GetEventsResponse
(``process_exec.process.pid > 1000u``: uint32 fields compare with uint literals),
checked here and refused with a message when it cannot compile or exceeds
tetra.filters.cel's bounds; an expression that fails on an event does not
match it.
Over gRPC they travel in the request and the agent applies them (no
bandwidth for events nobody wants); on standard input tetra.filters applies
the same filter here. ``-e``, ``-n``, ``--policy-names``, ``-f`` and ``-F`` also
split on commas; the regular expressions of ``--process``, ``--pod`` and
``--namespace-regex`` do not (a pattern may hold a comma), nor do
``--cel-expression``'s: repeat those options instead.

``--stack-traces`` prints a policy event's kernel and user stack traces under
its compact line; ``-t/--tty-encode PATH`` replaces the output with the raw
bytes written to terminal PATH (tetra.export.tty).
"""

import os
import stat
import sys
import time
from collections.abc import Callable, Iterator
from typing import IO, Any

import click
from click.core import ParameterSource

from tetra.cli.options import Duration, client_options, comma_list
from tetra.export.compact import render_compact, render_stack_traces
from tetra.export.encode import encode
from tetra.export.tty import tty_bytes

Event = dict[str, Any]


@click.command()
@click.option("-o", "--output", type=click.Choice(["json", "compact"]), default="json", show_default=True)
@click.option("--color", type=click.Choice(["auto", "always", "never"]), default="auto", show_default=True,
              help="Colors in compact output (auto: on a terminal).")
@click.option("-e", "--event-types", multiple=True, metavar="TYPES",
              help="Only these event types, e.g. PROCESS_EXEC,PROCESS_KPROBE.")
@click.option("-n", "--namespace", "namespaces", multiple=True, metavar="NAMES",
              help="Only processes in these Kubernetes namespaces.")
@click.option("--namespace-regex", "namespace_regexes", multiple=True, metavar="REGEX",
              help="Only processes in Kubernetes namespaces whose name matches (RE2 syntax, repeatable).")
@click.option("--host", is_flag=True, help="With --namespace: processes outside any pod too.")
@click.option("--pod", "pods", multiple=True, metavar="REGEX",
              help="Only pods whose name matches (RE2 syntax, repeatable).")
@click.option("--process", "processes", multiple=True, metavar="REGEX",
              help="Only processes whose binary matches (RE2 syntax, repeatable).")
@click.option("--policy-names", multiple=True, metavar="NAMES", help="Only events of these tracing policies.")
@click.option("--cel-expression", "cel_expressions", multiple=True, metavar="EXPR",
              help="Only events for which this CEL expression over Tetragon's GetEventsResponse is true, e.g. "
                   "'process_exec.process.pid > 1000u' (repeatable: any may be true).")
@click.option("-f", "--include-fields", multiple=True, metavar="PATHS",
              help="Keep only these fields, e.g. process.binary,process.pid.")
@click.option("-F", "--exclude-fields", multiple=True, metavar="PATHS", help="Drop these fields.")
@click.option("--timestamps", is_flag=True, help="Prefix compact lines with the event's time.")
@click.option("--stack-traces", is_flag=True, help="Compact output: each policy event's stack traces under its line.")
@click.option("-t", "--tty-encode", metavar="PATH", default="",
              help="Print only the raw bytes policy events wrote to terminal PATH (their first argument the file, "
                   "the second the buffer); every other event is skipped.")
@click.option("--reconnect", is_flag=True, help="When the agent goes away, wait for it and go on.")
@click.option("--reconnect-wait", type=Duration(), default="1s", show_default=True, metavar="DURATION",
              help="With --reconnect: how long to wait between attempts, e.g. 500ms, 2s.")
@client_options
@click.pass_context
def getevents(ctx: click.Context, output: str, color: str, event_types: tuple[str, ...],
              namespaces: tuple[str, ...], namespace_regexes: tuple[str, ...], host: bool, pods: tuple[str, ...],
              processes: tuple[str, ...], policy_names: tuple[str, ...], cel_expressions: tuple[str, ...],
              include_fields: tuple[str, ...], exclude_fields: tuple[str, ...], timestamps: bool,
              stack_traces: bool, tty_encode: str, reconnect: bool, reconnect_wait: float, client: Any) -> None:
    """Print events as JSON lines or compact lines, from the agent or from standard input."""
    from tetra.filters.clientside import ClientFilter

    options: dict[str, Any] = {
        "event_types": comma_list(event_types), "namespaces": comma_list(namespaces),
        "namespace_regexes": list(namespace_regexes), "pods": list(pods),
        "processes": list(processes), "policy_names": comma_list(policy_names), "host": host,
        "cel_expressions": list(cel_expressions),
        "include_fields": comma_list(include_fields), "exclude_fields": comma_list(exclude_fields)}
    cel_schema = None
    if cel_expressions:
        from tetra.api import tetragon_events

        cel_schema = tetragon_events
    selection = ClientFilter(**options, cel_schema=cel_schema)  # checks every option, FilterError naming the flags
    colored = color == "always" or (color == "auto" and sys.stdout.isatty())
    write = _printer(sys.stdout.buffer, output, colored, timestamps, stack_traces, tty_encode)
    explicit = ctx.get_parameter_source("server_address") != ParameterSource.DEFAULT
    try:
        if not explicit and _stdin_is_data():
            for event in selection.stream(sys.stdin.buffer):
                write(event)
            if selection.invalid_lines:
                click.echo(f"tetra: {selection.invalid_lines} lines were not JSON events and were skipped",
                           err=True)
            if selection.cel_errors:
                click.echo(f"tetra: {selection.cel_errors} --cel-expression evaluations failed; those events "
                           "were skipped", err=True)
        else:
            for event in _from_agent(client, options, reconnect_wait if reconnect else None):
                write(event)
    except BrokenPipeError:  # `tetra getevents | head`: the reader is gone, so are we
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except KeyboardInterrupt:
        sys.exit(130)


def _stdin_is_data() -> bool:
    """A pipe or a file on standard input carries events; a terminal or /dev/null does not."""
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (OSError, ValueError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISREG(mode)


def _printer(out: IO[bytes], output: str, color: bool, timestamps: bool, stack_traces: bool,
             tty: str) -> Callable[[Event], None]:
    """One event out, flushed at once: a reader of a pipe sees events as they happen."""
    if tty:
        def write_tty(event: Event) -> None:
            data = tty_bytes(event, tty)
            if data:
                out.write(data)
                out.flush()

        return write_tty

    if output == "json":
        def write_json(event: Event) -> None:
            out.write(encode(event))
            out.flush()

        return write_json

    def write_compact(event: Event) -> None:
        line = render_compact(event, color=color, timestamps=timestamps)
        if line is not None:
            text = line + "\n" + (render_stack_traces(event, color) if stack_traces else "")
            out.write(text.encode("utf-8", "surrogateescape"))
            out.flush()

    return write_compact


def _from_agent(options: Any, selection: dict[str, Any], reconnect_wait: float | None) -> Iterator[Event]:
    """The agent's events as dicts; with ``reconnect_wait`` (seconds between attempts), across agent restarts."""
    from tetra.api.client import Client, ClientError
    from tetra.api.convert import to_dict

    request = _request(selection)
    waiting = False
    while True:
        client = Client(options)
        try:
            for message in client.events(request):
                waiting = False
                yield to_dict(message)
            problem = ClientError(f"the agent at {client.address} ended the stream: it is stopping")
        except ClientError as err:
            if err.code is None or err.code.name not in ("UNAVAILABLE", "CANCELLED"):
                raise
            problem = err
        finally:
            client.close()
        if reconnect_wait is None:
            raise problem
        if not waiting:
            click.echo(f"tetra: {problem}; reconnecting", err=True)
            waiting = True
        time.sleep(reconnect_wait)


def _request(selection: dict[str, Any]) -> Any:
    """The options as a GetEventsRequest: one allow filter and the field filters, as Tetragon builds them."""
    from tetra.api import tg_events

    spec = {
        "event_set": [name.upper() for name in selection["event_types"]],
        "namespace": [*selection["namespaces"], *([""] if selection["host"] else [])],
        "namespace_regex": selection["namespace_regexes"],
        "pod_regex": selection["pods"],
        "binary_regex": selection["processes"],
        "policy_names": selection["policy_names"],
        "cel_expression": selection["cel_expressions"],
    }
    spec = {key: value for key, value in spec.items() if value}
    fields = [tg_events.FieldFilter(fields={"paths": paths}, action=action)
              for paths, action in ((selection["include_fields"], tg_events.INCLUDE),
                                    (selection["exclude_fields"], tg_events.EXCLUDE)) if paths]
    return tg_events.GetEventsRequest(allow_list=[tg_events.Filter(**spec)] if spec else [], field_filters=fields)
