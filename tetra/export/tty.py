"""``tetra getevents --tty-encode PATH``: the bytes written to one terminal, replayed raw.

Tetragon's TtyEncoder: a policy hooking a write function with the file as its
first argument and the buffer as its second (``sys_write`` with ``file`` and
``char_buf`` args, say) records what a terminal shows; this writes the buffers
of the events whose file is PATH, and nothing else, so the output is the
session as it was typed and seen. Every other event is skipped.
"""

import base64
from typing import Any


def tty_bytes(event: dict[str, Any], tty: str) -> bytes | None:
    """The buffer a ``process_kprobe`` event wrote to ``tty``; None for any other event."""
    body = event.get("process_kprobe")
    if not isinstance(body, dict):
        return None
    args = body.get("args")
    if not isinstance(args, list) or not args or not isinstance(args[0], dict):
        return None
    file = args[0].get("file_arg")
    if not isinstance(file, dict) or file.get("path") != tty:
        return None
    if len(args) < 2 or not isinstance(args[1], dict):
        return b""
    try:
        return base64.b64decode(str(args[1].get("bytes_arg", "")), validate=True)
    except ValueError:
        return b""
