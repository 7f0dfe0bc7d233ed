"""Write tetra/policy/syscall_names.py: the syscall entry functions of x86_64 and arm64, and
tetra/kernel/syscall_table.py: their syscall numbers and argument lists.

Run as root on an x86_64 machine with gcc and linux-libc-dev:
``.venv/bin/python scripts/gen_syscall_names.py``. Sources, all facts of the kernel:

* x86_64: the running kernel's syscall tracepoints (their names are the entry
  functions, ``sys_enter_newfstat``), plus the syscalls this kernel's
  configuration leaves out (modules, kexec, shadow stacks), which a policy for
  another kernel may still hook;
* arm64: asm-generic/unistd.h (arm64's table) through the C preprocessor as a
  64-bit arm64 build sees it, plus the generic syscalls added after the
  installed headers' kernel (451 cachestat onwards).

The numbers are the UAPI ``__NR_<name>`` of each table (x86_64's asm/unistd_64.h,
arm64's asm-generic/unistd.h), named as the table names them (``fstat``, not the
entry function ``newfstat``), as Tetragon's syscall tables do. Argument lists come
from the running kernel's ``syscalls/sys_enter_<entry>/format`` (the types and
names of its SYSCALL_DEFINE), the same on every architecture.
"""

import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tetra.kernel.tracefs import parse_format  # noqa: E402  (tetra from this checkout)

OUT = ROOT / "tetra" / "policy" / "syscall_names.py"
TABLE = ROOT / "tetra" / "kernel" / "syscall_table.py"
X86_HEADER = Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")
TRACEFS = Path("/sys/kernel/tracing/events/syscalls")

# x86_64 entry functions behind a Kconfig option this kernel may lack (syscall_64.tbl has them).
X86_CONFIG_DEPENDENT = ("delete_module", "finit_module", "init_module", "kexec_file_load", "kexec_load",
                        "map_shadow_stack")
# Numbers 451-469 of the generic table (every architecture), newer than the installed headers may be.
GENERIC_SINCE_6_1 = ("cachestat", "fchmodat2", "map_shadow_stack", "futex_wake", "futex_wait", "futex_requeue",
                     "statmount", "listmount", "lsm_get_self_attr", "lsm_set_self_attr", "lsm_list_modules",
                     "mseal", "setxattrat", "getxattrat", "listxattrat", "removexattrat", "open_tree_attr",
                     "file_getattr", "file_setattr")
# x86_64-only numbers newer than the installed headers.
X86_SINCE_6_1 = {335: "uretprobe", 336: "uprobe"}
# What arm64's asm/unistd.h asks of the generic table.
ARM64_PRELUDE = """\
#define __BITS_PER_LONG 64
#define __ARCH_WANT_RENAMEAT
#define __ARCH_WANT_NEW_STAT
#define __ARCH_WANT_SET_GET_RLIMIT
#define __ARCH_WANT_TIME32_SYSCALLS
#define __ARCH_WANT_SYS_CLONE3
#define __ARCH_WANT_MEMFD_SECRET
#define __SYSCALL(nr, call) SYSCALL call
#include <asm-generic/unistd.h>
"""


def x86_64() -> set[str]:
    traced = {p.name.removeprefix("sys_enter_") for p in TRACEFS.iterdir() if p.name.startswith("sys_enter_")}
    return traced | set(X86_CONFIG_DEPENDENT)


def arm64() -> set[str]:
    names = set(re.findall(r"SYSCALL sys_(\w+)", _arm64_preprocessed())) - {"ni_syscall"}
    return names | set(GENERIC_SINCE_6_1)


def _arm64_preprocessed(*flags: str) -> str:
    """asm-generic/unistd.h as a 64-bit arm64 build sees it (``-dM``: its macros instead)."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "asm").mkdir()
        (Path(tmp) / "asm" / "bitsperlong.h").write_text("")  # __BITS_PER_LONG is defined above
        source = Path(tmp) / "table.c"
        source.write_text(ARM64_PRELUDE)
        return subprocess.run(["gcc", "-E", "-P", *flags, "-nostdinc", f"-I{tmp}", "-I/usr/include", str(source)],
                              check=True, capture_output=True, text=True).stdout


def _since_6_1() -> dict[int, str]:
    return {451 + i: name for i, name in enumerate(GENERIC_SINCE_6_1)}


def x86_64_numbers() -> dict[int, str]:
    table = {int(nr): name for name, nr in re.findall(r"#define __NR_(\w+) (\d+)", X86_HEADER.read_text())}
    return table | X86_SINCE_6_1 | _since_6_1()


def arm64_numbers() -> dict[int, str]:
    """``__NR_<name>`` resolved through the ``__NR3264_`` aliases the generic table uses."""
    macros = dict(re.findall(r"#define (__NR\w+) (\w+)", _arm64_preprocessed("-dM")))

    def resolve(value: str) -> str:
        while value in macros:
            value = macros[value]
        return value

    not_calls = ("__NR_syscalls", "__NR_arch_specific_syscall")  # the table's size, a reserved range
    table = {int(resolve(nr)): name.removeprefix("__NR_") for name, nr in macros.items()
             if name.startswith("__NR_") and name not in not_calls and resolve(nr).isdigit()}
    return table | _since_6_1()


def prototypes() -> dict[str, tuple[tuple[str, str], ...]]:
    """Entry function -> its arguments' (type, name), the fields after ``__syscall_nr``."""
    protos = {}
    for event in sorted(TRACEFS.glob("sys_enter_*")):
        fields = parse_format((event / "format").read_text())
        first = [field.name for field in fields].index("__syscall_nr") + 1
        protos[event.name.removeprefix("sys_enter_")] = tuple((field.c_type, field.name) for field in fields[first:])
    return protos


def _frozenset(name: str, values: set[str]) -> str:
    lines, line = [], "   "
    for value in sorted(values):
        item = f' "{value}",'
        if len(line) + len(item) > 118:
            lines.append(line)
            line = "   "
        line += item
    lines.append(line)
    return f"{name} = frozenset({{\n" + "\n".join(lines) + "\n})\n"


def _arguments(args: tuple[tuple[str, str], ...]) -> str:
    """A tuple literal (with the comma a one-element tuple needs), one pair a line when long."""
    pairs = [f'("{kind}", "{name}"),' for kind, name in args]
    if len(" ".join(pairs)) < 80:
        return "(" + " ".join(pairs) + ")"
    return "(\n" + "".join(f"        {pair}\n" for pair in pairs) + "    )"


def _items(name: str, kind: str, items: list[str]) -> str:
    return f"{name}: {kind} = {{\n" + "".join(f"    {item},\n" for item in items) + "}\n"


def main() -> None:
    generated = ("Generated by scripts/gen_syscall_names.py from the kernel's own tables (see there); "
                 "not edited by hand.\n")
    OUT.write_text(
        '"""Syscall entry functions (``sys_<name>``) by architecture, for `validate` without a kernel.\n\n'
        + generated + '"""\n\n' + _frozenset("X86_64", x86_64()) + "\n" + _frozenset("ARM64", arm64()))
    numbers = "dict[int, str]"
    TABLE.write_text(
        '"""Syscall numbers by ABI (named as Tetragon names them: ``x64``, ``arm64``) and each syscall\'s\n'
        "arguments, for rendering a raw syscall id as a call without the kernel that made it.\n\n"
        + generated + '"""\n\n'
        + _items("X64", numbers, [f'{nr}: "{name}"' for nr, name in sorted(x86_64_numbers().items())]) + "\n"
        + _items("ARM64", numbers, [f'{nr}: "{name}"' for nr, name in sorted(arm64_numbers().items())]) + "\n"
        + _items("ARGUMENTS", "dict[str, tuple[tuple[str, str], ...]]",
                 [f'"{call}": {_arguments(args)}' for call, args in prototypes().items()]))


if __name__ == "__main__":
    main()
