"""``tetra tracingpolicy generate``: a policy to start from, a template or one generated here.

Tetragon's kinds, with its output shape (``cmd/tetra/tracingpolicy/generate``):

* ``empty``: the TracingPolicy skeleton, named ``empty``, to fill in;
* ``all-syscalls``: policy ``syscalls``, one ``syscall: true`` kprobe per syscall;
* ``all-syscalls-list``: policy ``syscalls``, one kprobe on ``list:syscalls``, a list of
  type ``syscalls`` holding them all;
* ``ftrace-list``: policy ``ftrace``, one kprobe on ``list:ftrace``, the functions of
  ``available_filter_functions`` that ``-r/--regex`` matches (all without it);
* ``uprobes -b BINARY``: policy ``uprobes``, one uprobe on every function symbol the
  binary defines (``.symtab`` and ``.dynsym``, read by bcc, which attaches uprobes too).

A tetra policy places at most 64 hooks, lists and symbols expanded
(tetra.policy.limits.MAX_HOOKS), where Tetragon's multi-attaches one program to
hundreds. So that what generate writes is what the agent loads, a kind with more
is split, in order, over policies ``NAME-1``, ``NAME-2``, ... of one
multi-document file, each of the same shape (its own list, kprobe or uprobe).

``-m/--match-binary`` (on ``generate``, before the kind) adds a ``matchBinaries In``
selector to each generated kprobe, as Tetragon's does; where there is no kprobe to
add it to (a template, uprobes) it is a usage error rather than ignored. Tetragon reads the syscalls
from the running kernel's BTF; tetra writes those of its architecture table
(tetra.policy.syscall_names, the kernel's own syscall tables), so the policy can be
generated for x86_64 or arm64 on any machine and its names are the ones
``validate`` accepts. tetra's templates (commented examples) are kinds too.
"""

import os
import platform
from importlib import resources
from collections.abc import Callable, Sequence
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


def _policy(name: str, spec: dict[str, Any]) -> Policy:
    return {"apiVersion": "cilium.io/v1alpha1", "kind": "TracingPolicy", "metadata": {"name": name}, "spec": spec}


def _kprobe(call: str, syscall: bool, match_binary: str) -> dict[str, Any]:
    kprobe: dict[str, Any] = {"call": call, "syscall": syscall}
    if match_binary:
        kprobe["selectors"] = [{"matchBinaries": [{"operator": "In", "values": [match_binary]}]}]
    return kprobe


def _emit(name: str, items: Sequence[Any], spec: Callable[[list[Any]], dict[str, Any]]) -> None:
    """Policy ``name`` with ``spec(items)``; over MAX_HOOKS items, policies ``name-1``, ... of at most
    MAX_HOOKS each."""
    parts = [list(items[start:start + MAX_HOOKS]) for start in range(0, len(items), MAX_HOOKS)] or [[]]
    policies = [_policy(f"{name}-{number}" if len(parts) > 1 else name, spec(part))
                for number, part in enumerate(parts, start=1)]
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
    _emit("empty", [], lambda _none: {})


@generate.command("all-syscalls")
@_ARCH
@click.pass_obj
def all_syscalls(match_binary: str, arch: str | None) -> None:
    """Every system call, one kprobe each."""
    _emit("syscalls", _syscalls(arch or platform.machine()),
          lambda calls: {"kprobes": [_kprobe(call, True, match_binary) for call in calls]})


@generate.command("all-syscalls-list")
@_ARCH
@click.pass_obj
def all_syscalls_list(match_binary: str, arch: str | None) -> None:
    """Every system call, in one list and one kprobe."""
    _emit("syscalls", _syscalls(arch or platform.machine()),
          lambda calls: {"lists": [{"name": "syscalls", "type": "syscalls", "values": calls}],
                         "kprobes": [_kprobe("list:syscalls", True, match_binary)]})


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
    _emit("ftrace", functions, lambda names: {"lists": [{"name": "ftrace", "values": names}],
                                               "kprobes": [_kprobe("list:ftrace", False, match_binary)]})


@generate.command("uprobes")
@click.option("-b", "--binary", required=True, metavar="PATH", help="The ELF binary or library whose functions to probe.")
@click.pass_obj
def uprobes(match_binary: str, binary: str) -> None:
    """Every function symbol of a binary, in one uprobe."""
    _no_match_binary(match_binary, "uprobes")
    symbols = _function_symbols(binary)
    if not symbols:
        raise click.ClickException(f"{binary} has no function symbol (not an ELF file, or stripped): nothing to probe")
    _emit("uprobes", symbols, lambda names: {"uprobes": [{"path": binary, "symbols": names}]})


def _function_symbols(binary: str) -> list[str]:
    """The defined function symbols of ``binary``, once each, in bcc's order (bcc's ELF reader is the one
    that resolves them when the uprobes attach, so what it lists is what can be probed)."""
    if not os.path.isfile(binary):
        raise click.ClickException(f"{binary}: no such file")
    try:
        from bcc import BPF
    except ImportError as err:
        raise click.ClickException(f"uprobes needs bcc to read {binary}'s symbols: {err}") from None
    try:
        found = BPF.get_user_functions_and_addresses(binary.encode(), b"")
    except Exception as err:  # bcc raises a bare Exception ("Error -1 enumerating symbols in ...")
        raise click.ClickException(f"{binary}: cannot read its ELF symbols ({err})") from None
    return list(dict.fromkeys(name.decode("utf-8", "replace") for name, _address in found))


def _no_match_binary(match_binary: str, kind: str) -> None:
    if match_binary:
        raise click.UsageError(f"--match-binary applies to generated kprobes, not to {kind}: "
                               "add the selector by hand")


def _template_command(name: str) -> click.Command:
    @click.pass_obj
    def show(match_binary: str) -> None:
        _no_match_binary(match_binary, f"template {name}")
        click.echo(resources.files("tetra.cli").joinpath("templates", f"{name}.yaml").read_text(), nl=False)

    return click.Command(name, callback=show, help=f"tetra's template {name}.yaml, with comments.")


for _name in TEMPLATES:
    generate.add_command(_template_command(_name))
