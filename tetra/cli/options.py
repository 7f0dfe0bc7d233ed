"""Option values and options shared by commands: durations, and how a client reaches the agent."""

import functools
import re
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import click

from tetra.agent.config import DEFAULT_SERVER_ADDRESS


def comma_list(values: Iterable[str]) -> list[str]:
    """A repeatable flag's values, each also split on commas, blanks dropped (Tetragon's string slices)."""
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


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


class Duration(click.ParamType):
    """A Go-style duration (``30s``, ``1m``, ``1h30m``) or seconds, as a float of seconds."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        try:
            seconds = parse_duration(str(value))
        except click.BadParameter as err:
            self.fail(err.message, param, ctx)
        assert seconds is not None
        return seconds


class Size(click.ParamType):
    """A byte count as Tetragon's size flags take it: digits with an optional K, M or G (powers of 1024)."""

    name = "size"
    _UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        match = re.fullmatch(r"(\d+)([kmg]?)b?", str(value).strip().lower())
        if match is None:
            self.fail(f"{value!r} is not a size such as 65536, 64K or 8M", param, ctx)
        return int(match[1]) * self._UNITS[match[2]]


F = TypeVar("F", bound=Callable[..., Any])

# Tetragon's --cluster-name, for the agent and for `tetra replay` (which must export what the agent did).
cluster_name_option = click.option(
    "--cluster-name", default="", metavar="NAME",
    help="Add cluster_name to every event (JSON export, stdout, OTLP, gRPC), as Tetragon does.")

LOG_FORMAT = "tetra: %(levelname)s: %(message)s"  # the agent's log, and every command's with -d
ENV_PREFIX = "TETRA_"  # TETRA_SERVER_ADDRESS, TETRA_TIMEOUT, ...: Tetragon's tetra reads the same names

# The client flags: (flag names, keyword, option settings). Tetragon's tetra takes them before or after the
# subcommand, so they exist twice: on the `tetra` group (where the environment fills them) and on every
# command that talks to the agent (where a value given wins over the group's).
_CLIENT_FLAGS: tuple[tuple[tuple[str, ...], str, dict[str, Any]], ...] = (
    (("--server-address",), "server_address",
     {"metavar": "ADDRESS", "help": f"The agent's API: unix:///path/to/socket or host:port "
                                    f"(default {DEFAULT_SERVER_ADDRESS})."}),
    (("--timeout",), "timeout",
     {"type": Duration(), "metavar": "DURATION", "help": "How long to wait for the agent's answer, e.g. 30s, 1m "
                                                         "(default 10s; 60s for add and enable)."}),
    (("--retries",), "retries",
     {"type": click.IntRange(min=0), "help": "Retries of a call the agent was not there for, with a back-off "
                                             "from 1s doubling (default 1)."}),
    (("--tls-ca-cert-files", "--tls-ca-file"), "tls_ca_files",
     {"metavar": "PATHS", "help": "Verify a TLS agent (host:port) with these CA files (comma-separated)."}),
    (("--tls-cert-file",), "tls_cert_file", {"metavar": "PATH", "help": "Client certificate, for an agent "
                                                                        "that asks one."}),
    (("--tls-key-file",), "tls_key_file", {"metavar": "PATH", "help": "The client certificate's key."}),
    (("--tls-server-name",), "tls_server_name",
     {"metavar": "NAME", "help": "The name the agent's certificate is checked against (default: the host of "
                                 "--server-address)."}),
)
_CLIENT_KEYS = tuple(key for _, key, _ in _CLIENT_FLAGS)


def global_options(group: F) -> F:
    """The `tetra` group's flags: -d/--debug and the client flags, each also read from
    ``TETRA_<FLAG>`` (TETRA_SERVER_ADDRESS, ...); kept in the context for client_options."""
    for names, key, settings in reversed(_CLIENT_FLAGS):
        envvar = ENV_PREFIX + names[0].lstrip("-").upper().replace("-", "_")
        group = click.option(*names, key, envvar=envvar, show_envvar=True, **settings)(group)
    return click.option("-d", "--debug", is_flag=True, envvar=ENV_PREFIX + "DEBUG", show_envvar=True,
                        help="Debug messages on stderr.")(group)


def client_options(command: F | None = None, *, timeout: float = 10.0) -> Any:
    """The options of every command that talks to the agent, passed on as ``client: ClientOptions``.

    ``@client_options`` or ``@client_options(timeout=60)`` for commands whose
    work takes longer (loading a policy compiles it). A flag given after the
    command wins over the same flag before it (or its TETRA_ variable), which
    wins over the default. ClientOptions comes from tetra.api.client, imported
    when the command runs: ``tetra --help`` must work before scripts/setup.sh
    generated the gRPC code.
    """
    if command is None:
        return functools.partial(client_options, timeout=timeout)

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        from tetra.api.client import ClientOptions

        given = {key: kwargs.pop(key) for key in _CLIENT_KEYS}
        root = click.get_current_context().find_root().params
        value = {key: given[key] if given[key] is not None else root.get(key) for key in _CLIENT_KEYS}
        client = ClientOptions(
            address=value["server_address"] or DEFAULT_SERVER_ADDRESS,
            timeout=value["timeout"] or timeout,
            retries=1 if value["retries"] is None else value["retries"],
            tls_ca_files=tuple(f for f in (value["tls_ca_files"] or "").split(",") if f),
            tls_cert_file=value["tls_cert_file"], tls_key_file=value["tls_key_file"],
            tls_server_name=value["tls_server_name"])
        return command(*args, client=client, **kwargs)

    for names, key, settings in reversed(_CLIENT_FLAGS):
        run = click.option(*names, key, **settings)(run)
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
