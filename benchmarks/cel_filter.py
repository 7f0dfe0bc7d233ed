"""Events per second through a GetEvents subscriber's CEL filter, against no filter, in one run.

A subscriber's filters run on the agent thread, in ``Broadcaster.emit``, for
every event while the stream is open; what they cost there is time the kernel
reader does not have. This feeds the replay corpus's events (tests/replay/corpus:
execs, exits, kprobes, tracepoints, uprobes, as the agent exported them) to a
Broadcaster with one subscriber, configured in turn with no filter, a
``binary_regex`` (the cheapest filter, for scale) and CEL expressions, the
configurations interleaved over repetitions; each round has a fresh queue with
room for all. It prints the median events/s of each and its ratio to no filter
(an event a filter rejects skips the queue, which no filter never does):

    .venv/bin/python benchmarks/cel_filter.py [--events 200000] [--repetitions 5]

No root needed. Results go to benchmarks/results/cel_filter-latest.json.
"""

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from common import host_info, utc_now, write_results
from tetra.api import tetragon_events
from tetra.api.broadcast import Broadcaster
from tetra.export.event import Event
from tetra.filters.events import ExportFilter, parse_filter_list

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "replay" / "corpus" / "corpus.json"
RESULTS = Path(__file__).resolve().parent / "results" / "cel_filter-latest.json"

CONFIGS: dict[str, dict[str, Any] | None] = {
    "no filter": None,
    "binary_regex": {"binary_regex": ["^/usr/bin/"]},
    "cel: pid > 1000u": {"cel_expression": ["process_exec.process.pid > 1000u"]},
    # the same, evaluated on execs only: on other types the pid is null, and ordering null is an error
    "cel: pid > 1000u, execs": {"event_set": ["PROCESS_EXEC"], "cel_expression": ["process_exec.process.pid > 1000u"]},
    "cel: 3 fields, &&": {"cel_expression": [
        "process_exec.process.uid == 0u && process_exec.process.binary.endsWith('/echo') "
        "&& process_exec.process.arguments != ''"]},
    "cel: matches + exists": {"cel_expression": [
        "process_exec.process.binary.matches('^/usr/s?bin/')",
        "process_kprobe.args.exists(a, a.file_arg.path.startsWith('/etc/'))"]},
}


def _filter(spec: dict[str, Any] | None) -> ExportFilter | None:
    if spec is None:
        return None
    return ExportFilter(parse_filter_list(orjson.dumps(spec).decode(), "bench", cel_schema=tetragon_events), [])


def one_round(events: list[Event], spec: dict[str, Any] | None) -> float:
    """Events per second of thread CPU through emit with one subscriber filtered by ``spec``."""
    broadcaster = Broadcaster(queue_size=len(events) + 1)
    sub = broadcaster.subscribe("bench", _filter(spec))
    start = time.thread_time()
    for event in events:
        broadcaster.emit(event)
    spent = time.thread_time() - start
    broadcaster.unsubscribe(sub)
    return len(events) / spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="events per round (the corpus, repeated)")
    parser.add_argument("--repetitions", type=int, default=5)
    args = parser.parse_args()
    corpus = [orjson.loads(line) for line in CORPUS.read_bytes().splitlines() if line.strip()]
    events = [Event(corpus[i % len(corpus)]) for i in range(args.events)]
    rates: dict[str, list[float]] = {name: [] for name in CONFIGS}
    for _ in range(args.repetitions):
        for name, spec in CONFIGS.items():  # interleaved: a noisy moment hits every configuration alike
            rates[name].append(one_round(events, spec))
    base = statistics.median(rates["no filter"])
    table = Table("subscriber filter", "events/s (median)", "µs/event", "vs no filter")
    rows = {}
    for name, values in rates.items():
        median = statistics.median(values)
        rows[name] = {"events_per_s": round(median), "us_per_event": round(1e6 / median, 2),
                      "ratio": round(median / base, 3), "all": [round(v) for v in values]}
        table.add_row(name, f"{median:,.0f}", f"{1e6 / median:.2f}", f"{median / base:.2f}")
    Console().print(table)
    doc = {"time": utc_now().isoformat(), "host": host_info(), "events": args.events,
           "repetitions": args.repetitions, "corpus": str(CORPUS.relative_to(CORPUS.parents[3])), "configs": rows}
    for path in write_results(doc, RESULTS, timestamped=True):
        print(f"results: {path}")


if __name__ == "__main__":
    main()
