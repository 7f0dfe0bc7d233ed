"""One event on its way to the sinks, in the two forms sinks read, each made only when asked.

::

    Pipeline ──Event──> ChainSink ─┬─ no filter: the same Event ──> JSON file, stdout, OTLP: .line
                                   └─ filters: .data ──> a new Event if they changed it
             ──Event──> gRPC Broadcaster: .data, only while a client is subscribed
             ──Event──> compact output: .data

``data`` is Tetragon's event as a dict in the protobuf JSON mapping (what
filters, the compact renderer and the gRPC conversion read); ``line`` is that
dict as one JSON line (tetra/export/encode.py), what the JSON file, stdout and
OTLP write. The pipeline's events (tetra/process/events.py) put their line
together from parts encoded once (a process's JSON is encoded when it is first
exported, not for each of its events), so when only line sinks listen, no dict
is built at all. Both forms are made during the sinks' ``emit`` and reflect the
process cache as it is then; a sink that keeps an event keeps its data or line.
"""

from typing import Any

from tetra.export.encode import encode

Json = dict[str, Any]


class Event:
    """An event given as a dict (a filter's output, a rate_limit_info report); subclasses
    build the dict, or the line without it, on first use."""

    __slots__ = ("_data", "_line")

    def __init__(self, data: Json | None = None) -> None:
        self._data = data
        self._line: bytes | None = None

    @property
    def data(self) -> Json:
        """The event as a dict; shared by every sink, which must not modify it."""
        if self._data is None:
            self._data = self._build()
        return self._data

    @property
    def line(self) -> bytes:
        """The event as one JSON line, ``encode(self.data)`` byte for byte."""
        if self._line is None:
            self._line = self._encode()
        return self._line

    def _build(self) -> Json:
        raise TypeError("an Event needs its data, or a subclass that builds it")

    def _encode(self) -> bytes:
        return encode(self.data)
