"""The agent thread's CPU per event, without the kernel: a ring recording replayed from memory.

    .venv/bin/python benchmarks/pipeline_cost.py REC [REC ...] [--repetitions 7] [--flags "-o none ..."]

A recording (``tetra agent --record-ring FILE``, e.g. during an open firehose or
an exec storm) is read into memory once, then fed ``--repetitions`` times to a
pipeline built as ``tetra replay`` builds it (the agent's exporters and export
filters from the same flags; the JSON file in a temp dir by default). The time
is the feeding thread's CPU (``time.thread_time``): decoding, the process
cache, building and encoding events, the sinks' agent-thread side; not the
writer threads, and not reading the ring (bcc), which this cannot see.
Unlike peers.py it needs no root and hardly depends on the machine's other
load, so it tells small changes to the per-event path apart; peers.py says what
they are worth against the kernel.

Prints the median µs per record and per exported event, and the minimum.
"""

import argparse
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tetra.agent.config import AgentConfig
from tetra.observer.recording import Frame, Recording
from tetra.app.replay import Replay


def _frames(path: str) -> list[Frame]:
    recording = Recording.open(path)
    try:
        return list(recording.frames())
    finally:
        recording.close()


class _InMemory:
    """Stands for the Recording a Replay opened: the same frames, already read."""

    def __init__(self, recording: Recording, frames: list[Frame]) -> None:
        self.path, self.header, self._frames = recording.path, recording.header, frames
        recording.close()

    def frames(self) -> Iterator[Frame]:
        return iter(self._frames)

    def close(self) -> None:
        pass


def one_run(path: str, frames: list[Frame], config: AgentConfig) -> tuple[float, int, int]:
    """(thread CPU seconds, records, events) of one replay of ``frames``."""
    run = Replay(config, path)
    run.recording = run.observer.recording = _InMemory(run.recording, frames)  # type: ignore[assignment]
    start = time.thread_time()
    run.observer.drain()
    run.pipeline.flush()
    spent = time.thread_time() - start
    run.pipeline.close()
    return spent, run.observer.received, sum(run.pipeline.stats.events.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recordings", nargs="+")
    parser.add_argument("--repetitions", type=int, default=7)
    parser.add_argument("--stdout", choices=["none", "json", "compact"], default="none")
    parser.add_argument("--no-file", action="store_true", help="no JSON export file")
    args = parser.parse_args()
    loaded = {path: _frames(path) for path in args.recordings}
    with tempfile.TemporaryDirectory(prefix="tetra-pipeline-cost-") as tmp:
        out = Path(tmp) / "events.json"
        config = AgentConfig(stdout=args.stdout, server_addresses=(),
                             export_filename=None if args.no_file else str(out))
        for path, frames in loaded.items():
            runs = []
            for _ in range(args.repetitions):
                runs.append(one_run(path, frames, config))
                for name in Path(tmp).iterdir():
                    name.unlink()
            records, events = runs[0][1], runs[0][2]
            per_record = [cpu / records * 1e6 for cpu, _, _ in runs]
            per_event = [cpu / events * 1e6 for cpu, _, _ in runs]
            print(f"{path}: {records} records, {events} events, {args.repetitions} runs: "
                  f"{statistics.median(per_record):.2f} us/record (min {min(per_record):.2f}), "
                  f"{statistics.median(per_event):.2f} us/event (min {min(per_event):.2f})")


if __name__ == "__main__":
    main()
