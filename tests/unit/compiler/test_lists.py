"""``list:NAME`` calls: generated lists filled from a kernel's tracefs, never silently empty.

The tracefs here is a directory laid out as the kernel's (events/syscalls/sys_enter_*,
available_filter_functions), so the expansion reads real files without needing root.
"""

from pathlib import Path

import pytest

from tetra.compiler.kernel import KernelSupport
from tetra.compiler.lists import KernelLists, syscall_numbers
from tetra.compiler.plan import Mechanism, Planner
from tetra.compiler.program import compile_policy
from tetra.policy.errors import PolicyErrors
from tetra.policy.loader import load_policies_text

KPROBES = KernelSupport(kprobe=True, fentry=False, lsm=False)


def tracefs(root: Path, syscalls: tuple[str, ...] = (), functions: str | None = None) -> Path:
    for name in syscalls:
        (root / "events" / "syscalls" / f"sys_enter_{name}").mkdir(parents=True)
        (root / "events" / "syscalls" / f"sys_exit_{name}").mkdir(parents=True)
    if functions is not None:
        (root / "available_filter_functions").write_text(functions)
    return root


def plan(spec: str, root: Path) -> list[tuple[str, Mechanism]]:
    text = f"apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: p\nspec:\n{spec}"
    policy = load_policies_text(text, "p.yaml")[0]
    hooks = Planner(KPROBES, None, KernelLists(root)).plan(policy)
    return [(hook.attach, hook.mechanism) for hook in hooks]


def plan_errors(spec: str, root: Path) -> str:
    with pytest.raises(PolicyErrors) as info:
        plan(spec, root)
    return str(info.value)


GENERATED_SYSCALLS = """  lists:
  - name: "all"
    type: "generated_syscalls"
  kprobes:
  - call: "list:all"
"""

GENERATED_FTRACE = """  lists:
  - name: "ksys"
    type: "generated_ftrace"
    pattern: "^ksys_"
  kprobes:
  - call: "list:ksys"
"""


def test_generated_syscalls_are_every_syscall_of_the_kernel(tmp_path: Path) -> None:
    root = tracefs(tmp_path, syscalls=("dup", "dup2", "openat"))
    assert plan(GENERATED_SYSCALLS, root) == [
        ("__x64_sys_dup", Mechanism.KPROBE), ("__x64_sys_dup2", Mechanism.KPROBE),
        ("__x64_sys_openat", Mechanism.KPROBE)]


def test_generated_ftrace_is_what_the_pattern_matches(tmp_path: Path) -> None:
    root = tracefs(tmp_path, functions="ksys_read\nvfs_read\nksys_write\nksys_mod_fn [some_module]\n"
                                       "__ftrace_invalid_address___64\n")
    assert plan(GENERATED_FTRACE, root) == [("ksys_read", Mechanism.KPROBE), ("ksys_write", Mechanism.KPROBE),
                                            ("ksys_mod_fn", Mechanism.KPROBE)]


def test_a_generated_list_that_matches_nothing_is_an_error(tmp_path: Path) -> None:
    root = tracefs(tmp_path, functions="vfs_read\nvfs_write\n")
    message = plan_errors(GENERATED_FTRACE, root)
    assert message.startswith("p.yaml:11:5: spec.kprobes[0]: ")
    assert "pattern '^ksys_' matches no function of this kernel's available_filter_functions" in message


def test_an_unreadable_kernel_list_is_an_error_with_the_reason(tmp_path: Path) -> None:
    assert "cannot list" in plan_errors(GENERATED_SYSCALLS, tmp_path)
    assert "CONFIG_FTRACE_SYSCALLS" in plan_errors(GENERATED_SYSCALLS, tmp_path)
    message = plan_errors(GENERATED_FTRACE, tmp_path)
    assert "cannot read" in message and "CONFIG_FUNCTION_TRACER" in message


def test_more_hooks_than_a_policy_holds_is_an_error(tmp_path: Path) -> None:
    root = tracefs(tmp_path, syscalls=tuple(f"call{i}" for i in range(70)))
    assert "places 70 hooks on this kernel (lists expanded), at most 64" in plan_errors(GENERATED_SYSCALLS, root)


def test_syscall_list_entries_are_syscalls_whatever_the_hook_says(tmp_path: Path) -> None:
    spec = """  lists:
  - name: "dups"
    type: "syscalls"
    values: ["sys_dup", "sys_dup2"]
  kprobes:
  - call: "list:dups"
    syscall: false
"""
    assert plan(spec, tmp_path) == [("__x64_sys_dup", Mechanism.KPROBE), ("__x64_sys_dup2", Mechanism.KPROBE)]


def test_a_policy_that_attaches_nothing_is_an_error(tmp_path: Path) -> None:
    spec = """  lists:
  - name: "dups"
    type: "syscalls"
    values: ["sys_dup"]
"""
    assert "the policy attaches nothing" in plan_errors(spec, tmp_path)


def test_the_loader_sensor_is_a_policy_of_its_own(tmp_path: Path) -> None:
    """spec.loader places no hook of the policy (the agent attaches the loader sensor for it):
    alone it is a policy that does something, beside hooks it changes none of them."""
    assert plan("  loader: true\n", tmp_path) == []
    spec = """  loader: true
  kprobes:
  - call: "sys_dup"
    syscall: true
"""
    assert plan(spec, tmp_path) == [("__x64_sys_dup", Mechanism.KPROBE)]


def test_inmap_compares_with_numbers_ranges_and_a_syscall_lists_numbers(tmp_path: Path) -> None:
    header = tmp_path / "unistd_64.h"
    header.write_text("#define __NR_read 0\n#define __NR_dup 32\n#define __NR_dup2 33\n")
    assert syscall_numbers((tmp_path / "missing.h", header)) == {"read": 0, "dup": 32, "dup2": 33}
    real = syscall_numbers()  # this machine's architecture, from its UAPI header
    spec = """  lists:
  - name: "dups"
    type: "syscalls"
    values: ["sys_dup", "__x64_sys_dup2"]
  tracepoints:
  - subsystem: "raw_syscalls"
    event: "sys_enter"
    raw: true
    args:
    - index: 1
      type: "int64"
    selectors:
    - matchArgs:
      - index: 1
        operator: "InMap"
        values: ["list:dups", "100:102", "7"]
    - matchArgs:
      - index: 1
        operator: "NotInMap"
        values: ["list:dups"]
"""
    text = f"apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: p\nspec:\n{spec}"
    c = compile_policy(load_policies_text(text, "p.yaml")[0], 3, KPROBES, None, lists=KernelLists(tmp_path))
    dup, dup2 = real["dup"], real["dup2"]
    first, second = (code.entry for code in c.selectors[0])
    assert first == (f"(((((__s64)g->ival[0]) == {dup}LL) || (((__s64)g->ival[0]) == {dup2}LL) || "
                     "(100LL <= ((__s64)g->ival[0]) && ((__s64)g->ival[0]) <= 102LL) || (((__s64)g->ival[0]) == 7LL)))")
    assert second == f"(!((((__s64)g->ival[0]) == {dup}LL) || (((__s64)g->ival[0]) == {dup2}LL)))"


def test_inmap_names_a_syscall_the_architecture_lacks(tmp_path: Path) -> None:
    spec = """  lists:
  - name: "odd"
    type: "syscalls"
    values: ["sys_no_such_call"]
  tracepoints:
  - subsystem: "raw_syscalls"
    event: "sys_enter"
    raw: true
    args:
    - index: 1
      type: "int64"
    selectors:
    - matchArgs:
      - index: 1
        operator: "InMap"
        values: ["list:odd"]
"""
    text = f"apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: p\nspec:\n{spec}"
    with pytest.raises(PolicyErrors) as info:
        compile_policy(load_policies_text(text, "p.yaml")[0], 3, KPROBES, None, lists=KernelLists(tmp_path))
    assert "list 'odd': sys_no_such_call is not a syscall of this architecture" in str(info.value)
