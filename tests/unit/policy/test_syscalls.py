"""`syscall: true` calls checked against the architecture's syscall table, without a kernel."""

import platform
from pathlib import Path

import pytest

from tetra.policy import load_policies_report
from tetra.policy.errors import PolicyErrors
from tetra.policy.syscalls import TABLES, check_syscall

POLICY = """\
apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: typo
spec:
  kprobes:
  - call: "{call}"
    syscall: true
"""


@pytest.mark.parametrize("call", ["sys_openat", "__x64_sys_openat", "openat", "sys_newfstat", "sys_init_module",
                                  "sys_listmount", "sys_open", "__ia32_sys_anything"])
def test_x86_64_syscalls_in_every_spelling(call: str) -> None:
    assert check_syscall(call, "x86_64") is None


def test_a_typo_is_an_error_with_the_word_meant_in_the_same_spelling() -> None:
    assert check_syscall("sys_opnat", "x86_64") == "'sys_opnat' is not a syscall on x86_64 (did you mean 'sys_openat'?)"
    assert check_syscall("__x64_sys_exceve", "x86_64") == \
        "'__x64_sys_exceve' is not a syscall on x86_64 (did you mean '__x64_sys_execve'?)"
    assert check_syscall("sys_zzzzzzzz", "x86_64") == "'sys_zzzzzzzz' is not a syscall on x86_64"


def test_arm64_has_its_own_table() -> None:
    assert check_syscall("sys_openat", "aarch64") is None
    assert check_syscall("__arm64_sys_mmap", "aarch64") is None
    assert check_syscall("sys_open", "aarch64") == "'sys_open' is not a syscall on aarch64 (did you mean 'sys_openat'?)"
    assert check_syscall("sys_open", "riscv64") is None  # no table: the kernel decides at load
    assert len(TABLES["x86_64"]) > 350 and len(TABLES["aarch64"]) > 300


@pytest.mark.skipif(check_syscall("sys_opnat") is None, reason="no syscall table for this architecture")
def test_validate_reports_it_at_the_call(tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text(POLICY.format(call="sys_opnat"))
    with pytest.raises(PolicyErrors) as caught:
        load_policies_report(path)
    assert [str(e) for e in caught.value.errors] == [
        f"{path}:7:5: spec.kprobes[0].call: 'sys_opnat' is not a syscall on {platform.machine()}"
        " (did you mean 'sys_openat'?)"]


def test_every_syscall_policy_of_the_library_passes() -> None:
    library = Path(__file__).parents[3] / "policies"
    for path in sorted(library.glob("*.yaml")):
        load_policies_report(path)
