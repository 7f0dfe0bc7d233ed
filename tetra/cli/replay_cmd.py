"""``tetra replay``: a ring recording (``tetra agent --record-ring``) through the agent's pipeline, without root."""

import logging
import sys

import click
import orjson

from tetra.agent.config import AgentConfig
from tetra.cli.options import cluster_name_option, export_filter_options
from tetra.app.replay import Replay


@click.command()
@click.argument("recording", metavar="FILE", type=click.Path(dir_okay=False))
@click.option("--export-filename", metavar="PATH", help="Write events as JSON lines to this file.")
@click.option("-o", "--output", "stdout", type=click.Choice(["compact", "json", "none"]), default="compact",
              show_default=True, help="What to print on standard output.")
@click.option("--color", type=click.Choice(["auto", "always", "never"]), default="auto", show_default=True)
@click.option("--node-name", default=None, help="Node name in events and exec_ids (default: the recording's).")
@cluster_name_option
@click.option("--process-cache-size", type=click.IntRange(min=1), default=65536, show_default=True,
              help="Most processes kept in the process cache.")
@export_filter_options
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info",
              show_default=True)
def replay(recording: str, export_filename: str | None, stdout: str, color: str, node_name: str | None,
           cluster_name: str, process_cache_size: int, export_allowlist: str, export_denylist: str, field_filters: str,
           redaction_filters: str, export_rate_limit: int, enable_pid_set_filter: bool, log_level: str) -> None:
    """Feed a recording made by `tetra agent --record-ring FILE` to the agent's pipeline.

    The records are decoded, go through the process cache and the export filters,
    and are written as the agent writes them, with the recording's node name and
    boot time: with the agent's flags, the JSON lines are the ones it wrote live.
    Needs no root. Prints a JSON summary to stderr at the end.
    """
    logging.basicConfig(level=log_level.upper(), format="tetra: %(levelname)s: %(message)s", stream=sys.stderr)
    config = AgentConfig(
        export_filename=export_filename,
        stdout=stdout,
        color=color == "always" or (color == "auto" and sys.stdout.isatty()),
        node_name=node_name,
        cluster_name=cluster_name,
        process_cache_size=process_cache_size,
        server_addresses=(),
        export_allowlist=export_allowlist,
        export_denylist=export_denylist,
        field_filters=field_filters,
        redaction_filters=redaction_filters,
        export_rate_limit=export_rate_limit,
        enable_pid_set_filter=enable_pid_set_filter,
    )
    summary = Replay(config, recording).run()
    sys.stderr.write(orjson.dumps({"summary": summary.as_dict()}).decode() + "\n")
