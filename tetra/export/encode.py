"""Encode one event dict as one JSON line, the format of Tetragon's JSON export.

orjson writes UTF-8 without escaping non-ASCII (as protojson does) and escapes
control characters, including newlines inside strings, so one event is always
exactly one line: shippers split the file on ``\\n`` and nothing else.

Events are expected to be valid Unicode. A lone surrogate (for instance a path
decoded with ``surrogateescape`` somewhere upstream) would make orjson refuse
the whole event; rather than losing a security event over one bad byte, the
slow path replaces such characters with U+FFFD and encodes again.
"""

import base64
import re
from typing import Any

import orjson

from tetra.errors import ExportError

_OPTIONS = orjson.OPT_APPEND_NEWLINE

# orjson serialises integers only within this range; protojson writes 64-bit
# integers as strings anyway, so a larger value becomes a string too.
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1

_SURROGATE = re.compile("[\ud800-\udfff]")


def _default(value: Any) -> Any:
    """Serialise what orjson does not know: bytes as base64, like protojson."""
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def encode(event: dict[str, Any]) -> bytes:
    """Return ``event`` as one UTF-8 JSON line ending in ``b"\\n"``.

    Raises :class:`ExportError` when the event holds a value that has no JSON
    form even after scrubbing (a set, an object ...): a bug upstream, reported
    as a message rather than a traceback.
    """
    return fragment(event, _OPTIONS)


def fragment(value: Any, option: int = 0) -> bytes:
    """``value`` as JSON, with what :func:`encode` does to a bad string or integer. A line put
    together from fragments (tetra/export/event.py) is then the bytes :func:`encode` gives for
    the whole event: scrubbing changes each value on its own."""
    try:
        return orjson.dumps(value, default=_default, option=option)
    except orjson.JSONEncodeError:
        pass
    try:
        return orjson.dumps(_scrub(value), default=_default, option=option)
    except orjson.JSONEncodeError as err:
        raise ExportError(f"event cannot be encoded as JSON: {err}") from err


def _scrub(value: Any) -> Any:
    """Copy ``value`` with invalid strings and out-of-range integers fixed."""
    if isinstance(value, str):
        return _valid_text(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if _INT_MIN <= value <= _INT_MAX else str(value)
    if isinstance(value, dict):
        return {_valid_text(str(k)): _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def _valid_text(text: str) -> str:
    """Replace lone surrogates with U+FFFD; valid text comes back unchanged."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        # \udc80-\udcff are bytes escaped by surrogateescape: restore them,
        # which recovers UTF-8 decoded under the wrong locale.
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
