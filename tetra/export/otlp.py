"""OTLP log export: every event as one OpenTelemetry LogRecord over gRPC.

::

    reader thread: emit(event)
        │ encode to the JSON line
        ▼
    pending (bounded, tetra/export/handoff.py) ── full ──> dropped_queue_full
        │
        │ sender thread: a batch of up to 512 records (and ~3 MiB) once 512 are
        │ pending, on flush() or close(), or after 1 s
        ▼
    ExportLogsServiceRequest: one ResourceLogs per node, one LogRecord per event
        │
        ▼
    LogsService/Export ── ok ──> sent
        │ retryable status: backoff, try again, up to max_retries
        └ retries spent, or a final status ──> dropped_send_failed

Every event given to :meth:`OtlpSink.emit` ends in exactly one counter of
:class:`OtlpStats` (``sent``, ``dropped_queue_full``, ``dropped_send_failed``,
``dropped_at_close``) or is still pending: nothing is lost silently.

Choices and their reasons:

* The body is the event's JSON line, byte for byte what the export file holds,
  so a collector parses one format whichever way events travel. Attributes
  repeat a few fields (OpenTelemetry semantic convention names where they
  exist) so a backend can route and index without parsing the body.
* ``emit`` only encodes (orjson, a few microseconds) and appends to the queue:
  the reader thread never waits for the network. Encoding there also freezes
  the event as it was when emitted. Attributes and protobuf messages are built
  on the sender thread.
* Delivery is at least once within a bounded budget. A batch whose Export
  fails with a retryable status (the OTLP specification's list, plus
  RESOURCE_EXHAUSTED: a collector's memory limiter recovers, and a batch that
  is simply too large costs only a few bounded attempts) is retried with
  doubling, jittered backoff ``max_retries`` times, then dropped and counted.
  As with any OTLP exporter, a reply lost after the collector took a batch
  makes the retry a duplicate.
* ``process.command_line`` (binary and arguments), not ``process.command_args``:
  Tetragon's ``arguments`` is one string in which arguments with spaces are
  quoted, which cannot be split back into argv faithfully.
* Batches are also capped in bytes: a gRPC server refuses messages over 4 MiB
  by default (the collector's ``max_recv_msg_size_mib``), and 512 events with
  16 KiB command lines would exceed that.
* gRPC's own reconnect backoff grows to two minutes by default; it is capped
  at our maximum backoff so that a collector that comes back is used by the
  next retry rather than after the batch was given up.
"""

import logging
import random
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import grpc
import orjson
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import (
    SEVERITY_NUMBER_INFO,
    SEVERITY_NUMBER_WARN,
    LogRecord,
    ScopeLogs,
)

from tetra import __version__
from tetra.errors import ExportError
from tetra.export.event import Event
from tetra.export.handoff import Handoff, HandoffStats
from tetra.status.model import ExporterStatus
from tetra.wire.constants import Action

log = logging.getLogger(__name__)

Json = dict[str, Any]

DEFAULT_QUEUE_SIZE = 10_000
DEFAULT_MAX_BATCH = 512
DEFAULT_MAX_BATCH_BYTES = 3 * 1024 * 1024

# OTLP/gRPC: these statuses may succeed when retried; any other is final.
_RETRYABLE = frozenset({
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DATA_LOSS,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
})
_WARN_ACTIONS = frozenset(action.tetragon for action in (Action.SIGKILL, Action.OVERRIDE, Action.SIGNAL))
_METADATA_KEYS = frozenset({"node_name", "time", "cluster_name", "node_labels", "aggregation_info"})
_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)")

# Attribute name -> path into the event's "process" object, copied when present.
_PROCESS_FIELDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("process.pid", ("pid",)),
    ("process.executable.path", ("binary",)),
    ("process.working_directory", ("cwd",)),
    ("process.user.id", ("uid",)),
    ("process.exec_id", ("exec_id",)),
    ("k8s.namespace.name", ("pod", "namespace")),
    ("k8s.pod.name", ("pod", "name")),
    ("container.name", ("pod", "container", "name")),
    ("container.image.name", ("pod", "container", "image", "name")),
)
# Attribute name -> key of the event body (process_kprobe, process_tracepoint ...).
_BODY_FIELDS = (
    ("tetra.policy_name", "policy_name"),
    ("tetra.function_name", "function_name"),
    ("tetra.action", "action"),
)


@dataclass
class OtlpStats(HandoffStats):
    """Where every emitted event ended up; the hand-off's drops (queue full, at close) included."""

    sent: int = 0  # accepted by the collector
    send_errors: int = 0  # failed Export attempts (one batch may fail several times)
    dropped_send_failed: int = 0  # given up after retries, refused for good, or rejected in a partial success


@dataclass(frozen=True, slots=True)
class _Pending:
    line: bytes  # the event's JSON, without the newline
    observed_ns: int


class OtlpSink:
    """A sink that ships events to an OTLP/gRPC logs endpoint (``host:port``).

    Plaintext unless ``tls_ca_file`` names a PEM bundle to verify the
    collector with. ``emit`` never blocks; ``flush`` asks for the pending
    events to go now and returns at once; ``close`` sends what it can within
    ``close_timeout`` seconds and counts the rest.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        tls_ca_file: str | None = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        batch_interval: float = 1.0,
        max_retries: int = 5,
        initial_backoff: float = 0.2,
        max_backoff: float = 5.0,
        rpc_timeout: float = 10.0,
        close_timeout: float = 5.0,
    ) -> None:
        _check_positive(queue_size=queue_size, max_batch=max_batch, max_batch_bytes=max_batch_bytes,
                        batch_interval=batch_interval, initial_backoff=initial_backoff,
                        max_backoff=max_backoff, rpc_timeout=rpc_timeout)
        if max_retries < 0:
            raise ExportError(f"OTLP max retries must be >= 0, got {max_retries}")
        self._target = _check_endpoint(endpoint)
        self._stats = OtlpStats()
        self._sender = _Sender(_open_channel(self._target, tls_ca_file, max_backoff), self._stats,
                               max_batch_bytes=max_batch_bytes, max_retries=max_retries,
                               initial_backoff=initial_backoff, max_backoff=max_backoff, rpc_timeout=rpc_timeout)
        self._handoff: Handoff[_Pending] = Handoff("otlp", self._sender, capacity=queue_size, batch=max_batch,
                                                   interval=batch_interval, close_timeout=close_timeout,
                                                   stats=self._stats)

    @property
    def stats(self) -> OtlpStats:
        """The live counters; see :class:`OtlpStats`."""
        return self._stats

    @property
    def pending(self) -> int:
        """Events emitted but not yet taken into a batch."""
        return self._handoff.pending

    def state(self) -> ExporterStatus:
        """For ``tetra status``: the endpoint, whether exports fail now, and the counters."""
        return ExporterStatus("otlp", self._target, "failing" if self._sender.failing else "ok",
                              asdict(self._stats) | {"pending": self.pending})

    def emit(self, event: Event) -> None:
        """Queue one event, or count it in ``dropped_queue_full``; never waits."""
        self._handoff.put(_Pending(event.line[:-1], time.time_ns()))

    def flush(self) -> None:
        """Ask the sender to ship everything pending now; does not wait for it."""
        self._handoff.flush()

    def close(self, timeout: float | None = None) -> None:
        """Send what is pending within ``timeout`` (default ``close_timeout``), then stop.

        Whatever is still pending when time runs out is counted in
        ``dropped_at_close``; an Export in flight is cancelled and its batch
        counted in ``dropped_send_failed``.
        """
        if self._handoff.closed:
            return
        self._handoff.close(timeout)
        self._sender.channel.close()
        self._log_losses()

    def _log_losses(self) -> None:
        s = self._stats
        if s.dropped_queue_full or s.dropped_send_failed or s.dropped_at_close:
            log.warning("OTLP export closed: %d sent, %d dropped (queue full %d, send failed %d, at close %d)",
                        s.sent, s.dropped_queue_full + s.dropped_send_failed + s.dropped_at_close,
                        s.dropped_queue_full, s.dropped_send_failed, s.dropped_at_close)


class _Sender:
    """The sink's side on its hand-off's thread: batches become Export calls, retried."""

    def __init__(self, channel: grpc.Channel, stats: OtlpStats, *, max_batch_bytes: int, max_retries: int,
                 initial_backoff: float, max_backoff: float, rpc_timeout: float) -> None:
        self.channel = channel
        self._stub = LogsServiceStub(channel)
        self._stats = stats
        self._max_batch_bytes = max_batch_bytes
        self._max_retries = max_retries
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._rpc_timeout = rpc_timeout
        self._abandon = threading.Event()  # close() timed out: stop retrying, stop sending
        self.failing = False  # in a streak of failed attempts (for logging once)

    def write(self, items: list[_Pending]) -> None:
        """Ship up to one hand-off batch, in requests of at most ``max_batch_bytes``."""
        start = 0
        while start < len(items):
            end, size = start + 1, len(items[start].line)
            while end < len(items) and size + len(items[end].line) <= self._max_batch_bytes:
                size += len(items[end].line)
                end += 1
            if self._abandon.is_set():
                self._stats.dropped_at_close += len(items) - start
                return
            self._ship(items[start:end])
            start = end

    def flush(self) -> None:
        """Nothing buffered here: every batch was shipped by write."""

    def close(self) -> None:
        """The channel is the sink's to close."""

    def abandon(self) -> int:
        """close() ran out of time: cancel an Export in flight (its batch is counted as failed)."""
        self._abandon.set()
        self.channel.close()
        return 0

    def _ship(self, batch: list[_Pending]) -> None:
        """Export one batch, retrying retryable failures; count the outcome."""
        request = build_request(batch)
        for attempt in range(self._max_retries + 1):
            if attempt and self._abandon.wait(self._backoff(attempt)):
                break
            retry = self._attempt(request, len(batch))
            if retry is None:
                return
            if not retry:
                break
        self._stats.dropped_send_failed += len(batch)
        log.error("OTLP export: dropped %d events the collector did not take", len(batch))

    def _attempt(self, request: ExportLogsServiceRequest, count: int) -> bool | None:
        """One Export call: None when done, else whether trying again may help."""
        try:
            response = self._stub.Export(request, timeout=self._rpc_timeout)
        except grpc.RpcError as err:
            return self._failed(err.code(), err.details())  # type: ignore[attr-defined]
        except ValueError as err:  # the channel was closed under us by close()
            return self._failed(grpc.StatusCode.CANCELLED, str(err))
        if self.failing:
            log.warning("OTLP export: the collector accepts events again")
            self.failing = False
        rejected = response.partial_success.rejected_log_records
        if rejected:
            log.error("OTLP export: the collector rejected %d events: %s",
                      rejected, response.partial_success.error_message)
            self._stats.dropped_send_failed += rejected
        self._stats.sent += count - rejected
        return None

    def _failed(self, code: grpc.StatusCode, details: str | None) -> bool:
        self._stats.send_errors += 1
        if not self.failing:
            log.warning("OTLP export failed (%s: %s)", code.name, details)
            self.failing = True
        return code in _RETRYABLE

    def _backoff(self, attempt: int) -> float:
        """Doubling delay, jittered so that a fleet of agents does not retry in step."""
        delay = min(self._initial_backoff * 2 ** (attempt - 1), self._max_backoff)
        return delay * random.uniform(0.8, 1.2)


# -- building the request --------------------------------------------------------


def build_request(batch: list[_Pending]) -> ExportLogsServiceRequest:
    """One ResourceLogs per node (``host.name``), records in emit order.

    Records are filled in place through ``add()``: with the upb backend that
    is about twice as fast as building each message from keyword arguments.
    """
    request = ExportLogsServiceRequest()
    by_node: dict[str, ScopeLogs] = {}
    for item in batch:
        event = orjson.loads(item.line)
        node = str(event.get("node_name", ""))
        scope_logs = by_node.get(node)
        if scope_logs is None:
            scope_logs = by_node[node] = _new_scope_logs(request, node)
        fill_record(scope_logs.log_records.add(), event, item.line, item.observed_ns)
    return request


def _new_scope_logs(request: ExportLogsServiceRequest, node: str) -> ScopeLogs:
    resource_logs = request.resource_logs.add()
    attrs = {"service.name": "tetra", "service.version": __version__}
    if node:
        attrs["host.name"] = node
    for key, value in attrs.items():
        _set_kv(resource_logs.resource.attributes.add(), key, value)
    return resource_logs.scope_logs.add(scope=InstrumentationScope(name="tetra", version=__version__))


def fill_record(record: LogRecord, event: Json, line: bytes, observed_ns: int) -> None:
    """Make ``record`` the LogRecord of one event; ``line`` is its JSON, which becomes the body."""
    kind = event_type(event)
    body = event.get(kind)
    body = body if isinstance(body, dict) else {}
    warn = str(body.get("action", "")) in _WARN_ACTIONS
    record.time_unix_nano = unix_nanos(event.get("time"))
    record.observed_time_unix_nano = observed_ns
    record.severity_number = SEVERITY_NUMBER_WARN if warn else SEVERITY_NUMBER_INFO
    record.severity_text = "WARN" if warn else "INFO"
    record.body.string_value = line.decode("utf-8")
    add = record.attributes.add
    for key, value in attributes(kind, body):
        _set_kv(add(), key, value)


def event_type(event: Json) -> str:
    """The event's one type key (``process_exec`` ...), or "unknown"."""
    return next((k for k, v in event.items() if isinstance(v, dict) and k not in _METADATA_KEYS), "unknown")


def attributes(kind: str, body: Json) -> Iterator[tuple[str, Any]]:
    """(name, value) pairs for the fields present in the event."""
    yield "event.type", kind
    process = body.get("process")
    process = process if isinstance(process, dict) else {}
    parent = body.get("parent")
    parent = parent if isinstance(parent, dict) else {}
    for name, path in _PROCESS_FIELDS:
        value = _lookup(process, path)
        if value not in (None, ""):
            yield name, value
    if "binary" in process:
        args = process.get("arguments")
        yield "process.command_line", f"{process['binary']} {args}" if args else process["binary"]
    parent_exec_id = process.get("parent_exec_id") or parent.get("exec_id")
    if parent_exec_id:
        yield "process.parent.exec_id", parent_exec_id
    if "pid" in parent:
        yield "process.parent_pid", parent["pid"]
    container_id = _container_id(process)
    if container_id:
        yield "container.id", container_id
    for name, key in _BODY_FIELDS:
        if body.get(key):
            yield name, body[key]


def _lookup(obj: Json, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)  # type: ignore[assignment]
    return obj


def _container_id(process: Json) -> str:
    """The full id from the pod ("containerd://<id>"), else Tetragon's 31-char ``docker``."""
    full = _lookup(process, ("pod", "container", "id"))
    if isinstance(full, str) and full:
        return full.rpartition("://")[2]
    return str(process.get("docker") or "")


def unix_nanos(text: Any) -> int:
    """Nanoseconds since the epoch of an RFC 3339 time; 0 (OTLP's "unknown") if unparsable.

    Written by hand because ``datetime`` keeps only microseconds and the
    events carry nanoseconds.
    """
    m = _RFC3339.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        return 0
    offset = "+00:00" if m[3] == "Z" else m[3]
    seconds = int(datetime.fromisoformat(m[1] + offset).timestamp())
    return seconds * 1_000_000_000 + int((m[2] or "0").ljust(9, "0"))


def _set_kv(kv: KeyValue, key: str, value: Any) -> None:
    kv.key = key
    if isinstance(value, bool):
        kv.value.bool_value = value
    elif isinstance(value, int) and -(2**63) <= value < 2**63:
        kv.value.int_value = value
    else:
        kv.value.string_value = str(value)


# -- configuration ---------------------------------------------------------------


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if value <= 0:
            raise ExportError(f"OTLP {name.replace('_', ' ')} must be positive, got {value}")


def _check_endpoint(endpoint: str) -> str:
    """``host:port`` as gRPC takes it (``[::1]:4317`` for IPv6); no URL scheme."""
    host, sep, port = endpoint.rpartition(":")
    if not sep or not host or "/" in endpoint or not port.isdigit() or not 0 < int(port) < 65536:
        raise ExportError(f"OTLP endpoint {endpoint!r}: expected host:port, such as otel-collector:4317")
    return endpoint


def _open_channel(target: str, tls_ca_file: str | None, max_backoff: float) -> grpc.Channel:
    backoff_ms = int(max_backoff * 1000)
    options = [
        ("grpc.max_reconnect_backoff_ms", backoff_ms),
        ("grpc.initial_reconnect_backoff_ms", min(200, backoff_ms)),
        ("grpc.min_reconnect_backoff_ms", min(200, backoff_ms)),
    ]
    if tls_ca_file is None:
        return grpc.insecure_channel(target, options=options)
    try:
        with open(tls_ca_file, "rb") as f:
            ca = f.read()
    except OSError as err:
        raise ExportError(f"OTLP TLS CA file {tls_ca_file}: {err.strerror}") from err
    return grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=ca), options=options)
