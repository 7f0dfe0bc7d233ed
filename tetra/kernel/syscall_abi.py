"""A raw syscall number as the call it names, in the syscall table of its ABI.

Tetragon's names for the ABIs (``x64``, ``arm64``) and for the syscalls (the
UAPI ``__NR_<name>``, ``fstat`` rather than the entry function ``newfstat``);
the tables are generated (:mod:`tetra.kernel.syscall_table`), so an event from
another machine reads the same here.
"""

import platform

from tetra.kernel.syscall_table import ARM64, X64

# The ABI of the syscalls tetra's probes see: the machine's own (compat syscalls are not told apart).
MACHINE_ABI = {"x86_64": "x64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())

_TABLES = {"x64": X64, "arm64": ARM64}


def syscall_name(abi: str, number: int) -> str:
    """The syscall's name, or "" when ``abi`` or ``number`` is not in a table tetra has."""
    return _TABLES.get(abi, {}).get(number, "")
