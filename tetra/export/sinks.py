"""Where the agent's events go: JSON lines (file or stdout), compact lines, and the export
filters in front of them.

Every sink hands its events over to a thread of its own through one bounded
hand-off (tetra/export/handoff.py) that counts what it drops, and reports
itself in the status (``state() -> ExporterStatus``).
"""

import logging
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import IO, Any, Protocol

from tetra.export.cluster import ClusterNamed, cluster_member
from tetra.export.compact import render_compact
from tetra.export.event import Event
from tetra.export.handoff import Handoff
from tetra.export.jsonfile import RotatingFile
from tetra.filters.chain import ExportChain
from tetra.status.model import ExporterStatus

log = logging.getLogger(__name__)

# Lines a line sink may be behind its writer before it drops (about 15 MB of JSON
# lines): a few hundred milliseconds of a firehose, seconds of a busy node.
LINE_QUEUE_SIZE = 16_384
LINE_BATCH = 512  # lines that wake the writer thread


class Sink(Protocol):
    """Where events go. ``emit`` runs on the agent thread and must not block (a sink that
    writes or sends does it on a thread of its own, behind tetra/export/handoff.py); the
    event is shared with the other sinks and must not be modified. A sink may also offer
    ``state() -> ExporterStatus`` (tetra.status.model.Reporting) for `tetra status`."""

    def emit(self, event: Event) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


# Where a batch of ready JSON lines goes (LineSink.emit_lines).
LineTarget = Callable[[list[bytes]], None]


def line_targets(sinks: Sequence[object]) -> list[LineTarget] | None:
    """Where the compiled line path (tetra/agent/line_path.py) sends lines for ``sinks``: each
    sink's ``line_targets()``; None when one has none (it needs events: filters, compact, gRPC)."""
    targets: list[LineTarget] = []
    for sink in sinks:
        of = getattr(sink, "line_targets", None)
        got = of() if of is not None else None
        if got is None:
            return None
        targets += got
    return targets


class LineWriter(Protocol):
    """RotatingFile, or a plain binary stream wrapped by StreamWriter; used by one thread."""

    @property
    def unwritten(self) -> int: ...
    @property
    def lines_dropped(self) -> int: ...
    @property
    def write_errors(self) -> int: ...
    def write_lines(self, lines: list[bytes]) -> None: ...
    def flush(self) -> None: ...
    def reopen(self, reason: str) -> None: ...
    def close(self) -> None: ...


class StreamWriter:
    """A LineWriter over an already open binary stream (stdout): never closes it.

    A write that fails (stdout closed, a broken pipe) drops its lines and counts
    them; the next write tries again.
    """

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._unflushed = 0  # lines given to the stream since it last flushed
        self.write_errors = 0
        self.lines_dropped = 0

    @property
    def unwritten(self) -> int:
        return self._unflushed

    def write_lines(self, lines: list[bytes]) -> None:
        self._unflushed += len(lines)
        try:
            self._stream.write(b"".join(lines))
        except (OSError, ValueError) as err:
            self._failed(err)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except (OSError, ValueError) as err:
            self._failed(err)
        self._unflushed = 0

    def reopen(self, reason: str) -> None:
        """Nothing to reopen: the stream was opened by someone else."""

    def close(self) -> None:
        self.flush()

    def _failed(self, err: Exception) -> None:
        if not self.write_errors:
            log.error("cannot write events to standard output: %s", err)
        self.write_errors += 1
        self.lines_dropped += self._unflushed
        self._unflushed = 0


class _LinesOut:
    """A LineSink's side on its writer thread: lines into the LineWriter, reopens done here."""

    def __init__(self, writer: LineWriter) -> None:
        self.writer = writer
        self.reopens: deque[str] = deque()  # reasons, appended by the agent thread

    def write(self, lines: list[bytes]) -> None:
        if self.reopens:
            self._reopen()
        self.writer.write_lines(lines)

    def flush(self) -> None:
        if self.reopens:
            self._reopen()
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()

    def abandon(self) -> int:
        return self.writer.unwritten

    def _reopen(self) -> None:
        while self.reopens:
            self.writer.reopen(self.reopens.popleft())


class LineSink:
    """Events rendered as lines on the agent thread (which freezes them as they were),
    written to a LineWriter by a thread of its own behind a bounded hand-off: a stalled
    disk or stdout costs counted drops (``dropped_queue_full``), never the agent thread."""

    def __init__(self, name: str, render: Callable[[Event], bytes | None], writer: LineWriter, *,
                 queue_size: int = LINE_QUEUE_SIZE) -> None:
        self.name = name
        self.writer = writer
        self._render = render
        self._out = _LinesOut(writer)
        # The writer takes all that is queued: each time it waits for the GIL (after a write, say)
        # costs up to the switch interval (5 ms), so a writer behind a fast agent thread catches up
        # in few large writes rather than falling further behind in batches of LINE_BATCH.
        self.handoff: Handoff[bytes] = Handoff(name, self._out, capacity=queue_size, batch=LINE_BATCH,
                                               take=queue_size)
        self._put = self.handoff.put
        self._has_room = self.handoff.has_room

    def emit(self, event: Event) -> None:
        if self._has_room():  # a full queue drops the event before it costs an encoding
            line = self._render(event)
            if line is not None:
                self._put(line)

    def emit_lines(self, lines: list[bytes]) -> None:
        """Ready lines, as ``emit`` would queue them one by one (what does not fit is counted)."""
        self.handoff.put_all(lines)

    def flush(self) -> None:
        """Ask the writer thread to write what is queued and flush (the agent's tick)."""
        self.handoff.flush()

    def reopen(self, reason: str) -> None:
        """Have the writer thread start writing to the file at the path again (SIGHUP after an
        outside rotation), before its next write."""
        self._out.reopens.append(reason)
        self.handoff.flush()

    def close(self) -> None:
        """Write what is queued (within the hand-off's timeout, the rest counted), then close."""
        self.handoff.close()

    @property
    def lines_dropped(self) -> int:
        """Lines given to emit that will never be written, wherever they were dropped."""
        return self.writer.lines_dropped + self.handoff.dropped

    def state(self) -> ExporterStatus:
        """For `tetra status`: where it writes, whether writes fail (and why), the last reopen,
        and its counters (the hand-off's among them)."""
        writer = self.writer
        if not isinstance(writer, RotatingFile):
            counters = {"write_errors": writer.write_errors, "lines_dropped": writer.lines_dropped}
            return ExporterStatus(self.name, "stdout", "ok", counters | self.handoff.counters(), lines=True)
        state = f"failing: {writer.last_error}" if writer.failing else "ok"
        if writer.last_reopen:
            state += f" (reopened: {writer.last_reopen})"
        return ExporterStatus(self.name, writer.path, state,
                              {"bytes_written": writer.bytes_written, "rotations": writer.rotations,
                               "reopens": writer.reopens, "write_errors": writer.write_errors,
                               "lines_dropped": writer.lines_dropped,
                               "bytes_dropped": writer.bytes_dropped} | self.handoff.counters(), lines=True)


def _line(event: Event) -> bytes:
    return event.line


class JsonSink(LineSink):
    """Tetragon-compatible JSON lines, one event per line: to the export file ("json"),
    or to stdout ("stdout")."""

    def __init__(self, writer: LineWriter, *, queue_size: int = LINE_QUEUE_SIZE) -> None:
        super().__init__("json" if isinstance(writer, RotatingFile) else "stdout", _line, writer,
                         queue_size=queue_size)

    def line_targets(self) -> list[LineTarget]:
        """Its lines are the events' lines as they are."""
        return [self.emit_lines]


class CompactSink(LineSink):
    """One human line per event in Tetragon's compact style (🚀 process ...).

    The processes read from /proc at start (exec events flagged ``procFS``) are
    not printed: they are what already ran, about a hundred lines that would
    bury the agent's own start-up lines (API, metrics, ready, policies) on a
    terminal. The JSON export and the API carry them, and the ready line counts them.
    """

    def __init__(self, stream: IO[str] | None = None, color: bool = False) -> None:
        text = stream or sys.stdout
        encoding, errors = text.encoding, text.errors or "strict"  # as the text stream would

        def render(event: Event) -> bytes | None:
            data = event.data
            if _from_proc(data):
                return None
            line = render_compact(data, color=color)
            return None if line is None else (line + "\n").encode(encoding, errors)

        super().__init__("compact", render, StreamWriter(text.buffer))  # type: ignore[attr-defined]


def _from_proc(data: dict[str, Any]) -> bool:
    """An exec event of the /proc snapshot taken at start."""
    body = data.get("process_exec")
    return isinstance(body, dict) and "procFS" in str(body.get("process", {}).get("flags", ""))


class ChainSink:
    """Export filters in front of the exporters (JSON file, stdout, OTLP), as Tetragon
    applies them to its exporters: allow/deny lists, redaction, field filters and
    the rate limit, whose rate_limit_info reports go out on flush (every tick).
    gRPC subscribers are not behind it: they bring their own filters."""

    def __init__(self, chain: ExportChain, sinks: list[Sink], clock: Callable[[], float] = time.monotonic,
                 cluster_name: str = "") -> None:
        self.chain = chain
        self.sinks = sinks
        self._clock = clock
        self.cluster_name = cluster_name  # --cluster-name: on every event ("": none, as Tetragon)
        self._cluster_member = cluster_member(cluster_name)

    def emit(self, event: Event) -> None:
        """With no filter that reads or changes events, the event goes on as it came (its
        line made once, for all the line sinks, and no dict); else as the filters left it."""
        if self.cluster_name:
            event = ClusterNamed(event, self.cluster_name, self._cluster_member)
        if self.chain.reads_events:
            data = event.data
            out = self.chain.process(data)
            if out is None:
                return
            if out is not data:
                event = Event(out)
        elif not self.chain.admit():
            return
        for sink in self.sinks:
            sink.emit(event)

    def line_targets(self) -> list[LineTarget] | None:
        """Its sinks' line targets when no filter, rate limit or cluster name sees the events, else
        None (the cluster name is spliced into each line after it is made, by ``emit``)."""
        if self.cluster_name or self.chain.reads_events or self.chain.limiter is not None:
            return None
        return line_targets(self.sinks)

    def flush(self) -> None:
        for report in self.chain.ticks(self._clock()):
            event = Event({**report, "cluster_name": self.cluster_name} if self.cluster_name else report)
            for sink in self.sinks:
                sink.emit(event)
        for sink in self.sinks:
            sink.flush()

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()

    def state(self) -> ExporterStatus:
        return ExporterStatus("export-filters", "json, stdout, otlp", "ok",
                              {"filtered_out": self.chain.filtered_out, "rate_limited": self.chain.rate_limited,
                               "cel_errors": self.chain.cel_errors})
