"""Decoder of the loader sensor's records: a file a process mapped executable."""

from dataclasses import dataclass

from tetra.decode.process import text
from tetra.decode.registry import register
from tetra.errors import DecodeError
from tetra.wire import layouts
from tetra.wire.constants import LOADER_TRUNC_PATH, Op

_LOADER = layouts.LOADER.codec


@dataclass(slots=True)
class LoaderRecord:
    """Process ``pid`` (thread ``tid``) mapped ``path`` (inode ``ino``) executable."""

    ktime: int
    pid: int
    tid: int
    ino: int
    path: str
    truncated: bool  # the path is not whole: deeper or longer than the kernel's walk keeps


@register(Op.LOADER)
def decode_loader(raw: bytes) -> LoaderRecord:
    if len(raw) < _LOADER.size:
        raise DecodeError(f"loader record of {len(raw)} bytes, need {_LOADER.size}")
    _, _, _, _, ktime, pid, tid, ino, path_len, flags = _LOADER.unpack_from(raw)
    end = _LOADER.size + path_len
    if len(raw) < end:
        raise DecodeError(f"loader record of {len(raw)} bytes, its path ends at {end}")
    return LoaderRecord(ktime, pid, tid, ino, text(raw[_LOADER.size:end]), bool(flags & LOADER_TRUNC_PATH))
