"""``tetra tracingpolicy generate``: a policy to start from, a template or one generated here.

Tetragon's kinds, with its output shape (``cmd/tetra/tracingpolicy/generate``):

* ``empty``: the TracingPolicy skeleton, named ``empty``, to fill in;
* ``all-syscalls``: policy ``syscalls``, one ``syscall: true`` kprobe per syscall; a tetra
  policy holds at most 64 hooks (tetra.policy.limits), so the kprobes are split, in
  order, over policies ``syscalls-1``, ``syscalls-2``, ... of one multi-document file
  (Tetragon writes a single policy, which tetra would refuse);
* ``all-syscalls-list``: policy ``syscalls``, one kprobe on ``list:syscalls``, a list of
  type ``syscalls`` holding them all;
* ``ftrace-list``: policy ``ftrace``, one kprobe on ``list:ftrace``, the functions of
  ``available_filter_functions`` that ``-r/--regex`` matches (all without it).

``-m/--match-binary`` (on ``generate``, before the kind) adds a ``matchBinaries In``
selector to each generated kprobe, as Tetragon's does. Tetragon reads the syscalls
from the running kernel's BTF; tetra writes those of its architecture table
(tetra.policy.syscall_names, the kernel's own syscall tables), so the policy can be
generated for x86_64 or arm64 on any machine and its names are the ones
``validate`` accepts. tetra's templates (commented examples) are kinds too.
"""

import platform
from importlib import resources
from typing import Any

import click
import yaml

from tetra.cli.tracingpolicy_cmd import tracingpolicy
from tetra.compiler.lists import KernelLists, ListError
from tetra.policy.limits import MAX_HOOKS
from tetra.policy.syscalls import TABLES

TEMPLATES = ("file-monitoring", "process-connect", "sigkill-exec", "tracepoint")

Policy = dict[str, Any]


@tracingpolicy.group("generate")
@click.option("-m", "--match-binary", metavar="PATH", default="",
              help="Add a matchBinaries selector (operator In, this binary) to each generated kprobe.")
@click.pass_context
def generate(ctx: click.Context, match_binary: str) -> None:
    """Print a TracingPolicy to start from: one of Tetragon's generated kinds, or a template."""
    ctx.obj = match_binary


def _policy(name: str, spec: dict[str, Any] | None = None) -> Policy:
    return {"apiVersion": "cilium.io/v1alpha1", "kind": "TracingPolicy", "metadata": {"name": name},
            "spec": spec or {}}


def _kprobe(call: str, syscall: bool, match_binary: str) -> dict[str, Any]:
    kprobe: dict[str, Any] = {"call": call, "syscall": syscall}
    if match_binary:
        kprobe["selectors"] = [{"matchBinaries": [{"operator": "In", "values": [match_binary]}]}]
    return kprobe


def _emit(*policies: Policy) -> None:
    click.echo(yaml.safe_dump_all(policies, sort_keys=False, default_flow_style=False), nl=False)


def _syscalls(machine: str) -> list[str]:
    """``sys_NAME`` for every syscall of ``machine``, as Tetragon's AvailableSyscalls names them."""
    table = TABLES.get(machine)
    if table is None:
        raise click.ClickException(f"no syscall table for {machine} (tetra has x86_64 and arm64): "
                                   "list the syscalls by hand with kind empty")
    return [f"sys_{name}" for name in sorted(table)]


_ARCH = click.option("--arch", type=click.Choice(sorted(TABLES)), default=None,
                     help="The architecture whose syscalls to list  [default: this machine's]")


@generate.command("empty")
def empty() -> None:
    """The TracingPolicy skeleton."""
    _emit(_policy("empty"))


@generate.command("all-syscalls")
@_ARCH
@click.pass_obj
def all_syscalls(match_binary: str, arch: str | None) -> None:
    """Every system call, one kprobe each."""
    kprobes = [_kprobe(call, True, match_binary) for call in _syscalls(arch or platform.machine())]
    parts = [kprobes[start:start + MAX_HOOKS] for start in range(0, len(kprobes), MAX_HOOKS)]
    _emit(*(_policy(f"syscalls-{number}" if len(parts) > 1 else "syscalls", {"kprobes": part})
            for number, part in enumerate(parts, start=1)))


@generate.command("all-syscalls-list")
@_ARCH
@click.pass_obj
def all_syscalls_list(match_binary: str, arch: str | None) -> None:
    """Every system call, in one list and one kprobe."""
    calls = _syscalls(arch or platform.machine())
    _emit(_policy("syscalls", {"lists": [{"name": "syscalls", "type": "syscalls", "values": calls}],
                               "kprobes": [_kprobe("list:syscalls", True, match_binary)]}))


@generate.command("ftrace-list")
@click.option("-r", "--regex", default="", metavar="REGEX",
              help="Only the functions this matches (RE2, unanchored; default: all of them).")
@click.pass_obj
def ftrace_list(match_binary: str, regex: str) -> None:
    """The kernel functions of available_filter_functions, in one list and one kprobe."""
    try:
        functions = KernelLists().functions_matching(regex)
    except ListError as err:
        raise click.ClickException(str(err)) from None
    if not functions:
        raise click.ClickException(f"--regex {regex!r} matches no function of available_filter_functions")
    _emit(_policy("ftrace", {"lists": [{"name": "ftrace", "values": list(functions)}],
                             "kprobes": [_kprobe("list:ftrace", False, match_binary)]}))


def _template_command(name: str) -> click.Command:
    @click.pass_obj
    def show(match_binary: str) -> None:
        if match_binary:
            raise click.UsageError(f"--match-binary applies to generated kinds, not to template {name}: "
                                   "edit its selectors instead")
        click.echo(resources.files("tetra.cli").joinpath("templates", f"{name}.yaml").read_text(), nl=False)

    return click.Command(name, callback=show, help=f"tetra's template {name}.yaml, with comments.")


for _name in TEMPLATES:
    generate.add_command(_template_command(_name))
