"""A USDT probe of a binary, read from its ELF notes: where it fires and how to read its arguments.

A USDT (``.note.stapsdt``) probe is a ``nop`` in the program with a note that
says, per argument, where the value sits when the ``nop`` runs (a register, a
stack slot) and its size and signedness. A hook on it is a uprobe at the
``nop``'s address. bcc parses the notes and writes, for each argument, a C
function that reads it from the registers (``_bpf_readarg_<fn>_<n>``); tetra
pastes those into the policy's C and calls them, so the rest of a hook is the
uprobe's::

    binary ── bcc USDT(path) ── probe provider:name ─┬─ locations: uprobe addresses
                                                     ├─ arg_types: int32_t, uint64_t, ...
                                                     └─ c_text: the reader functions

Probes guarded by a semaphore (an is-enabled counter the program checks before
preparing the arguments) are refused: bcc can only raise the counter in a
running process, and a policy names a file.
"""

import re
from dataclasses import dataclass

from tetra.errors import TetraError

# The C types bcc gives USDT arguments (a size and a signedness); nothing else is pasted into the C.
_ARG_TYPE = re.compile(r"u?int(8|16|32|64)_t")
_INCLUDE = re.compile(r"^#include .*\n", re.MULTILINE)
_LISTED = 20  # probes named in the error for a missing one (a language runtime has hundreds)


class UsdtError(TetraError):
    """The binary cannot be read, or has no such probe, or tetra cannot attach to it."""


@dataclass(frozen=True)
class UsdtProbe:
    """One probe of one binary, as the hook function ``fn_name`` reads it."""

    path: str  # the binary, symlinks resolved: what is read here is what is attached to
    provider: str
    name: str
    fn_name: str
    arg_types: tuple[str, ...]  # the C type of each argument, by position
    locations: tuple[int, ...]  # where the uprobes go (as bcc's attach_uprobe takes an address)
    c_text: str  # the argument readers, one static function per argument

    def reader(self, index: int) -> str:
        """A C expression of argument ``index`` (0-based) as a 64-bit value, sign-extended when signed."""
        ctype = self.arg_types[index]
        return (f"({{ {ctype} __v = 0; _bpf_readarg_{self.fn_name}_{index + 1}(ctx, &__v, sizeof(__v)); "
                f"(__s64)__v; }})")


def find_probe(path: str, provider: str, name: str, fn_name: str) -> UsdtProbe:
    """``provider:name`` in the binary at ``path`` (resolved, absolute), for the hook function ``fn_name``."""
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
    if probe.semaphore:
        raise UsdtError(f"USDT probe {provider}:{name} of {path} is guarded by a semaphore, which tetra cannot "
                        "set for a binary (only in a running process): it is not supported")
    try:
        context.enable_probe(f"{provider}:{name}", fn_name)
    except USDTException as err:
        raise UsdtError(f"cannot enable USDT probe {provider}:{name} of {path}: {str(err).splitlines()[0]}") \
            from None
    arg_types = tuple(context.get_probe_arg_ctype(f"{provider}:{name}", i) for i in range(probe.num_arguments))
    for ctype in arg_types:
        if not _ARG_TYPE.fullmatch(ctype):
            raise UsdtError(f"USDT probe {provider}:{name} of {path}: argument type {ctype!r} is not an integer")
    locations = tuple(addr for _, fn, addr, _ in context.enumerate_active_probes() if fn.decode() == fn_name)
    return UsdtProbe(path, provider, name, fn_name, arg_types, locations,
                     _INCLUDE.sub("", context.get_text()))
