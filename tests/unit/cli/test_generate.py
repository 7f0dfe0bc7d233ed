"""``tetra tracingpolicy generate``: Tetragon's kinds (empty, all-syscalls, all-syscalls-list,
ftrace-list, uprobes) and tetra's templates, each output read back with the agent's own loader."""

import importlib.util
import platform
import shutil
import subprocess
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from tetra.cli.generate_cmd import TEMPLATES
from tetra.cli.main import _register, cli
from tetra.compiler.lists import KernelLists
from tetra.kernel.tracefs import TRACEFS_ROOTS
from tetra.policy import TracingPolicy
from tetra.policy.limits import MAX_HOOKS
from tetra.policy.loader import load_policies_text_report
from tetra.policy.syscalls import TABLES

ARCH = platform.machine() if platform.machine() in TABLES else "x86_64"


@pytest.fixture(scope="module")
def tetra() -> click.Group:
    _register()
    return cli


def _generate(tetra: click.Group, *args: str) -> list[TracingPolicy]:
    done = CliRunner().invoke(tetra, ["tp", "generate", *args], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    policies, warnings = load_policies_text_report(done.output, "generated.yaml")
    assert warnings == []
    return policies


def test_empty_is_the_skeleton(tetra: click.Group) -> None:
    [policy] = _generate(tetra, "empty")
    assert (policy.api_version, policy.kind, policy.name) == ("cilium.io/v1alpha1", "TracingPolicy", "empty")
    assert policy.spec.kprobes == () and policy.spec.lists == ()


def test_all_syscalls_one_kprobe_each_split_to_tetras_hook_limit(tetra: click.Group) -> None:
    policies = _generate(tetra, "-m", "/usr/bin/curl", "all-syscalls", "--arch", ARCH)
    table = TABLES[ARCH]
    assert len(policies) == -(-len(table) // MAX_HOOKS)
    assert [p.name for p in policies] == [f"syscalls-{n}" for n in range(1, len(policies) + 1)]
    kprobes = [k for p in policies for k in p.spec.kprobes]
    assert [k.call for k in kprobes] == [f"sys_{name}" for name in sorted(table)]
    assert all(k.syscall for k in kprobes)
    for kprobe in kprobes:
        [selector] = kprobe.selectors
        [binaries] = selector.match_binaries
        assert (binaries.operator, binaries.values) == ("In", ("/usr/bin/curl",))


def test_all_syscalls_list_one_kprobe_over_a_syscalls_list_per_policy(tetra: click.Group) -> None:
    policies = _generate(tetra, "all-syscalls-list", "--arch", ARCH)
    assert [p.name for p in policies] == [f"syscalls-{n}" for n in range(1, len(policies) + 1)]
    values = []
    for policy in policies:
        [syscalls] = policy.spec.lists
        assert (syscalls.name, syscalls.type) == ("syscalls", "syscalls") and len(syscalls.values) <= MAX_HOOKS
        values.extend(syscalls.values)
        [kprobe] = policy.spec.kprobes
        assert (kprobe.call, kprobe.syscall, kprobe.selectors) == ("list:syscalls", True, ())
    assert values == [f"sys_{name}" for name in sorted(TABLES[ARCH])]


def test_ftrace_functions_matching_a_regex(tmp_path: Path) -> None:
    (tmp_path / "available_filter_functions").write_text(
        "vfs_read\nvfs_readv\n__ftrace_invalid_address___64\nksys_read\nvfs_read\nnf_hook [nf_tables]\n")
    assert KernelLists(tracefs=tmp_path).functions_matching("^vfs_") == ("vfs_read", "vfs_readv")
    assert KernelLists(tracefs=tmp_path).functions_matching("") == ("vfs_read", "vfs_readv", "ksys_read", "nf_hook")


def _readable_functions() -> Path | None:
    for root in TRACEFS_ROOTS:
        path = root / "available_filter_functions"
        try:
            with path.open():
                return path
        except OSError:
            continue
    return None


def test_ftrace_list_from_this_kernel_or_the_reason_it_cannot(tetra: click.Group) -> None:
    """Where available_filter_functions is readable, the policy; where not (a locked-down kernel,
    a sandbox), an error naming the file and why, and exit 1."""
    if _readable_functions() is None:
        done = CliRunner().invoke(tetra, ["tp", "generate", "ftrace-list", "-r", "^vfs_read$"])
        assert done.exit_code == 1
        assert "cannot read /sys/kernel/" in done.output and "available_filter_functions" in done.output
        return
    [policy] = _generate(tetra, "-m", "/bin/cat", "ftrace-list", "-r", "^vfs_read$")
    [functions] = policy.spec.lists
    assert (policy.name, functions.name, functions.values) == ("ftrace", "ftrace", ("vfs_read",))
    [kprobe] = policy.spec.kprobes
    assert (kprobe.call, kprobe.syscall) == ("list:ftrace", False)


def test_ftrace_list_bad_regex_is_a_clear_error(tetra: click.Group) -> None:
    done = CliRunner().invoke(tetra, ["tp", "generate", "ftrace-list", "-r", "("])
    assert done.exit_code == 1 and "Error: " in done.output and "missing )" in done.output


NEEDS_BCC = pytest.mark.skipif(importlib.util.find_spec("bcc") is None,
                               reason="needs bcc (its ELF reader lists the symbols)")


@NEEDS_BCC
@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")
def test_uprobes_every_defined_function_of_a_binary(tetra: click.Group, tmp_path: Path) -> None:
    source = tmp_path / "prog.c"
    source.write_text("#include <stdio.h>\n"
                      "int tetra_probe_me(int x) { return x + 1; }\n"
                      "static int tetra_kept_static(int x) { return x * 2; }\n"
                      "int main(int argc, char **argv) { printf(\"%d\\n\", tetra_kept_static(argc)); "
                      "return tetra_probe_me(argc); }\n")
    binary = tmp_path / "prog"
    subprocess.run(["cc", "-O0", "-o", str(binary), str(source)], check=True)
    [policy] = _generate(tetra, "uprobes", "-b", str(binary))
    [uprobe] = policy.spec.uprobes
    assert policy.name == "uprobes" and uprobe.path == str(binary)
    assert {"tetra_probe_me", "tetra_kept_static", "main"} <= set(uprobe.symbols)
    assert "printf" not in uprobe.symbols  # imported, not defined here
    assert len(uprobe.symbols) == len(set(uprobe.symbols))


@NEEDS_BCC
def test_uprobes_refuses_what_it_cannot_read(tetra: click.Group, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not an ELF file\n")
    for args, message in ((["-b", str(tmp_path / "none")], "no such file"),
                          (["-b", str(tmp_path / "notes.txt")], "not an ELF file")):
        done = CliRunner().invoke(tetra, ["tp", "generate", "uprobes", *args])
        assert done.exit_code == 1 and message in done.output, done.output
    done = CliRunner().invoke(tetra, ["tp", "generate", "-m", "/bin/sh", "uprobes", "-b", "/bin/sh"])
    assert done.exit_code == 2 and "--match-binary applies to generated kprobes" in done.output


@pytest.mark.parametrize("template", TEMPLATES)
def test_templates_are_kinds_too(tetra: click.Group, template: str) -> None:
    assert _generate(tetra, template)
    done = CliRunner().invoke(tetra, ["tp", "generate", "-m", "/bin/sh", template])
    assert done.exit_code == 2 and "--match-binary applies to generated kprobes" in done.output
