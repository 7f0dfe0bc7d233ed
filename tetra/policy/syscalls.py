"""Whether a ``syscall: true`` call names a syscall, answered from tables without a kernel.

``tracingpolicy validate`` runs anywhere (no root, no tracefs), so a typo such
as ``sys_opnat`` used to pass it and fail only at ``compile`` or ``add``. The
syscall entry functions of x86_64 and arm64 (tetra.policy.syscall_names,
generated from the kernel's tables) answer it, for the architecture tetra runs
on, with the closest name as a suggestion. Calls are spelled as Tetragon takes
them: ``sys_openat``, ``__x64_sys_openat`` or ``openat``.
"""

import platform

from tetra.policy.errors import quoted
from tetra.policy.syscall_names import ARM64, X86_64
from tetra.policy.values import closest

TABLES = {"x86_64": X86_64, "aarch64": ARM64, "arm64": ARM64}
_ARCH_PREFIXES = ("__x64_", "__arm64_")


def check_syscall(call: str, machine: str | None = None) -> str | None:
    """An error when ``call`` is not a syscall of ``machine`` (default: this one); None when it is, or when
    there is no table for the machine, or for 32-bit compat names (``__ia32_``), which the kernel checks."""
    machine = machine or platform.machine()
    table = TABLES.get(machine)
    if table is None or call.startswith("__ia32_"):
        return None
    name = call
    for prefix in _ARCH_PREFIXES:
        name = name.removeprefix(prefix)
    name = name.removeprefix("sys_")
    if name in table:
        return None
    meant = closest(name, table)
    hint = f" (did you mean '{call[:len(call) - len(name)]}{meant}'?)" if meant else ""
    return f"{quoted(call)} is not a syscall on {machine}{hint}"
