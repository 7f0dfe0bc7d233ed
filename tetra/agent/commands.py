"""Work for the agent thread, handed over by other threads (gRPC calls, Kubernetes watchers).

bcc objects (policy sensors, their maps, the kernel counters) belong to the
agent thread. A call that needs them puts a function on this queue and waits
on its future; the agent loop runs what is queued on every iteration, so
within one ring-buffer poll (100 ms) when the agent is idle. A caller that
gives up (its time is over) cancels the future: a command not started by
then never runs, so nothing happens behind the back of a client that was
told "timed out".

There is one queue per agent, built by the composition root (tetra/app) and
handed to everything that needs the agent thread; the agent drains it. When
it last did (``last_run``) is the API's health check: the loop is alive.
"""

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

from tetra.errors import TetraError

T = TypeVar("T")


class AgentUnavailable(TetraError):
    """The agent is stopping."""


class CommandTimeout(AgentUnavailable):
    """The agent thread did not start the command in time (busy draining a storm, or compiling)."""


class CommandQueue:
    """Functions to run on the agent thread, each with the future its caller waits on."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[Callable[[], object], Future[object]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self.last_run = time.monotonic()  # when the agent thread last drained the queue

    def call(self, fn: Callable[[], T], timeout: float) -> T:
        """Run ``fn`` on the agent thread and return its result (or raise its exception)."""
        future: Future[object] = Future()
        with self._lock:
            if self._closed:
                raise AgentUnavailable("the agent is shutting down")
            self._queue.put((fn, future))
        try:
            return future.result(timeout)  # type: ignore[return-value]
        except FutureTimeout:
            if future.cancel():
                raise CommandTimeout(f"the agent did not take the request within {timeout:.0f}s") from None
            return future.result()  # type: ignore[return-value]  # it started just now: its outcome counts

    def run_pending(self) -> None:
        """Run everything queued; called by the agent thread on every loop iteration."""
        self.last_run = time.monotonic()
        while True:
            try:
                fn, future = self._queue.get_nowait()
            except queue.Empty:
                return
            if not future.set_running_or_notify_cancel():
                continue  # its caller gave up
            try:
                future.set_result(fn())
            except Exception as err:  # handed to the caller, who turns it into a gRPC status
                future.set_exception(err)

    def close(self) -> None:
        """Refuse new commands and fail the queued ones: the agent is stopping."""
        with self._lock:
            self._closed = True
        while True:
            try:
                _, future = self._queue.get_nowait()
            except queue.Empty:
                return
            if future.set_running_or_notify_cancel():
                future.set_exception(AgentUnavailable("the agent is shutting down"))
