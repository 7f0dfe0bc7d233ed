"""What each exporter adds per event, measured on the agent's thread.

The agent hands every event to its sinks on the one thread that also drains the
kernel; whatever a sink costs there is time the reader cannot spend reading.
This feeds the same recorded-shape events (process_exec and process_kprobe, as
the agent builds them) through each sink, alternating the sinks over
repetitions, and prints the median cost per event against a sink that does
nothing, measured in the same run:

    .venv/bin/python benchmarks/exporters.py [--events 50000] [--repetitions 5]

OTLP and gRPC hand events to their own threads; the figure here is the
agent-thread share (queueing and, for gRPC, conversion for a subscriber).
"""

import argparse
import logging
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from tetra.export.sinks import ChainSink, CompactSink, JsonSink, Sink
from tetra.export.jsonfile import RotatingFile
from tetra.filters.chain import ExportChain
from tetra.export.event import Event

Json = dict[str, Any]


def _process(pid: int) -> Json:
    return {"exec_id": f"bm9kZToxMjM0NTY3ODk6{pid}", "pid": pid, "uid": 0, "cwd": "/root",
            "binary": "/usr/bin/curl", "arguments": "-s https://example.org --password secret",
            "flags": "execve clone", "start_time": "2026-11-26T10:35:19.820924472Z", "auid": 4294967295,
            "parent_exec_id": "bm9kZToxMjM0NTAwMDAwOjQwMA==", "tid": pid, "refcnt": 1}


def events(count: int) -> list[Json]:
    out: list[Json] = []
    for i in range(count):
        body = {"process": _process(1000 + i), "parent": _process(400)}
        if i % 2:
            body.update({"function_name": "__x64_sys_openat", "args": [{"int_arg": -100}, {"string_arg": "/etc/x"}],
                         "action": "KPROBE_ACTION_POST", "policy_name": "open-etc"})
            out.append({"process_kprobe": body, "node_name": "node", "time": "2026-11-26T10:35:19.820924472Z"})
        else:
            out.append({"process_exec": body, "node_name": "node", "time": "2026-11-26T10:35:19.820924472Z"})
    return out


class NullSink:
    def emit(self, event: Event) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def _json_file(tmp: Path) -> Sink:
    return JsonSink(RotatingFile(str(tmp / "events.log"), max_size_mb=64, max_backups=1))


def _compact(tmp: Path) -> Sink:
    return CompactSink(open(tmp / "compact.txt", "w"))  # noqa: SIM115 (closed by the sink's owner at exit)


def _chain(tmp: Path) -> Sink:
    chain = ExportChain.from_flags(node_name="node", denylist='{"binary_regex": ["^/usr/sbin/"]}',
                                   redaction_filters='{"redact": ["--password (\\\\S+)"]}')
    return ChainSink(chain, [NullSink()])


def _grpc(tmp: Path) -> Sink:
    from tetra.api.broadcast import Broadcaster

    broadcaster = Broadcaster(queue_size=10_000_000)
    broadcaster.subscribe("bench")  # one subscriber: every event is converted once and queued
    return broadcaster  # type: ignore[return-value]


def _otlp(tmp: Path) -> Sink:
    from tetra.export.otlp import OtlpSink

    return OtlpSink("127.0.0.1:9", queue_size=10_000_000, max_retries=0)  # nobody listens: queueing cost only


SINKS: dict[str, Callable[[Path], Sink]] = {
    "none": lambda tmp: NullSink(),
    "json-file": _json_file,
    "compact": _compact,
    "export-filters": _chain,
    "grpc-subscriber": _grpc,
    "otlp-queue": _otlp,
}


def measure(name: str, batch: list[Json]) -> float:
    """Seconds per event through a fresh sink of this kind (flush included)."""
    with tempfile.TemporaryDirectory() as tmp:
        sink = SINKS[name](Path(tmp))
        started = time.perf_counter()
        for event in batch:
            sink.emit(Event(event))
        sink.flush()
        elapsed = time.perf_counter() - started
        if hasattr(sink, "close") and name != "otlp-queue":
            sink.close()
        elif name == "otlp-queue":
            sink.close(timeout=0.1)  # type: ignore[call-arg]
    return elapsed / len(batch)


def main() -> None:
    logging.getLogger("tetra.export.otlp").setLevel(logging.CRITICAL)  # nobody listens, on purpose
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--repetitions", type=int, default=5)
    args = parser.parse_args()
    batch = events(args.events)
    samples: dict[str, list[float]] = {name: [] for name in SINKS}
    for _ in range(args.repetitions):
        order = list(SINKS)
        random.shuffle(order)
        for name in order:
            samples[name].append(measure(name, batch))
    base = statistics.median(samples["none"])
    table = Table(title=f"agent-thread cost per event, {args.events:,} events x {args.repetitions} (medians)")
    for column in ("sink", "µs/event", "min–max µs", "added µs", "events/s"):
        table.add_column(column, justify="right")
    for name, values in samples.items():
        med = statistics.median(values)
        table.add_row(name, f"{med * 1e6:.2f}", f"{min(values) * 1e6:.2f}–{max(values) * 1e6:.2f}",
                      f"{(med - base) * 1e6:+.2f}", f"{1 / med:,.0f}")
    Console().print(table)


if __name__ == "__main__":
    main()
