"""``tetra tracingpolicy add|delete|list|enable|disable|set-mode``: a running agent's policies.

These join the ``tracingpolicy`` group (tracingpolicy_cmd) and talk to the
agent over gRPC. ``add`` first reads the file with the same loader as
``validate``, so a mistake is reported as ``file:line:col`` without a round
trip; the agent checks again and reports why the kernel refused a policy.
"""

from collections.abc import Iterable
from typing import Any

import click
import orjson
from rich.table import Table

from tetra.cli import tables
from tetra.cli.options import client_options
from tetra.cli.policy_text import with_mode
from tetra.cli.tracingpolicy_cmd import tracingpolicy
from tetra.policy import load_policies_report
from tetra.policy.loader import load_policies_text_report

LOAD_TIMEOUT = 60.0  # add and enable compile and load BPF programs: seconds per policy
_ORIGINS = {"cache": "from the cache", "built": "built, now cached", "compiled": "compiled in the agent"}
_MODES = {"TP_MODE_ENFORCE": "enforce", "TP_MODE_MONITOR": "monitor", "TP_MODE_UNKNOWN": "unknown"}


def state_word(state: str) -> str:
    """"TP_STATE_LOAD_ERROR" -> "load_error": the word Tetragon's `tetra tracingpolicy list` shows,
    and the one the exit summary, the log and a CRD's status use (tetra/status/model.py)."""
    return state.removeprefix("TP_STATE_").lower()


def _call(client: Any, method: str, request: Any) -> Any:
    from tetra.api.client import Client

    connection = Client(client)
    try:
        return connection.call(method, request)
    finally:
        connection.close()


def _as_dict(message: Any) -> dict[str, Any]:
    from tetra.api.plainjson import message_json

    return message_json(message)


def _describe(policy: dict[str, Any]) -> str:
    """"name: enabled, enforce; hooks: __x64_sys_openat (kprobe); loaded in 0.05s (from the cache)"."""
    hooks = ", ".join(f"{h['hook']} ({h['mechanism']})" for h in policy.get("tetra_hooks", ()))
    text = f"{policy['name']}: {state_word(policy['state'])}, {_MODES[policy['mode']]}"
    if hooks:
        text += f"; hooks: {hooks}"
    if "tetra_load_seconds" in policy:
        origin = policy["tetra_origin"]
        text += f"; loaded in {policy['tetra_load_seconds']:.2f}s ({_ORIGINS.get(origin, origin)})"
    if policy.get("error"):
        text += f"; error: {policy['error']}"
    return text


@tracingpolicy.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("-m", "--mode", type=click.Choice(["enforce", "monitor"]),
              help="Load in this mode, whatever the file's policy-mode says.")
@client_options(timeout=LOAD_TIMEOUT)
def add(file: str, mode: str | None, client: Any) -> None:
    """Load the policies of FILE into the running agent (all of them, or none)."""
    from tetra.api import tg_sensors
    from tetra.api.client import ClientError

    load_policies_report(file)  # PolicyErrors: every problem as file:line:col, printed by the CLI group
    with open(file, encoding="utf-8", errors="surrogateescape") as source:
        sent = with_mode(file, source.read(), mode)
    if mode is not None:
        policies, _ = load_policies_text_report(sent.text, file)
        assert all(p.policy_mode == mode for p in policies), "the edited text must carry the mode"
    try:
        response = _call(client, "AddTracingPolicy", tg_sensors.AddTracingPolicyRequest(yaml=sent.text))
    except ClientError as err:  # the agent names the text it was sent "api": say the file
        raise ClientError(sent.located(str(err)), err.code) from None
    for policy in _as_dict(response)["tetra_policies"]:
        click.echo(f"added {_describe(policy)}")


@tracingpolicy.command()
@click.argument("name")
@click.option("-n", "--namespace", default="", help="Namespace of a TracingPolicyNamespaced.")
@client_options
def delete(name: str, namespace: str, client: Any) -> None:
    """Unload policy NAME and forget it."""
    from tetra.api import tg_sensors

    _call(client, "DeleteTracingPolicy", tg_sensors.DeleteTracingPolicyRequest(name=name, namespace=namespace))
    click.echo(f"deleted {name}")


@tracingpolicy.command()
@click.argument("name")
@click.option("-n", "--namespace", default="", help="Namespace of a TracingPolicyNamespaced.")
@client_options(timeout=LOAD_TIMEOUT)
def enable(name: str, namespace: str, client: Any) -> None:
    """Load a disabled policy again."""
    from tetra.api import tg_sensors

    response = _call(client, "EnableTracingPolicy",
                     tg_sensors.EnableTracingPolicyRequest(name=name, namespace=namespace))
    click.echo(f"enabled {_describe(_as_dict(response.tetra_policy))}")


@tracingpolicy.command()
@click.argument("name")
@click.option("-n", "--namespace", default="", help="Namespace of a TracingPolicyNamespaced.")
@client_options
def disable(name: str, namespace: str, client: Any) -> None:
    """Unload a policy's programs but keep the policy (enable brings it back)."""
    from tetra.api import tg_sensors

    response = _call(client, "DisableTracingPolicy",
                     tg_sensors.DisableTracingPolicyRequest(name=name, namespace=namespace))
    click.echo(f"disabled {_describe(_as_dict(response.tetra_policy))}")


@tracingpolicy.command("set-mode")
@click.argument("name")
@click.argument("mode", type=click.Choice(["monitor", "enforce"]))
@click.option("-n", "--namespace", default="", help="Namespace of a TracingPolicyNamespaced.")
@client_options
def set_mode(name: str, mode: str, namespace: str, client: Any) -> None:
    """monitor: Sigkill, Signal and Override are reported, not done; enforce: done. Takes effect at once."""
    from tetra.api import tg_sensors

    request = tg_sensors.ConfigureTracingPolicyRequest(
        name=name, namespace=namespace,
        mode=tg_sensors.TP_MODE_MONITOR if mode == "monitor" else tg_sensors.TP_MODE_ENFORCE)
    response = _call(client, "ConfigureTracingPolicy", request)
    click.echo(f"mode set: {_describe(_as_dict(response.tetra_policy))}")


@tracingpolicy.command("list")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@client_options
def list_policies(output: str, client: Any) -> None:
    """The agent's policies: state, mode, hooks and what the kernel counted for each."""
    from tetra.api import tg_sensors

    policies = _as_dict(_call(client, "ListTracingPolicies", tg_sensors.ListTracingPoliciesRequest()))["policies"]
    if output == "json":
        click.echo(orjson.dumps({"policies": policies}, option=orjson.OPT_INDENT_2).decode())
        return
    tables.echo(policy_table(policies))


def policy_table(policies: Iterable[dict[str, Any]]) -> Table:
    """Policies as `tracingpolicy list` and `status` show them."""
    table = tables.table("ID", "NAME", "STATE", "MODE", "HOOKS", "SEEN", "POSTED", "LOADED IN", "SOURCE",
                         right=("ID", "SEEN", "POSTED"))
    for p in policies:
        hooks = p.get("tetra_hooks", [])
        name = f"{p['namespace']}/{p['name']}" if p.get("namespace") else p["name"]
        state = state_word(p["state"]) + (f": {p['error']}" if p.get("error") else "")
        table.add_row(str(p["id"]), name, state, _MODES[p["mode"]],
                      ", ".join(f"{h['hook']} ({h['mechanism']})" for h in hooks) or "-",
                      str(sum(h["seen"] for h in hooks)), str(sum(h["posted"] for h in hooks)),
                      f"{p['tetra_load_seconds']:.2f}s ({p['tetra_origin']})" if "tetra_load_seconds" in p else "-",
                      p.get("info", ""))
    return table
