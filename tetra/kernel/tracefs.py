"""Tracepoint formats from tracefs: the fields a tracepoint hands its programs.

Tetragon's tracepoint argument ``index`` counts the fields of the format file
from the first line (the ``common_*`` fields included), so the list keeps them.
Offsets and sizes come from the running kernel, never from headers.
"""

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from tetra.errors import KernelError

TRACEFS_ROOTS = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))
_FIELD = re.compile(r"field:(?P<decl>[^;]+);\s*offset:(?P<offset>\d+);\s*size:(?P<size>\d+);\s*signed:(?P<signed>\d+);")


@dataclass(frozen=True)
class Field:
    """One field of a tracepoint record."""

    name: str
    c_type: str  # as written in the format, e.g. "const char *", "__data_loc char[]"
    offset: int
    size: int
    signed: bool

    @property
    def is_data_loc(self) -> bool:
        """A variable-length field: a u32 (length << 16 | offset) at ``offset``."""
        return self.c_type.startswith("__data_loc")

    @property
    def is_pointer(self) -> bool:
        return self.c_type.rstrip().endswith("*")

    @property
    def is_char_array(self) -> bool:
        return self.c_type.split()[-1] == "char" and "[" in self.name


def tracefs_root() -> Path:
    for root in TRACEFS_ROOTS:
        try:
            if (root / "events").is_dir():
                return root
        except PermissionError:  # mode 0700: is_dir raises instead of answering
            raise KernelError(f"cannot read {root}: tracepoint formats are root's (run as root)") from None
    raise KernelError("tracefs is not mounted: mount -t tracefs tracefs /sys/kernel/tracing")


def _parse_decl(decl: str) -> tuple[str, str]:
    """'const char * filename' -> ('const char *', 'filename'); arrays keep their brackets."""
    decl = decl.strip()
    cut = max(decl.rfind(" "), decl.rfind("*"))
    return decl[:cut + 1].strip(), decl[cut + 1:].strip()


def parse_format(text: str) -> tuple[Field, ...]:
    fields = []
    for match in _FIELD.finditer(text):
        c_type, name = _parse_decl(match["decl"])
        fields.append(Field(name, c_type, int(match["offset"]), int(match["size"]), match["signed"] == "1"))
    return tuple(fields)


@cache
def tracepoint_fields(subsystem: str, event: str) -> tuple[Field, ...]:
    """The fields of subsystem:event, or KernelError naming what is missing."""
    if not re.fullmatch(r"[A-Za-z0-9_]+", subsystem) or not re.fullmatch(r"[A-Za-z0-9_]+", event):
        raise KernelError(f"{subsystem}:{event} is not a tracepoint name")
    path = tracefs_root() / "events" / subsystem / event / "format"
    try:
        return parse_format(path.read_text())
    except FileNotFoundError:
        raise KernelError(f"this kernel has no tracepoint {subsystem}:{event} ({path} is missing)") from None
    except OSError as err:
        raise KernelError(f"cannot read {path}: {err.strerror}") from err


def tracepoint_exists(subsystem: str, event: str) -> bool:
    try:
        tracepoint_fields(subsystem, event)
    except KernelError:
        return False
    return True
