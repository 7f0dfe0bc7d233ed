"""OtlpSink against a real OTLP/gRPC LogsService on 127.0.0.1: every event is
accounted for exactly once, delivered or counted, whatever the collector does."""

import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import SEVERITY_NUMBER_INFO, SEVERITY_NUMBER_WARN, LogRecord

from tetra.errors import ExportError
from tetra.export.otlp import OtlpSink, unix_nanos
from tetra.export.event import Event

NODE = "node-a"


class Receiver(logs_service_pb2_grpc.LogsServiceServicer):
    """A LogsService that keeps every request; optionally holds or refuses calls."""

    def __init__(self) -> None:
        self.requests: list[logs_service_pb2.ExportLogsServiceRequest] = []
        self.calls = 0
        self.called = threading.Event()
        self.gate: threading.Event | None = None  # when set: hold each call until the gate opens
        self.refuse: grpc.StatusCode | None = None
        self.reject = 0  # records to report as rejected (partial success)
        self._lock = threading.Lock()

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 (gRPC's name)
        with self._lock:
            self.calls += 1
        self.called.set()
        if self.gate is not None:
            self.gate.wait(10)
        if self.refuse is not None:
            context.abort(self.refuse, "refused by the test")
        with self._lock:
            self.requests.append(request)
        response = logs_service_pb2.ExportLogsServiceResponse()
        if self.reject:
            response.partial_success.rejected_log_records = self.reject
            response.partial_success.error_message = "rejected by the test"
        return response

    def records(self) -> list[LogRecord]:
        with self._lock:
            return [r for req in self.requests for rl in req.resource_logs
                    for sl in rl.scope_logs for r in sl.log_records]

    def pids(self) -> list[int]:
        return [json.loads(r.body.string_value)["process_exec"]["process"]["pid"] for r in self.records()]


def _serve(receiver: Receiver, port: int = 0, credentials: grpc.ServerCredentials | None = None,
           host: str = "127.0.0.1") -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(receiver, server)
    address = f"{host}:{port}"
    bound = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    server.start()
    return server, bound


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    rec = Receiver()
    server, port = _serve(rec)
    yield rec, f"127.0.0.1:{port}"
    server.stop(0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_until(check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _exec_event(pid: int, ns: int = 123456789) -> dict[str, Any]:
    return {
        "process_exec": {
            "process": {"exec_id": f"ZXhlYzp{pid}", "pid": pid, "uid": 0, "cwd": "/root",
                        "binary": "/usr/bin/curl", "arguments": f'https://example.org "a b" {pid}',
                        "flags": "execve clone", "start_time": "2026-11-26T10:35:19.820924472Z",
                        "auid": 4294967295, "parent_exec_id": "cGFyZW50", "tid": pid},
            "parent": {"exec_id": "cGFyZW50", "pid": 1, "binary": "/sbin/init"},
        },
        "node_name": NODE,
        "time": f"2026-11-26T10:35:19.{ns:09d}Z",
    }


def _kprobe_event() -> dict[str, Any]:
    pod = {"namespace": "default", "name": "xwing",
           "container": {"id": "containerd://" + "ab" * 32, "name": "spaceship",
                         "image": {"id": "sha256:1", "name": "docker.io/tgraf/netperf:latest"}}}
    return {
        "process_kprobe": {
            "process": {"exec_id": "a2lk", "pid": 77, "binary": "/bin/cat", "arguments": "/etc/shadow",
                        "pod": pod, "docker": ("ab" * 32)[:31]},
            "function_name": "security_file_open", "policy_name": "sensitive-files",
            "action": "KPROBE_ACTION_SIGKILL", "args": [{"file_arg": {"path": "/etc/shadow"}}],
        },
        "node_name": NODE,
        "time": "2026-11-26T10:35:20.000000001Z",
    }


def _attrs(record: LogRecord) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in record.attributes}


def _value(value: AnyValue) -> Any:
    return getattr(value, value.WhichOneof("value"))


def _sink(endpoint: str, **kw: Any) -> OtlpSink:
    kw.setdefault("initial_backoff", 0.05)
    kw.setdefault("max_backoff", 0.2)
    return OtlpSink(endpoint, **kw)


def test_every_event_arrives_once_with_body_time_and_attributes(receiver: tuple[Receiver, str]) -> None:
    rec, endpoint = receiver
    events = [_exec_event(1000 + i, ns=i) for i in range(1000)] + [_kprobe_event()]
    sink = _sink(endpoint)
    before = time.time_ns()
    for event in events:
        sink.emit(Event(event))
    sink.close()
    after = time.time_ns()

    records = rec.records()
    assert [json.loads(r.body.string_value) for r in records] == events
    assert sink.stats.sent == len(events)
    assert (sink.stats.dropped_queue_full, sink.stats.send_errors, sink.stats.dropped_send_failed,
            sink.stats.dropped_at_close) == (0, 0, 0, 0)
    resource = {kv.key: _value(kv.value) for kv in rec.requests[0].resource_logs[0].resource.attributes}
    assert resource["service.name"] == "tetra" and resource["host.name"] == NODE

    first = records[0]
    assert first.time_unix_nano == unix_nanos("2026-11-26T10:35:19Z")
    assert before <= first.observed_time_unix_nano <= after
    assert (first.severity_number, first.severity_text) == (SEVERITY_NUMBER_INFO, "INFO")
    assert _attrs(first) == {
        "event.type": "process_exec", "process.pid": 1000, "process.executable.path": "/usr/bin/curl",
        "process.command_line": '/usr/bin/curl https://example.org "a b" 1000',
        "process.working_directory": "/root", "process.user.id": 0, "process.exec_id": "ZXhlYzp1000",
        "process.parent.exec_id": "cGFyZW50", "process.parent_pid": 1,
    }

    kprobe = records[-1]
    assert kprobe.time_unix_nano == unix_nanos("2026-11-26T10:35:20Z") + 1
    assert (kprobe.severity_number, kprobe.severity_text) == (SEVERITY_NUMBER_WARN, "WARN")
    attrs = _attrs(kprobe)
    assert attrs["event.type"] == "process_kprobe"
    assert attrs["k8s.namespace.name"] == "default" and attrs["k8s.pod.name"] == "xwing"
    assert attrs["container.id"] == "ab" * 32 and attrs["container.name"] == "spaceship"
    assert attrs["container.image.name"] == "docker.io/tgraf/netperf:latest"
    assert attrs["tetra.policy_name"] == "sensitive-files"
    assert attrs["tetra.function_name"] == "security_file_open"
    assert attrs["tetra.action"] == "KPROBE_ACTION_SIGKILL"


def test_batches_hold_at_most_max_batch_records(receiver: tuple[Receiver, str]) -> None:
    rec, endpoint = receiver
    sink = _sink(endpoint, max_batch=100)
    for pid in range(1, 351):
        sink.emit(Event(_exec_event(pid)))
    sink.close()

    sizes = [len(req.resource_logs[0].scope_logs[0].log_records) for req in rec.requests]
    assert max(sizes) <= 100 and sum(sizes) == 350
    assert rec.pids() == list(range(1, 351))


def test_batches_are_capped_in_bytes(receiver: tuple[Receiver, str]) -> None:
    rec, endpoint = receiver
    sink = _sink(endpoint, max_batch_bytes=2000)
    for pid in range(1, 41):
        sink.emit(Event(_exec_event(pid)))
    sink.close()

    for req in rec.requests:
        bodies = [r.body.string_value.encode() for r in req.resource_logs[0].scope_logs[0].log_records]
        assert sum(map(len, bodies)) <= 2000
    assert len(rec.requests) > 1
    assert rec.pids() == list(range(1, 41))


def test_collector_down_at_first_then_up_gets_every_event_once() -> None:
    port = _free_port()
    sink = _sink(f"127.0.0.1:{port}", max_retries=100, batch_interval=60)
    for pid in range(1, 301):
        sink.emit(Event(_exec_event(pid)))
    sink.flush()
    _wait_until(lambda: sink.stats.send_errors >= 2)
    rec = Receiver()
    server, _ = _serve(rec, port)
    try:
        sink.close(timeout=10)
    finally:
        server.stop(0)

    assert rec.pids() == list(range(1, 301))
    assert sink.stats.sent == 300 and sink.stats.dropped_send_failed == 0
    state = sink.state()
    assert (state.name, state.target, state.state) == ("otlp", f"127.0.0.1:{port}", "ok")
    assert state.counters["sent"] == 300 and state.counters["send_errors"] >= 2


def test_events_given_up_while_down_are_counted_and_later_ones_delivered() -> None:
    port = _free_port()
    # Three retries span 0.35 s: longer than gRPC's reconnect backoff (capped
    # at max_backoff), so a batch after the collector is back does reconnect.
    sink = _sink(f"127.0.0.1:{port}", max_retries=3, batch_interval=60)
    for pid in range(1, 101):
        sink.emit(Event(_exec_event(pid)))
    sink.flush()
    _wait_until(lambda: sink.stats.dropped_send_failed == 100)
    assert sink.stats.send_errors == 4  # one batch, tried four times
    assert sink.state().state == "failing"
    rec = Receiver()
    server, _ = _serve(rec, port)
    try:
        for pid in range(101, 151):
            sink.emit(Event(_exec_event(pid)))
        sink.close(timeout=10)
    finally:
        server.stop(0)

    assert rec.pids() == list(range(101, 151))
    assert (sink.stats.sent, sink.stats.dropped_send_failed) == (50, 100)


def test_a_final_status_is_not_retried(receiver: tuple[Receiver, str]) -> None:
    rec, endpoint = receiver
    rec.refuse = grpc.StatusCode.INVALID_ARGUMENT
    sink = _sink(endpoint, max_retries=5)
    for pid in range(1, 11):
        sink.emit(Event(_exec_event(pid)))
    sink.close()

    assert rec.calls == 1
    assert (sink.stats.sent, sink.stats.send_errors, sink.stats.dropped_send_failed) == (0, 1, 10)


def test_partial_success_rejections_are_counted(receiver: tuple[Receiver, str]) -> None:
    rec, endpoint = receiver
    rec.reject = 3
    sink = _sink(endpoint)
    for pid in range(1, 21):
        sink.emit(Event(_exec_event(pid)))
    sink.close()

    assert (sink.stats.sent, sink.stats.dropped_send_failed) == (17, 3)


def test_queue_full_drops_are_counted_exactly(receiver: tuple[Receiver, str]) -> None:
    rec, endpoint = receiver
    rec.gate = threading.Event()
    sink = _sink(endpoint, queue_size=5)
    sink.emit(Event(_exec_event(1)))
    sink.flush()
    assert rec.called.wait(5)  # the sender is now held inside Export
    started = time.perf_counter()
    for pid in range(2, 22):
        sink.emit(Event(_exec_event(pid)))
    emit_s = time.perf_counter() - started
    assert (sink.pending, sink.stats.dropped_queue_full) == (5, 15)
    rec.gate.set()
    sink.close()

    assert emit_s < 0.5  # emit never waited for the held Export
    assert rec.pids() == [1, 2, 3, 4, 5, 6]
    assert (sink.stats.sent, sink.stats.dropped_queue_full) == (6, 15)


def test_close_gives_up_within_its_timeout_and_counts_the_rest() -> None:
    sink = _sink(f"127.0.0.1:{_free_port()}", max_retries=10_000, batch_interval=60)
    for pid in range(1, 701):
        sink.emit(Event(_exec_event(pid)))
    _wait_until(lambda: sink.stats.send_errors >= 1)  # the first 512 are being retried
    started = time.monotonic()
    sink.close(timeout=0.5)

    assert time.monotonic() - started < 3
    assert (sink.stats.sent, sink.stats.dropped_send_failed, sink.stats.dropped_at_close) == (0, 512, 188)
    with pytest.raises(ValueError):
        sink.emit(Event(_exec_event(701)))


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a test certificate")
def test_tls_with_a_ca_file(tmp_path: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    rec = Receiver()
    credentials = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
    server, port = _serve(rec, credentials=credentials, host="localhost")
    try:
        sink = _sink(f"localhost:{port}", tls_ca_file=str(cert))
        for pid in range(1, 6):
            sink.emit(Event(_exec_event(pid)))
        sink.close()
    finally:
        server.stop(0)

    assert rec.pids() == [1, 2, 3, 4, 5]


def test_many_events_all_arrive(receiver: tuple[Receiver, str]) -> None:
    rec, endpoint = receiver
    n = 20_000
    sink = _sink(endpoint, queue_size=n)
    started = time.perf_counter()
    for pid in range(n):
        sink.emit(Event(_exec_event(pid)))
    sink.close(timeout=60)
    elapsed = time.perf_counter() - started

    assert sink.stats.sent == n and len(rec.records()) == n
    print(f"OtlpSink: {n} events in {elapsed:.2f}s = {n / elapsed:.0f} events/s")


@pytest.mark.parametrize("text, expected", [
    ("1970-01-01T00:00:01.5Z", 1_500_000_000),
    ("1970-01-01T00:00:00.000000001Z", 1),
    ("1970-01-01T01:00:00+01:00", 0),
    ("2026-11-26T10:35:19Z", 1795689319 * 10**9),
    ("not a time", 0),
    (None, 0),
])
def test_unix_nanos(text: Any, expected: int) -> None:
    assert unix_nanos(text) == expected


@pytest.mark.parametrize("endpoint", ["http://collector:4317", "collector", "collector:", ":4317",
                                      "collector:99999"])
def test_bad_endpoints_are_refused(endpoint: str) -> None:
    with pytest.raises(ExportError, match="expected host:port"):
        OtlpSink(endpoint)


def test_missing_ca_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="CA file"):
        OtlpSink("127.0.0.1:4317", tls_ca_file=str(tmp_path / "missing.pem"))
