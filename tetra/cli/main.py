"""The ``tetra`` command group; each subcommand lives in its own module.

The group takes Tetragon's global flags (-d/--debug and the client flags, also
from TETRA_* variables); tetra.cli.options has how they meet the same flags
given after a subcommand.
"""

import logging
import sys

import click

from tetra import __version__
from tetra.cli.options import LOG_FORMAT, global_options
from tetra.errors import TetraError


class _Group(click.Group):
    """A click group that turns tetra's errors into a message and exit 1."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except TetraError as err:
            click.echo(f"tetra: {err}", err=True)
            sys.exit(1)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Tetragon's short names: ``tp`` for ``tracingpolicy``."""
        return super().get_command(ctx, _ALIASES.get(cmd_name, cmd_name))


_ALIASES = {"tp": "tracingpolicy"}


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tetra")
@global_options
def cli(debug: bool, **_client_flags: object) -> None:
    """tetra: eBPF runtime security observability and enforcement.

    The client flags (--server-address, --timeout, --retries, --tls-*) go before
    or after the command, or in TETRA_SERVER_ADDRESS, TETRA_TIMEOUT, ...; the
    command's own flag wins. `tp` is short for `tracingpolicy`.
    """
    if debug:
        logging.basicConfig(level=logging.DEBUG, format=LOG_FORMAT, stream=sys.stderr)


def _register() -> None:
    """Attach the subcommands (imported here so `tetra --help` stays fast)."""
    from tetra.cli import (agent_cmd, compile_cmd, generate_cmd, getevents_cmd, policy_api_cmd,  # noqa: F401
                           probe_cmd, replay_cmd, status_cmd, tracingpolicy_cmd)  # *_cmd add to tracingpolicy
    from tetra.cli import bugtool_cmd

    cli.add_command(agent_cmd.agent)
    cli.add_command(bugtool_cmd.bugtool)
    cli.add_command(getevents_cmd.getevents)
    cli.add_command(probe_cmd.probe)
    cli.add_command(replay_cmd.replay)
    cli.add_command(status_cmd.status)
    cli.add_command(status_cmd.version)
    cli.add_command(tracingpolicy_cmd.tracingpolicy)


def main() -> None:
    """Console-script entry point."""
    _register()
    cli()
