"""``tetra tracingpolicy compile``: what a policy becomes.

``compile`` shows, per hook, the mechanism the running kernel gives it and,
with --emit-c, the generated BPF C (bcc's view, includes not expanded), so a
user can see exactly what would be loaded: then the C alone is on stdout (to
redirect into a file or a compiler) and the tables go to stderr. --kernel all plans as if every
mechanism existed (to read the kprobe/fentry/LSM C on a kernel without them).
"""

import os
import sys

import click
from rich.table import Table

from tetra.cli import tables
from tetra.cli.tracingpolicy_cmd import tracingpolicy
from tetra.compiler.kernel import KernelSupport
from tetra.compiler.program import CompiledPolicy, compile_policy
from tetra.kernel.btf import Btf
from tetra.policy import load_policies
from tetra.sensors.loader import MECHANISMS as LOADER_HOOKS
from tetra.wire.events import PROCESS_LOADER

@tracingpolicy.command("compile")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--emit-c", is_flag=True, help="Print the generated BPF C.")
@click.option("--kernel", type=click.Choice(["running", "all"]), default="running", show_default=True,
              help="Plan for the running kernel, or as if every mechanism were available.")
def compile_cmd(file: str, emit_c: bool, kernel: str) -> None:
    """Compile FILE's policies and show each hook's mechanism on this kernel."""
    support = KernelSupport.everything() if kernel == "all" else KernelSupport.detect()
    btf = Btf.load() if os.path.exists("/sys/kernel/btf/vmlinux") else None
    for policy_id, policy in enumerate(load_policies(file), start=1):
        compiled = compile_policy(policy, policy_id, support, btf)
        tables.echo(_hooks_table(compiled), sys.stderr if emit_c else None)
        if emit_c:
            click.echo(compiled.c_text)


def _hooks_table(compiled: CompiledPolicy) -> Table:
    table = tables.table("HOOK", "EVENT", "MECHANISM", "ATTACH", "RETURN", "SELECTORS", "MAP VALUES",
                         right=("SELECTORS", "MAP VALUES"), title=f"policy {compiled.policy.name}")
    for hook in compiled.hooks:
        table.add_row(hook.function_name, hook.event, hook.mechanism.value, hook.attach,
                      hook.return_attach or "-", str(len(hook.selectors)), str(len(compiled.map_entries)))
    if compiled.policy.spec.loader:  # the agent's loader sensor, not the policy's C (--emit-c does not show it)
        for attach, mechanism in LOADER_HOOKS.items():
            table.add_row("loader", PROCESS_LOADER.key, mechanism, attach, "-", "0", "0")
    return table
