"""A plain bcc tracer: the peer that benchmarks/peers.py measures tetra against.

    plain_tracer.bpf.c                    this process
    exec / openat / connect  ──ring──>   callback: bcc's ctypes view -> dict -> orjson line
    tracepoints, fixed records  buffer    -> buffered file, flushed after every poll

What shared/BENCHMARKS.md calls "plain bcc tracer, ring buffer, orjson lines to
file": no filtering, no process cache, no enrichment; the least a tracer can do
and still write every event it receives. The callback returns 0 (None would
cost bcc an exception per event, shared/KERNEL.md).

With ``--bare`` the same tracepoints are attached with programs that return at
once and nothing is read: the cost of enabling the tracepoints themselves.

Protocol with the benchmark: "plain_tracer: ready" on stderr once attached; on
SIGTERM or SIGINT it detaches, drains what is left in the ring buffer, and prints
``{"summary": {"sent": .., "lost": .., "received": .., "written": ..}}`` on
stderr. Detaching before the final drain makes the accounting exact: nothing is
sent after the last read, so ``sent == received`` unless records went missing.

Usage: .venv/bin/python benchmarks/plain_tracer.py --output FILE [--ringbuf-pages N]
       .venv/bin/python benchmarks/plain_tracer.py --bare
"""

import ipaddress
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Any, BinaryIO

import click
import orjson

HERE = Path(__file__).resolve().parent
PROGRAM = HERE / "plain_tracer.bpf.c"
READY_MARK = "plain_tracer: ready"
TRACEPOINTS = ("sched:sched_process_exec", "syscalls:sys_enter_openat", "syscalls:sys_enter_connect")
KINDS = ("exec", "openat", "connect")  # index = enum plain_kind in plain_tracer.bpf.c
POLL_MS = 100
OUTPUT_BUFFER = 1 << 20


def sockaddr_text(raw: bytes, addrlen: int) -> str:
    """"ip:port" (IPv6 in brackets) from the first bytes of a struct sockaddr."""
    family = int.from_bytes(raw[0:2], "little")
    port = int.from_bytes(raw[2:4], "big")
    if family == socket.AF_INET and addrlen >= 8:
        return f"{ipaddress.IPv4Address(raw[4:8])}:{port}"
    if family == socket.AF_INET6 and addrlen >= 24:
        return f"[{ipaddress.IPv6Address(raw[8:24])}]:{port}"
    return f"family {family}"


class Tracer:
    """The loaded program, the output file and the counts the summary reports."""

    def __init__(self, output: BinaryIO | None, ringbuf_pages: int, bare: bool) -> None:
        from bcc import BPF  # Debian's python3-bpfcc; imported late so --help works anywhere

        cflags = [f"-DPLAIN_RINGBUF_PAGES={ringbuf_pages}"] + (["-DPLAIN_BARE"] if bare else [])
        self.bpf = BPF(text=PROGRAM.read_text(), cflags=cflags)
        self.output = output
        self.received = 0
        self.written = 0
        if output is not None:
            events = self.bpf["events"]
            self._callback = self._make_callback(events, output)  # bcc holds it weakly
            events.open_ring_buffer(self._callback)

    def _make_callback(self, events: Any, output: BinaryIO) -> Any:
        dumps, write = orjson.dumps, output.write

        def callback(_ctx: object, data: int, _size: int) -> int:
            self.received += 1
            e = events.event(data)
            kind = KINDS[e.kind]
            record: dict[str, Any] = {"time_ns": e.ktime_ns, "event": kind, "pid": e.pid, "tid": e.tid,
                                      "comm": e.comm.decode(errors="replace")}
            if kind == "connect":
                record["fd"] = e.arg
                record["address"] = sockaddr_text(bytes(e.addr), e.addrlen)
            else:
                record["path"] = e.path.decode(errors="replace")
                if kind == "openat":
                    record["flags"] = e.arg
            write(dumps(record) + b"\n")
            self.written += 1
            return 0

        return callback

    def run(self, stop: threading.Event) -> dict[str, int]:
        print(READY_MARK, file=sys.stderr, flush=True)
        while not stop.is_set():
            if self.output is None:
                stop.wait(POLL_MS / 1000)
                continue
            self.bpf.ring_buffer_poll(POLL_MS)
            self.output.flush()
        for tracepoint in TRACEPOINTS:
            self.bpf.detach_tracepoint(tracepoint)
        summary = {"sent": 0, "lost": 0, "received": 0, "written": 0}
        if self.output is not None:
            self.bpf.ring_buffer_consume()
            self.output.flush()
            counts = self.bpf["counts"]
            summary.update(sent=sum(int(v) for v in counts.getvalue(counts.Key(0))),
                           lost=sum(int(v) for v in counts.getvalue(counts.Key(1))),
                           received=self.received, written=self.written)
        self.bpf.cleanup()
        return summary


@click.command()
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              help="JSON lines file (required unless --bare).")
@click.option("--ringbuf-pages", type=click.IntRange(min=1), default=2048, show_default=True,
              help="Ring buffer size in pages (tetra's default, for a fair comparison).")
@click.option("--bare", is_flag=True, help="Attach programs that return at once; read nothing.")
def main(output: Path | None, ringbuf_pages: int, bare: bool) -> None:
    """Trace exec, openat and connect to a JSON lines file; summary on stderr at SIGTERM."""
    if not bare and output is None:
        raise click.UsageError("--output is required unless --bare is given")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    out = None if bare else output.open("wb", buffering=OUTPUT_BUFFER)  # type: ignore[union-attr]
    try:
        summary = Tracer(out, ringbuf_pages, bare).run(stop)
    finally:
        if out is not None:
            out.close()
    sys.stderr.buffer.write(orjson.dumps({"summary": summary}) + b"\n")


if __name__ == "__main__":
    main()
