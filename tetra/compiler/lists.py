"""``list:NAME`` calls, with generated lists filled from the running kernel.

Tetragon fills a ``generated_syscalls`` list with every syscall of the kernel
and a ``generated_ftrace`` list with every function of
``available_filter_functions`` its ``pattern`` matches, when the policy is
loaded. tetra does the same, from the same places in tracefs:

==================  ===========================================================
list type           expanded to
==================  ===========================================================
syscalls            its values, each a syscall (whatever the hook's ``syscall``)
generated_syscalls  every ``events/syscalls/sys_enter_*`` of tracefs (syscalls)
generated_ftrace    every line of ``available_filter_functions`` the pattern
                    matches (RE2, unanchored, as Go's ``MatchString``; kernel
                    functions, whatever the hook's ``syscall``)
(none)              its values, as written (the hook's ``syscall`` says what
                    they are)
==================  ===========================================================

A list that cannot be filled, or that is filled with nothing, is an error with
the reason: a hook over an empty list would attach nothing and say nothing.

InMap/NotInMap compare a syscall id with a syscall list: its names become this
architecture's syscall numbers, read from the kernel's UAPI header
(``asm/unistd_64.h``), the one place user space has them.
"""

import platform
import re
from dataclasses import dataclass, field
from pathlib import Path

from tetra.errors import KernelError
from tetra.kernel.tracefs import tracefs_root
from tetra.policy.model import LIST_PREFIX, ListSpec, Spec
from tetra.regex import RegexError, compile_regex

SYSCALL_LIST_TYPES = frozenset({"syscalls", "generated_syscalls"})
UNISTD_HEADERS = (Path(f"/usr/include/{platform.machine()}-linux-gnu/asm/unistd_64.h"),
                  Path("/usr/include/asm/unistd_64.h"))
_NR = re.compile(r"#define\s+__NR_(\w+)\s+(\d+)")


class ListError(Exception):
    """A list that cannot be expanded here; the message says why."""


@dataclass(frozen=True)
class Call:
    """One function a kprobe attaches to, and whether it is a syscall."""

    name: str
    syscall: bool


@dataclass
class KernelLists:
    """Expands ``list:NAME`` calls; generated lists are read once from ``tracefs`` (default: the mounted one)."""

    tracefs: Path | None = None
    _syscalls: tuple[str, ...] | None = field(default=None, init=False)
    _functions: tuple[str, ...] | None = field(default=None, init=False)

    def calls(self, spec: Spec, call: str, syscall: bool) -> tuple[Call, ...]:
        """The functions behind ``call``: a ``list:`` reference expanded, else the call itself."""
        if not call.startswith(LIST_PREFIX):
            return (Call(call, syscall),)
        name = call[len(LIST_PREFIX):]
        spec_list = next((item for item in spec.lists if item.name == name), None)
        if spec_list is None:  # the loader refuses an undefined list; kept total for direct callers
            raise ListError(f"{call} names no list of spec.lists")
        names = self.values(spec_list)
        if not names:
            raise ListError(f"list {name!r} is empty: the hook would attach nothing")
        if spec_list.type in SYSCALL_LIST_TYPES:
            syscall = True
        elif spec_list.type == "generated_ftrace":
            syscall = False
        return tuple(Call(n, syscall) for n in names)

    def values(self, spec_list: ListSpec) -> tuple[str, ...]:
        """The list's names: its values, or what the kernel generates for it."""
        if spec_list.type == "generated_syscalls":
            return self.syscalls()
        if spec_list.type == "generated_ftrace":
            return self.ftrace(spec_list)
        return spec_list.values

    def numbers(self, spec: Spec, name: str) -> tuple[int, ...]:
        """List ``name`` as integers (InMap/NotInMap): a syscall list's names as syscall numbers, else its values."""
        spec_list = next((item for item in spec.lists if item.name == name), None)
        if spec_list is None:
            raise ListError(f"list:{name} names no list of spec.lists")
        if spec_list.type not in SYSCALL_LIST_TYPES:
            try:
                return tuple(int(value, 0) for value in spec_list.values)
            except ValueError:
                raise ListError(f"list {name!r} holds a value that is not a number") from None
        table = syscall_numbers()
        numbers = []
        for call in self.values(spec_list):
            short = re.sub(r"^(__(x64|ia32|arm64|riscv|s390x)_)?sys_", "", call)
            if short not in table:
                raise ListError(f"list {name!r}: {call} is not a syscall of this architecture")
            numbers.append(table[short])
        return tuple(numbers)

    def syscalls(self) -> tuple[str, ...]:
        """Every syscall this kernel has a ``sys_enter`` tracepoint for, as ``sys_NAME``."""
        if self._syscalls is None:
            events = self._root("generated_syscalls") / "events" / "syscalls"
            try:
                entries = sorted(p.name for p in events.iterdir() if p.name.startswith("sys_enter_"))
            except OSError as err:
                raise ListError(f"generated_syscalls: cannot list {events}: {err.strerror} "
                                "(the kernel's syscall tracepoints, CONFIG_FTRACE_SYSCALLS)") from None
            self._syscalls = tuple("sys_" + e.removeprefix("sys_enter_") for e in entries)
        return self._syscalls

    def ftrace(self, spec_list: ListSpec) -> tuple[str, ...]:
        """The functions of ``available_filter_functions`` the list's pattern matches."""
        matched = self.functions_matching(spec_list.pattern or "")
        if not matched:
            raise ListError(f"generated_ftrace list {spec_list.name!r}: pattern {spec_list.pattern!r} matches no "
                            "function of this kernel's available_filter_functions")
        return matched

    def functions_matching(self, pattern: str) -> tuple[str, ...]:
        """The functions of ``available_filter_functions`` ``pattern`` matches, once each, in the file's order
        (also what ``tracingpolicy generate ftrace-list`` writes)."""
        try:
            regex = compile_regex(pattern)
        except RegexError as err:  # the loader checked a policy's; the CLI's arrives here
            raise ListError(str(err)) from None
        return tuple(dict.fromkeys(f for f in self._available_functions() if regex.search(f)))

    def _available_functions(self) -> tuple[str, ...]:
        if self._functions is None:
            path = self._root("generated_ftrace") / "available_filter_functions"
            try:
                lines = path.read_text().splitlines()
            except OSError as err:
                raise ListError(f"generated_ftrace: cannot read {path}: {err.strerror} "
                                "(the kernel's function tracer, CONFIG_FUNCTION_TRACER)") from None
            # "name" or "name [module]"; a few kernels add "__ftrace_invalid_address___N" placeholders
            self._functions = tuple(line.split()[0] for line in lines
                                    if line.strip() and not line.startswith("__ftrace_invalid_address"))
        return self._functions

    def _root(self, what: str) -> Path:
        if self.tracefs is not None:
            return self.tracefs
        try:
            return tracefs_root()
        except KernelError as err:
            raise ListError(f"{what}: {err}") from None


def syscall_numbers(headers: tuple[Path, ...] = UNISTD_HEADERS) -> dict[str, int]:
    """Syscall name -> number on this architecture, from its UAPI header."""
    for header in headers:
        try:
            return {name: int(number) for name, number in _NR.findall(header.read_text())}
        except OSError:
            continue
    raise ListError(f"syscall numbers: none of {', '.join(map(str, headers))} is readable "
                    "(install the kernel's UAPI headers, linux-libc-dev)")
