"""The one hand-off between the agent thread and a sink's writer thread.

::

    agent thread: put(item)                    (the ring reader: must never wait)
        │
        ▼
    queue (bounded deque) ── full ──> dropped_queue_full
        │
        │ writer thread: up to ``batch`` items once ``batch`` are queued,
        │ on flush() or close(), or after ``interval`` seconds
        ▼
    BatchWriter.write(items) ... BatchWriter.flush() once the queue ran empty
        │                         (asked for, or ``interval`` passed quietly)
        ▼
    close(): the writer drains the queue, then BatchWriter.close(); what it
    has not done within the timeout is counted in dropped_at_close

Every sink of the agent sits behind one of these (JSON file, stdout, OTLP), so
a sink that blocks (a frozen disk, a stdout nobody reads, a collector that
does not answer) costs counted drops, never kernel loss: the ring reader only
appends to a deque. Whatever the sink does that may block (writes, rotation,
gzip, reopening, backing off a full disk, RPCs) runs on its writer thread.

Choices and their reasons:

* ``put`` takes no lock: with one producer, ``deque.append`` and ``len`` are
  atomic, and the writer only takes items away, so the bound holds. The
  condition is touched only when the writer sleeps and a batch is ready, so a
  busy writer costs the agent thread nothing but the append.
* The writer wakes at ``batch`` items rather than at each one: a thread switch
  per event would cost more than the write.
* A writer thread blocked in the kernel cannot be interrupted (a write to a
  frozen file system waits uninterruptibly). ``close`` waits ``close_timeout``,
  then gives up on it: the writer's ``abandon`` stops what can be stopped (an
  RPC in flight) and says how many items it still holds, which are counted
  with the queued ones in ``dropped_at_close``.
"""

import logging
import threading
from collections import deque
from dataclasses import dataclass
from itertools import repeat
from typing import Generic, Protocol, TypeVar

from tetra.errors import ExportError

log = logging.getLogger(__name__)

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)

ABANDON_GRACE_S = 2.0  # after abandon(): time for the writer thread to count what it was doing


class BatchWriter(Protocol[T_contra]):
    """What a sink does on its writer thread."""

    def write(self, items: list[T_contra]) -> None:
        """Deliver items in order; never raise (count failures instead)."""

    def flush(self) -> None:
        """The queue ran empty: push out what is buffered, do what was asked for (reopen)."""

    def close(self) -> None:
        """The last call, after the queue was drained."""

    def abandon(self) -> int:
        """Called from the closing thread when the writer thread did not finish in time:
        stop what can be stopped; return how many items taken from the queue it holds
        undelivered and has not counted anywhere."""


@dataclass
class HandoffStats:
    dropped_queue_full: int = 0  # put() found the queue full
    dropped_at_close: int = 0  # still queued or held by a stuck writer when close() gave up
    dropped_writer_error: int = 0  # in a batch whose write raised (a bug: writers count their I/O errors)


class Handoff(Generic[T]):
    """A bounded queue from the agent thread to a writer thread of its own (named ``name``)."""

    def __init__(self, name: str, writer: BatchWriter[T], *, capacity: int, batch: int, take: int | None = None,
                 interval: float = 1.0, close_timeout: float = 5.0, stats: HandoffStats | None = None) -> None:
        """``batch``: items that wake the writer; ``take``: the most it takes at once (default ``batch``)."""
        if capacity <= 0 or batch <= 0 or interval <= 0 or (take is not None and take <= 0):
            raise ExportError(f"{name}: queue size, batch and interval must be positive")
        self.name = name
        self.stats = stats if stats is not None else HandoffStats()  # a sink may extend it with its own
        self._writer = writer
        self._capacity = capacity
        self._batch = batch
        self._take_most = batch if take is None else take
        self._interval = interval
        self._close_timeout = close_timeout
        self._queue: deque[T] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._idle = False  # the writer waits on the condition: put() must wake it for a batch
        self._flush_requested = False
        self._closing = False
        self._abandoned = False
        self._thread = threading.Thread(target=self._run, name=f"tetra-{name}", daemon=True)
        self._thread.start()

    @property
    def closed(self) -> bool:
        """close() was called."""
        return self._closing

    @property
    def pending(self) -> int:
        """Items queued, not yet taken by the writer."""
        return len(self._queue)

    def counters(self) -> dict[str, int]:
        """For `tetra status` (and the metrics' drop stages)."""
        return {"queued": self.pending, "dropped_queue_full": self.stats.dropped_queue_full,
                "dropped_at_close": self.stats.dropped_at_close, "dropped_writer_error": self.stats.dropped_writer_error}

    @property
    def dropped(self) -> int:
        """Items given to put() that the writer never got to deliver."""
        s = self.stats
        return s.dropped_queue_full + s.dropped_at_close + s.dropped_writer_error

    def has_room(self) -> bool:
        """Whether put() would queue an item now; if not, the drop is counted here, so a
        caller can skip making an item that would be dropped (encoding it, say)."""
        if len(self._queue) < self._capacity:
            return True
        self.stats.dropped_queue_full += 1
        return False

    def put(self, item: T) -> None:
        """Queue one item, or count it in ``dropped_queue_full``; never waits."""
        if self._closing:
            raise ValueError(f"{self.name}: put after close")
        queue = self._queue
        if len(queue) >= self._capacity:
            self.stats.dropped_queue_full += 1
            return
        queue.append(item)
        if self._idle and len(queue) >= self._batch:
            with self._cond:
                self._cond.notify()

    def put_all(self, items: list[T]) -> None:
        """``put`` of each item, in one go: what does not fit is counted in ``dropped_queue_full``."""
        if self._closing:
            raise ValueError(f"{self.name}: put after close")
        queue = self._queue
        room = self._capacity - len(queue)
        if room < len(items):
            self.stats.dropped_queue_full += len(items) - max(room, 0)
            items = items[:max(room, 0)]
        queue.extend(items)
        if self._idle and len(queue) >= self._batch:
            with self._cond:
                self._cond.notify()

    def flush(self) -> None:
        """Ask the writer to take everything queued and flush; does not wait for it."""
        with self._cond:
            self._flush_requested = True
            self._cond.notify()

    def close(self, timeout: float | None = None) -> None:
        """Let the writer drain the queue and close, waiting up to ``timeout`` (default
        ``close_timeout``) seconds; count what it did not get to. Idempotent."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify()
        self._thread.join(self._close_timeout if timeout is None else timeout)
        held = 0
        if self._thread.is_alive():
            with self._cond:
                self._abandoned = True
            held = self._writer.abandon()
            self._thread.join(ABANDON_GRACE_S)
        with self._cond:
            lost = len(self._queue) + held
            self.stats.dropped_at_close += lost
            self._queue.clear()
        if lost:
            log.error("%s: gave up on %d events at exit (the writer did not finish in time)", self.name, lost)

    # -- the writer thread -------------------------------------------------------------

    def _run(self) -> None:
        while True:
            batch, flush, done = self._take()
            try:
                if batch:
                    self._writer.write(batch)
                if flush:
                    self._writer.flush()
            except Exception:  # a broken writer must not end the thread: the queue would only fill
                self.stats.dropped_writer_error += len(batch)
                log.exception("%s: the writer failed; %d events lost", self.name, len(batch))
            if done:
                break
        if not self._abandoned:
            try:
                self._writer.close()
            except Exception:
                log.exception("%s: the writer failed to close", self.name)

    def _take(self) -> tuple[list[T], bool, bool]:
        """Wait for a batch, a flush, close or the interval; take up to one batch.
        Returns (items, whether to flush after them, whether this is the end)."""
        queue = self._queue
        with self._cond:
            self._idle = True
            woken = self._cond.wait_for(self._ready, timeout=self._interval)
            self._idle = False
            if self._abandoned:
                return [], False, True
            # popleft by popleft, as put() appends without the lock; map runs them in C, with no
            # bytecode (so no thread switch) in between (a copy, then clear(), could lose an append)
            batch = list(map(deque.popleft, repeat(queue, min(len(queue), self._take_most))))
            flush = not queue and (self._flush_requested or self._closing or not woken)
            if flush:
                self._flush_requested = False
            return batch, flush, self._closing and not queue

    def _ready(self) -> bool:
        return len(self._queue) >= self._batch or self._flush_requested or self._closing
