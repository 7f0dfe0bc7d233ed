"""Option values and options shared by commands: durations, and how a client reaches the agent."""

import functools
import re
from collections.abc import Callable
from typing import Any, TypeVar

import click

from tetra.agent.config import DEFAULT_SERVER_ADDRESS

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str | None) -> float | None:
    """Go-style durations as Tetragon's flags take them ("90s", "1h30m"); bare numbers are seconds."""
    if text is None:
        return None
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        parts = _DURATION.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise click.BadParameter(f"{text!r} is not a duration such as 30s, 15m or 1h")
        seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    if seconds <= 0:
        raise click.BadParameter(f"{text!r}: a duration must be positive")
    return seconds


F = TypeVar("F", bound=Callable[..., Any])


def client_options(command: F | None = None, *, timeout: float = 10.0) -> Any:
    """The options of every command that talks to the agent, passed on as ``client: ClientOptions``.

    ``@client_options`` or ``@client_options(timeout=60)`` for commands whose
    work takes longer (loading a policy compiles it). ClientOptions comes from
    tetra.api.client, imported when the command runs: ``tetra --help`` must
    work before scripts/setup.sh generated the gRPC code.
    """
    if command is None:
        return functools.partial(client_options, timeout=timeout)

    @functools.wraps(command)
    def run(*args: Any, server_address: str, timeout: float, tls_ca_file: str | None, tls_cert_file: str | None,
            tls_key_file: str | None, tls_server_name: str | None, **kwargs: Any) -> Any:
        from tetra.api.client import ClientOptions

        client = ClientOptions(server_address, timeout, tls_ca_file, tls_cert_file, tls_key_file, tls_server_name)
        return command(*args, client=client, **kwargs)

    for option in reversed((
        click.option("--server-address", default=DEFAULT_SERVER_ADDRESS, show_default=True, metavar="ADDRESS",
                     help="The agent's API: unix:///path/to/socket or host:port."),
        click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=timeout, show_default=True,
                     help="Seconds to wait for the agent's answer."),
        click.option("--tls-ca-file", metavar="PATH", help="Verify a TLS agent (host:port) with this CA."),
        click.option("--tls-cert-file", metavar="PATH", help="Client certificate, for an agent that asks one."),
        click.option("--tls-key-file", metavar="PATH", help="The client certificate's key."),
        click.option("--tls-server-name", metavar="NAME", help="The name the agent's certificate is checked "
                     "against (default: the host of --server-address)."),
    )):
        run = option(run)
    return run


def export_filter_options(command: F) -> F:
    """Tetragon's export filter flags, shared by ``tetra agent`` and ``tetra replay`` (which runs the
    agent's export chain on a recording): passed on as keyword arguments of the same names."""
    for option in reversed((
        click.option("--export-allowlist", default="", metavar="JSON",
                     help="Export only events matching one of these filters (newline-separated JSON objects)."),
        click.option("--export-denylist", default="", metavar="JSON",
                     help="Never export events matching these filters."),
        click.option("--field-filters", default="", metavar="JSON", help="Include/exclude fields per event type."),
        click.option("--redaction-filters", default="", metavar="JSON",
                     help="Replace regex capture groups in arguments with *****."),
        click.option("--export-rate-limit", type=int, default=-1, show_default=True,
                     help="Most events exported per minute (-1: no limit); drops are reported as rate_limit_info."),
        click.option("--enable-pid-set-filter", is_flag=True, help="Allow the pid_set key in export filters."),
    )):
        command = option(command)
    return command
