"""Where the agent's events go: JSON lines (file or stdout) and compact lines."""

import sys
import time
from collections.abc import Callable
from typing import IO, Any, Protocol

from tetra.export.compact import render_compact
from tetra.filters.chain import ExportChain
from tetra.export.encode import encode
from tetra.export.jsonfile import RotatingFile

Event = dict[str, Any]


class Sink(Protocol):
    """Where events go. ``emit`` runs on the agent thread and must not block; the event is
    shared with the other sinks and must not be modified. A sink may also offer
    ``state() -> dict`` (name, target, state, counters) for `tetra status`."""

    def emit(self, event: Event) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


class LineWriter(Protocol):
    """RotatingFile, or a plain binary stream wrapped by StreamWriter."""

    def write(self, line: bytes) -> None: ...
    def flush(self) -> None: ...
    def reopen(self, reason: str) -> None: ...
    def close(self) -> None: ...


class StreamWriter:
    """A LineWriter over an already open binary stream (stdout): never closes it."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    def write(self, line: bytes) -> None:
        self._stream.write(line)

    def flush(self) -> None:
        self._stream.flush()

    def reopen(self, reason: str) -> None:
        """Nothing to reopen: the stream was opened by someone else."""

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

    def reopen(self, reason: str) -> None:
        """Start writing to the file at the path again (SIGHUP after an outside rotation)."""
        self.writer.reopen(reason)

    def close(self) -> None:
        self.writer.close()

    def state(self) -> dict[str, Any]:
        """For `tetra status`: where it writes, whether writes fail (and why), the last reopen,
        and its counters."""
        writer = self.writer
        if not isinstance(writer, RotatingFile):
            return {"name": "json", "target": "stdout", "state": "ok"}
        state = f"failing: {writer.last_error}" if writer.failing else "ok"
        if writer.last_reopen:
            state += f" (reopened: {writer.last_reopen})"
        return {"name": "json", "target": writer.path, "state": state,
                "counters": {"bytes_written": str(writer.bytes_written), "rotations": str(writer.rotations),
                             "reopens": str(writer.reopens), "write_errors": str(writer.write_errors),
                             "lines_dropped": str(writer.lines_dropped),
                             "bytes_dropped": str(writer.bytes_dropped)}}


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


class ChainSink:
    """Export filters in front of the exporters (JSON file, stdout, OTLP), as Tetragon
    applies them to its exporters: allow/deny lists, redaction, field filters and
    the rate limit, whose rate_limit_info reports go out on flush (every tick).
    gRPC subscribers are not behind it: they bring their own filters."""

    def __init__(self, chain: ExportChain, sinks: list[Sink], clock: Callable[[], float] = time.monotonic) -> None:
        self.chain = chain
        self.sinks = sinks
        self._clock = clock

    def emit(self, event: Event) -> None:
        out = self.chain.process(event)
        if out is not None:
            for sink in self.sinks:
                sink.emit(out)

    def flush(self) -> None:
        for report in self.chain.ticks(self._clock()):
            for sink in self.sinks:
                sink.emit(report)
        for sink in self.sinks:
            sink.flush()

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()

    def state(self) -> dict[str, Any]:
        return {"name": "export-filters", "target": "json, stdout, otlp", "state": "ok",
                "counters": {"filtered_out": str(self.chain.filtered_out),
                             "rate_limited": str(self.chain.rate_limited)}}
