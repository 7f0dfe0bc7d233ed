"""A USDT probe of a binary, read from its ELF notes: where it fires and how to read its arguments.

A USDT (``.note.stapsdt``) probe is a ``nop`` in the program with a note that
says, per argument, where the value sits when the ``nop`` runs (a register, a
constant, or memory at a register plus an offset) and its size and
signedness. bcc parses the notes; a hook on the probe is a uprobe at each of
its locations (a probe in an inlined function has several), and a C function
per argument reads it as the note of the location that fired says::

    binary ── bcc USDT(path) ── probe provider:name ─┬─ semaphore: file offset of its is-enabled counter
                                                     └─ locations: address ── args: size, sign, where

A probe guarded by a semaphore (a counter the program checks before preparing
the arguments) fires only while the counter is raised: the uprobes are
attached with its file offset, and the kernel raises it in every process that
maps the binary, for as long as they are attached.

Which location fired is told by the instruction pointer's offset in its page
(what bcc's own readers do): the load address of a shared object or PIE
executable is not known here, but it is page-aligned, so the offset is the
note's address modulo the page size.
"""

import re
import struct
from dataclasses import dataclass
from typing import Any

from tetra.errors import TetraError

_PAGE = 0x1000
_LISTED = 20  # probes named in the error for a missing one (a language runtime has hundreds)
# Registers as bcc names them (struct pt_regs fields: ax, r12, sp on x86-64; regs[0] on arm64).
_REGISTER = re.compile(r"[a-z][a-z0-9]{0,5}|regs\[[0-9]{1,2}\]")
_TYPES = {(1, True): "__s8", (2, True): "__s16", (4, True): "__s32", (8, True): "__s64",
          (1, False): "__u8", (2, False): "__u16", (4, False): "__u32", (8, False): "__u64"}


class UsdtError(TetraError):
    """The binary cannot be read, or has no such probe, or an argument tetra cannot read."""


@dataclass(frozen=True)
class UsdtArg:
    """Where one argument is at one location: a constant, a register, or memory at
    ``register + offset (+ index * scale)``."""

    ctype: str  # __s32, __u64, ...
    constant: int | None = None
    register: str | None = None
    offset: int | None = None  # memory: read from user space
    index: str | None = None
    scale: int = 1

    def c(self) -> str:
        """The statement that returns this argument's value as a 64-bit integer (from ``ctx``)."""
        if self.constant is not None:
            return f"return (__s64)({self.ctype})({self.constant}LL);"
        value = f"ctx->{self.register}"
        if self.offset is None:
            return f"return (__s64)({self.ctype})({value});"
        address = f"{value} + ({self.offset}LL)"
        if self.index is not None:
            address += f" + ctx->{self.index} * {self.scale}"
        return (f"{{ {self.ctype} v = 0; bpf_probe_read_user(&v, sizeof(v), (void *)({address})); "
                "return (__s64)v; }")


@dataclass(frozen=True)
class UsdtLocation:
    address: int  # as bcc's attach_uprobe takes it
    args: tuple[UsdtArg, ...]


@dataclass(frozen=True)
class UsdtProbe:
    """One probe of one binary."""

    path: str  # the binary, symlinks resolved: what is read here is what is attached to
    provider: str
    name: str
    semaphore: int  # the file offset of its semaphore; 0: none
    locations: tuple[UsdtLocation, ...]

    @property
    def arg_count(self) -> int:
        return len(self.locations[0].args)

    @staticmethod
    def reader(hook_id: int, index: int) -> str:
        """The C expression of argument ``index`` (0-based) in hook ``hook_id``'s program."""
        return f"tetra_usdt_{hook_id}_{index}(ctx)"

    def readers_c(self, hook_id: int) -> list[str]:
        """A function per argument, returning it as the location that fired has it."""
        lines = []
        for index in range(self.arg_count):
            lines += [f"static __always_inline __s64 tetra_usdt_{hook_id}_{index}(struct pt_regs *ctx)", "{"]
            if len(self.locations) == 1:
                lines.append(f"    {self.locations[0].args[index].c()}")
            else:
                lines.append(f"    switch (PT_REGS_IP(ctx) % {_PAGE:#x}ULL) {{")
                for location in self.locations:
                    lines.append(f"    case {location.address % _PAGE:#x}ULL: {location.args[index].c()}")
                lines += ["    }", "    return 0;"]
            lines.append("}")
        return lines


def find_probe(path: str, provider: str, name: str) -> UsdtProbe:
    """``provider:name`` in the binary at ``path`` (resolved, absolute)."""
    try:
        from bcc import USDT, USDTException  # imported here: tetra's unit tests run without bcc
    except ImportError as err:
        raise UsdtError(f"reading USDT probes needs bcc (python3-bpfcc): {err}") from None
    try:
        context = USDT(path=path)
    except USDTException:
        raise UsdtError(f"{path} is not an ELF file bcc can read USDT notes from") from None
    probes = {(p.provider.decode(), p.name.decode()): p for p in context.enumerate_probes()}
    probe = probes.get((provider, name))
    if probe is None:
        names = sorted(f"{p}:{n}" for p, n in probes)
        more = f", and {len(names) - _LISTED} more" if len(names) > _LISTED else ""
        known = ", ".join(names[:_LISTED]) + more if names else "none"
        raise UsdtError(f"{path} has no USDT probe {provider}:{name} (its probes: {known})")
    what = f"USDT probe {provider}:{name} of {path}"
    locations = []
    for i in range(probe.num_locations):
        location = probe.get_location(i)
        args = tuple(_arg(location.get_argument(a), f"{what}, argument {a}") for a in range(probe.num_arguments))
        locations.append(UsdtLocation(location.address, args))
    by_page_offset: dict[int, tuple[UsdtArg, ...]] = {}
    for location in locations:
        if by_page_offset.setdefault(location.address % _PAGE, location.args) != location.args:
            raise UsdtError(f"{what}: two locations at the same offset in their pages read their arguments "
                            "differently, and the program cannot tell them apart")
    semaphore = _file_offset(path, probe.semaphore, what) if probe.semaphore else 0
    return UsdtProbe(path, provider, name, semaphore, tuple(locations))


def _arg(arg: Any, what: str) -> UsdtArg:
    """One argument as bcc parsed it (a bcc.usdt.USDTProbeArgument: its attributes are those ``valid``
    flags), checked before any of it reaches the C."""
    from bcc.libbcc import BCC_USDT_ARGUMENT_FLAGS as flags

    valid = arg.valid
    ctype = _TYPES.get((arg.size, arg.signed))
    if ctype is None:
        raise UsdtError(f"{what} has {arg.size} bytes, not an integer's 1, 2, 4 or 8")
    if valid & flags.CONSTANT:
        return UsdtArg(ctype, constant=int(arg.constant))
    if valid & flags.DEREF_IDENT or not valid & flags.BASE_REGISTER_NAME:
        raise UsdtError(f"{what} is read through a symbol, which tetra does not resolve")
    register = _register(arg.base_register_name, what)
    if not valid & flags.DEREF_OFFSET:
        return UsdtArg(ctype, register=register)
    index = _register(arg.index_register_name, what) if valid & flags.INDEX_REGISTER_NAME else None
    scale = int(arg.scale) if valid & flags.SCALE else 1
    return UsdtArg(ctype, register=register, offset=int(arg.deref_offset), index=index, scale=scale)


def _register(raw: bytes, what: str) -> str:
    name = raw.decode(errors="replace")
    if not _REGISTER.fullmatch(name):
        raise UsdtError(f"{what} is in register {name!r}, which tetra does not read")
    return name


def _file_offset(path: str, address: int, what: str) -> int:
    """The file offset of a virtual address of an ELF64 little-endian file (the kernel raises a
    semaphore by its offset in the file): through the loadable segment that holds it."""
    try:
        with open(path, "rb") as file:
            header = file.read(64)
            if header[:6] != b"\x7fELF\x02\x01":
                raise UsdtError(f"{what}: the semaphore of a probe is read from 64-bit little-endian ELF files only")
            phoff, = struct.unpack_from("<Q", header, 0x20)
            phentsize, phnum = struct.unpack_from("<HH", header, 0x36)
            file.seek(phoff)
            table = file.read(phentsize * phnum)
    except OSError as err:
        raise UsdtError(f"{what}: cannot read {path}: {err.strerror}") from None
    for i in range(phnum):
        p_type, _, p_offset, p_vaddr, _, p_filesz = struct.unpack_from("<IIQQQQ", table, i * phentsize)
        if p_type == 1 and p_vaddr <= address < p_vaddr + p_filesz:  # PT_LOAD
            return address - p_vaddr + p_offset
    raise UsdtError(f"{what}: its semaphore at {address:#x} is in no loaded segment of the file")
