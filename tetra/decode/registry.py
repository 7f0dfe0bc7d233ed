"""The opcode -> decoder registry; each decoder module registers itself."""

from collections.abc import Callable
from typing import TypeVar

from tetra.errors import DecodeError
from tetra.wire.constants import Op

Decoder = Callable[[bytes], object]
DECODERS: dict[int, Decoder] = {}
D = TypeVar("D", bound=Decoder)


def register(op: Op) -> Callable[[D], D]:
    """Decorator: make ``fn`` the decoder of records whose first byte is ``op``."""

    def wrap(fn: D) -> D:
        if op in DECODERS:
            raise ValueError(f"opcode {op!r} has a decoder already")
        DECODERS[int(op)] = fn
        return fn

    return wrap


def decode(raw: bytes) -> object:
    """Decode one record; DecodeError for an empty record or an unknown opcode."""
    if not raw:
        raise DecodeError("empty record")
    decoder = DECODERS.get(raw[0])
    if decoder is None:
        raise DecodeError(f"unknown opcode {raw[0]}")
    return decoder(raw)
