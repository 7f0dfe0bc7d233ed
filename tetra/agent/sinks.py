"""Where the agent's events go: JSON lines (file or stdout) and compact lines."""

import sys
from typing import IO, Any, Protocol

from tetra.export.compact import render_compact
from tetra.export.encode import encode

Event = dict[str, Any]


class Sink(Protocol):
    def emit(self, event: Event) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


class LineWriter(Protocol):
    """RotatingFile, or a plain binary stream wrapped by StreamWriter."""

    def write(self, line: bytes) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


class StreamWriter:
    """A LineWriter over an already open binary stream (stdout): never closes it."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    def write(self, line: bytes) -> None:
        self._stream.write(line)

    def flush(self) -> None:
        self._stream.flush()

    def close(self) -> None:
        self._stream.flush()


class JsonSink:
    """Tetragon-compatible JSON lines, one event per line."""

    def __init__(self, writer: LineWriter) -> None:
        self.writer = writer

    def emit(self, event: Event) -> None:
        self.writer.write(encode(event))

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class CompactSink:
    """One human line per event in Tetragon's compact style (🚀 process ...)."""

    def __init__(self, stream: IO[str] | None = None, color: bool = False) -> None:
        self._stream = stream or sys.stdout
        self._color = color

    def emit(self, event: Event) -> None:
        line = render_compact(event, color=self._color)
        if line is not None:
            self._stream.write(line + "\n")

    def flush(self) -> None:
        self._stream.flush()

    def close(self) -> None:
        self._stream.flush()
