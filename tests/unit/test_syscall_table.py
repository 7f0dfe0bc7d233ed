"""The generated syscall tables (tetra/kernel/syscall_table.py) against this machine's own facts.

The numbers must be the UAPI header's; the argument lists the running kernel's
syscall tracepoints. A failure here means the table is stale: run
scripts/gen_syscall_names.py (as root) and commit what it writes.
"""

import pytest

from tetra.compiler.lists import ListError, syscall_numbers
from tetra.kernel.syscall_abi import MACHINE_ABI, syscall_name
from tetra.kernel.syscall_table import ARGUMENTS
from tetra.kernel.tracefs import tracepoint_exists, tracepoint_fields


def test_numbers_are_the_uapi_headers() -> None:
    try:
        header = syscall_numbers()
    except ListError as err:
        pytest.skip(str(err))
    assert header, "no __NR_ in the header"
    wrong = {nr: (name, syscall_name(MACHINE_ABI, nr)) for name, nr in header.items()
             if syscall_name(MACHINE_ABI, nr) != name}
    assert not wrong, wrong


@pytest.mark.usefixtures("root")  # tracepoint formats are root's
def test_arguments_are_the_running_kernels() -> None:
    stale = {}
    for call, args in ARGUMENTS.items():
        if not tracepoint_exists("syscalls", f"sys_enter_{call}"):
            continue  # a syscall this kernel's configuration leaves out
        fields = tracepoint_fields("syscalls", f"sys_enter_{call}")
        first = [field.name for field in fields].index("__syscall_nr") + 1
        kernel = tuple((field.c_type, field.name) for field in fields[first:])
        if kernel != args:
            stale[call] = (args, kernel)
    assert not stale, stale


def test_unknown_abi_or_number_has_no_name() -> None:
    assert syscall_name("i386", 5) == ""
    assert syscall_name(MACHINE_ABI, 100_000) == ""
    assert syscall_name(MACHINE_ABI, -1) == ""
