"""The hand-off from the agent thread to GetEvents subscribers.

``Broadcaster`` is one of the pipeline's sinks. With no subscriber its
``emit`` returns at once. Otherwise it wraps the event in one ``Envelope``
and offers it to each subscriber whose filters accept it, with
``put_nowait``: a full queue drops the event for that subscriber alone and
counts it (per subscriber and in total), so a client that stops reading
never slows the agent or the other clients. A subscriber's CEL expressions that
fail on an event (a non-match, as in Tetragon) are counted too (``cel_errors``).

The envelope turns the event into protobuf bytes the first time a
subscriber's thread sends it, and keeps them for the others: one conversion
per event (Tetragon's GetEventsResponse), none for events nobody sends. Subscribers with field filters get
their own reshaped copy, converted for them alone.

Subscribers are a tuple replaced whole when one comes or goes, so the agent
thread reads it without a lock.
"""

import itertools
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tetra.api.convert import ConvertError, to_bytes
from tetra.export.event import Event
from tetra.filters.events import ExportFilter
from tetra.filters.fields import FieldFilters
from tetra.status.model import ExporterStatus, StreamStatus, SubscriberStatus

log = logging.getLogger(__name__)

Json = dict[str, Any]

QUEUE_SIZE = 10_000  # events a subscriber may be behind before its events are dropped
MAX_SUBSCRIBERS = 32


class TooManySubscribers(Exception):
    """MAX_SUBSCRIBERS streams are open already."""


class Envelope:
    """One event on its way to subscribers; its protobuf bytes are made once, on first use."""

    __slots__ = ("event", "data", "failed")

    def __init__(self, event: Json) -> None:
        self.event = event
        self.data: bytes | None = None
        self.failed = False  # did not convert: counted once, skipped by every subscriber


@dataclass(eq=False)
class Subscriber:
    """One GetEvents stream: its filters, its bounded queue and its counters."""

    id: int
    peer: str
    events: ExportFilter | None = None
    fields: FieldFilters | None = None
    queue: "queue.Queue[Envelope]" = field(default_factory=lambda: queue.Queue(QUEUE_SIZE))
    sent: int = 0
    dropped: int = 0

    @property
    def cel_errors(self) -> int:
        """Its filters' CEL evaluations that failed: events not sent (allow list) or not held back (deny)."""
        return self.events.cel_errors if self.events is not None else 0


class Broadcaster:
    """A sink that copies events to every subscriber's queue, never waiting."""

    def __init__(self, target: str = "", queue_size: int = QUEUE_SIZE, max_subscribers: int = MAX_SUBSCRIBERS,
                 cluster_name: str = "") -> None:
        self.target = target  # the server's addresses, for status
        self.cluster_name = cluster_name  # --cluster-name: on every event sent ("": none)
        self.subscribers: tuple[Subscriber, ...] = ()
        self.dropped = 0  # over all subscribers, past ones included
        self.convert_errors = 0
        self.cel_errors_closed = 0  # of the streams that ended; the open ones count their own
        self._queue_size = queue_size
        self._max = max_subscribers
        self._ids = itertools.count(1)
        self._lock = threading.Lock()  # subscribe and unsubscribe
        self._convert = threading.Lock()  # so that each envelope is converted once

    # -- the sink, on the agent thread ---------------------------------------------

    def emit(self, event: Event) -> None:
        subscribers = self.subscribers
        if not subscribers:
            return  # no dict made for nobody
        data = event.data
        if self.cluster_name:  # the exporters have it from the ChainSink, which this sink is not behind
            data = {**data, "cluster_name": self.cluster_name}
        envelope = Envelope(data)
        for sub in subscribers:
            if sub.events is not None and not sub.events.accepts(data):
                continue
            try:
                sub.queue.put_nowait(envelope)
            except queue.Full:
                sub.dropped += 1
                self.dropped += 1

    def line_targets(self) -> list[Callable[[list[bytes]], None]] | None:
        """Nothing to take while nobody subscribes (the compiled line path may run); None otherwise."""
        return None if self.subscribers else []

    def flush(self) -> None:
        """Nothing is buffered here: queues are drained by the subscribers' threads."""

    def close(self) -> None:
        """Subscribers end when the server stops; nothing to release here."""

    def state(self) -> ExporterStatus:
        """For `tetra status`, as the exporters report theirs."""
        return ExporterStatus("grpc", self.target, "ok", {"subscribers": len(self.subscribers),
                                                          "dropped": self.dropped,
                                                          "convert_errors": self.convert_errors,
                                                          "cel_errors": self.cel_errors})

    @property
    def cel_errors(self) -> int:
        """CEL evaluations that failed, over all subscribers ever."""
        return self.cel_errors_closed + sum(s.cel_errors for s in self.subscribers)

    def streams(self) -> StreamStatus:
        """For `tetra status`: the drops and each open stream."""
        return StreamStatus(self.dropped, self.convert_errors,
                            tuple(SubscriberStatus(s.id, s.peer, s.queue.qsize(), s.sent, s.dropped, s.cel_errors)
                                  for s in self.subscribers), self.cel_errors)

    # -- subscribers, on gRPC threads -------------------------------------------------

    def subscribe(self, peer: str, events: ExportFilter | None = None,
                  fields: FieldFilters | None = None) -> Subscriber:
        with self._lock:
            if len(self.subscribers) >= self._max:
                raise TooManySubscribers(f"{self._max} event streams are open already")
            sub = Subscriber(next(self._ids), peer, events, fields, queue.Queue(self._queue_size))
            self.subscribers = (*self.subscribers, sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        with self._lock:
            self.subscribers = tuple(s for s in self.subscribers if s is not sub)
            self.cel_errors_closed += sub.cel_errors

    def encoded(self, sub: Subscriber, envelope: Envelope) -> bytes | None:
        """The bytes to send ``sub`` for ``envelope``; None (counted, logged) if it does not convert."""
        if sub.fields is not None:
            try:
                return to_bytes(sub.fields.apply(envelope.event))
            except ConvertError as err:
                self._failed(err)
                return None
        if envelope.data is None and not envelope.failed:
            with self._convert:
                if envelope.data is None and not envelope.failed:
                    try:
                        envelope.data = to_bytes(envelope.event)
                    except ConvertError as err:
                        envelope.failed = True
                        self._failed(err)
        return envelope.data

    def _failed(self, err: ConvertError) -> None:
        self.convert_errors += 1
        log.error("event not sent to subscribers: %s", err)
