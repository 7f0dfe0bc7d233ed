"""A JSON export file whose disk stalls: does the agent go on reading the kernel?

    .venv/bin/python benchmarks/disk_stall.py                       # 20,000 events/s, a 10 s stall
    .venv/bin/python benchmarks/disk_stall.py --rate 20000 --stall 10 --repetitions 3

The export file lives on its own ext4 file system (a sparse image on a loop
device). ``drivers/paced_open.c`` opens a file at ``--rate`` per second, every
open posted by an openat policy (Prefix: that file), for ``--before`` +
``--stall`` + ``--after`` seconds; ``fsfreeze`` freezes the file system for the
``--stall`` seconds in between, so every write(2) to the export file blocks in
the kernel until it thaws. Meanwhile ``tetra status`` is asked once a second
(5 s timeout): an agent whose reader thread waits on the disk does not answer.

Printed and written to ``results/disk_stall-latest.json`` per repetition: the
records the kernel sent and lost (its counters), the events the agent built,
the lines in the file, what the exporters dropped (summary and status), the
status answers during the stall and the slowest, whether an event made after
the thaw reached the file, and the agent's CPU per event. ``scenario`` is also
what tests/e2e/test_export_stall.py asserts on.
"""

import argparse
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tetra.api import pb
from tetra.api.client import Client, ClientError, ClientOptions
from tetra.api.plainjson import message_json

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (DRIVERS, TETRA, TETRA_READY_MARK, Daemon, ProcWatch, compile_driver, console,  # noqa: E402
                    file_size, frozen, host_info, loop_ext4, utc_now, wait_for_drain, write_results)

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "disk_stall-latest.json"
STATUS_TIMEOUT_S = 5.0
STATUS_EVERY_S = 1.0
MARKER = "disk-stall-after-thaw"

POLICY = """apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: bench-disk-stall
spec:
  kprobes:
  - call: "sys_openat"
    syscall: true
    args:
    - index: 0
      type: "int"
    - index: 1
      type: "string"
    selectors:
    - matchArgs:
      - index: 1
        operator: "Prefix"
        values: ["{target}"]
"""


@dataclass
class StallResult:
    """One run of the scenario; see the module docstring."""

    rate: int
    opens: int = 0
    achieved_per_s: float = 0.0
    kernel_sent: int = 0
    kernel_lost: int = 0
    kernel: dict[str, dict[str, int]] = field(default_factory=dict)  # per opcode: sent, lost
    events: int = 0  # events the agent built (summary pipeline.events)
    file_lines: int = 0
    export_lines_dropped: int = 0  # summary: every line an exporter dropped
    exporter_counters: dict[str, int] = field(default_factory=dict)  # the JSON exporter's, last status
    status_asked: int = 0
    status_answered: int = 0
    status_slowest_s: float = 0.0
    kernel_lost_during_stall: list[int] = field(default_factory=list)  # per status answer
    marker_found: bool = False
    cpu_s: float = 0.0
    cpu_us_per_event: float | None = None
    summary: dict[str, Any] = field(default_factory=dict)


def _status(address: str) -> tuple[float, dict[str, Any] | None]:
    """Seconds a GetStatus call (what `tetra status` asks) took, and its answer (None: no
    answer within the timeout). Made from this process: a `tetra status` process per call
    would take a Python start-up's CPU from the agent on a small machine."""
    started = time.monotonic()
    client = Client(ClientOptions(address, timeout=STATUS_TIMEOUT_S))
    try:
        response = client.call("GetStatus", pb.GetStatusRequest())
    except ClientError:
        return time.monotonic() - started, None
    finally:
        client.close()
    return time.monotonic() - started, message_json(response)


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1] if path.exists() else []


def scenario(workdir: Path, rate: int, before_s: int, stall_s: int, after_s: int) -> StallResult:
    """Run the agent through one disk stall under load; see the module docstring."""
    result = StallResult(rate)
    driver = compile_driver(DRIVERS / "paced_open.c", workdir)
    target = workdir / "target"
    target.write_text("x")
    policy = workdir / "policy.yaml"
    policy.write_text(POLICY.replace("{target}", str(target)))
    address = f"unix://{workdir}/api/tetra.sock"
    with loop_ext4(workdir) as mnt:
        export = mnt / "events.log"
        agent = Daemon([str(TETRA), "agent", "-o", "none", "--tracing-policy", str(policy),
                        "--export-filename", str(export), "--export-file-max-size-mb", "4096",
                        "--server-address", address], workdir / "agent.log", TETRA_READY_MARK)
        agent.start()
        try:
            watch = ProcWatch(agent.pid)
            cpu_before = watch.cpu_seconds()
            storm = subprocess.Popen([str(driver), str(rate), str(before_s + stall_s + after_s), str(target)],
                                     stdout=subprocess.PIPE, text=True)
            time.sleep(before_s)
            with frozen(mnt):
                thaw_at = time.monotonic() + stall_s
                while (left := thaw_at - time.monotonic()) > 1:
                    took, answer = _status(address)
                    result.status_asked += 1
                    result.status_slowest_s = max(result.status_slowest_s, round(took, 3))
                    if answer is not None:
                        result.status_answered += 1
                        result.kernel_lost_during_stall.append(answer["losses"]["kernel_lost"])
                    time.sleep(max(0.0, min(STATUS_EVERY_S, thaw_at - time.monotonic() - 1)))
                time.sleep(max(0.0, thaw_at - time.monotonic()))
            out, _ = storm.communicate(timeout=before_s + stall_s + after_s + 60)
            elapsed_ns, result.opens = (int(x) for x in out.split())
            result.achieved_per_s = round(result.opens / (elapsed_ns / 1e9))
            subprocess.run(["/usr/bin/true", MARKER], check=True)
            wait_for_drain(lambda: file_size(export), None)
            result.cpu_s = round(watch.cpu_seconds() - cpu_before, 2)
            watch.close()
            _took, answer = _status(address)
            if answer is not None:
                json_exporter = {e["name"]: e for e in answer["exporters"]}.get("json", {})
                result.exporter_counters = json_exporter.get("counters", {})
        finally:
            try:
                result.summary = summary = agent.stop()
            finally:
                agent.kill()  # only if stop() failed: leave nothing behind
        lines = _lines(export)
    result.kernel_sent = summary["kernel_sent"]
    result.kernel_lost = summary["kernel_lost"]
    result.kernel = summary["kernel"]
    result.events = sum(summary["pipeline"]["events"].values())
    result.file_lines = len(lines)
    result.export_lines_dropped = summary["export_lines_dropped"]
    result.marker_found = any(MARKER.encode() in line and b"process_exec" in line for line in lines[-2000:])
    if result.events:
        result.cpu_us_per_event = round(result.cpu_s / result.events * 1e6, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=20_000, help="opens (events) per second (default 20000)")
    parser.add_argument("--stall", type=int, default=10, help="seconds the file system is frozen (default 10)")
    parser.add_argument("--before", type=int, default=3, help="seconds of load before the stall (default 3)")
    parser.add_argument("--after", type=int, default=3, help="seconds of load after the thaw (default 3)")
    parser.add_argument("--repetitions", type=int, default=1)
    parser.add_argument("--json", type=Path, default=RESULTS, help=f"result file (default {RESULTS})")
    args = parser.parse_args()
    rows = []
    for i in range(args.repetitions):
        with tempfile.TemporaryDirectory(prefix="tetra-stall-") as tmp:
            row = scenario(Path(tmp), args.rate, args.before, args.stall, args.after)
        rows.append(row)
        console.print(f"[{i + 1}/{args.repetitions}] {row.achieved_per_s:,.0f} opens/s: kernel sent "
                      f"{row.kernel_sent:,} lost {row.kernel_lost:,}; events {row.events:,}, file lines "
                      f"{row.file_lines:,}, exporter dropped {row.export_lines_dropped:,} "
                      f"({row.exporter_counters}); status answered {row.status_answered}/{row.status_asked} "
                      f"(slowest {row.status_slowest_s}s); after thaw in file: {row.marker_found}; "
                      f"CPU {row.cpu_us_per_event} µs/event")
    doc = {"benchmark": "disk_stall", "started": utc_now().isoformat(), "host": host_info(),
           "params": {k: v for k, v in vars(args).items() if k != "json"},
           "rows": [{k: v for k, v in asdict(r).items() if k != "summary"} for r in rows]}
    for path in write_results(doc, args.json, timestamped=True):
        console.print(f"results: {path}")


if __name__ == "__main__":
    main()
