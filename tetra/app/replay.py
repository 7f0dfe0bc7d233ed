"""Replaying a ring recording (tetra/observer/recording.py) through the agent's pipeline.

No root, no BPF: the pipeline, its decoders, the process cache, the export
filters and the exporters are built by the agent's own functions (tetra/app/build.py)
and fed the recorded records in their recorded order, with /proc answering what it
answered live. So ``tetra replay FILE --export-filename out.json`` writes the lines the
agent wrote when it made the recording, and tests of the event path run as any
user on records real kernels produced.
"""

import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from tetra.agent.config import AgentConfig
from tetra.agent.pipeline import Pipeline
from tetra.app.build import build_chain, build_exporters
from tetra.decode.process import ExecRecord
from tetra.export.sinks import ChainSink, Sink
from tetra.observer.recording import Recording, hook_from_json, process_from_json
from tetra.process.cache import ProcessCache

log = logging.getLogger(__name__)


def _no_stacks(_stack_id: int, _pid: int, _user: bool) -> list[str]:
    """Stack traces are not recorded: a replayed event has none."""
    return []


class ReplayObserver:
    """Feeds a recording's frames to a pipeline, as RingBufferObserver feeds the ring's records.

    It answers the pipeline's /proc lookups from the recording: the answers recorded before a
    record are the ones its handling asked for. A lookup the recording does not answer, or an
    answer not asked for, means the replay went another way than the live run (another cache
    size, say): counted in ``diverged``, and answered as a gone process.
    """

    def __init__(self, recording: Recording, pipeline: Pipeline) -> None:
        self.recording = recording
        self.pipeline = pipeline
        self.received = 0  # ring records handed to the pipeline
        self.diverged = 0
        self._answers: deque[tuple[int, ExecRecord | None]] = deque()
        pipeline.lookup = self._lookup

    def _lookup(self, pid: int) -> ExecRecord | None:
        if self._answers and self._answers[0][0] == pid:
            return self._answers.popleft()[1]
        self.diverged += 1
        return None

    def drain(self) -> None:
        """Deliver every frame of the recording: runs of ring records as the ring's batches go
        (through the compiled line path when there is one), the notes between them one by one."""
        run: list[bytes] = []
        for frame in self.recording.frames():
            if isinstance(frame, bytes):
                run.append(frame)
                continue
            self._deliver_records(run)
            run = []
            self._deliver(frame)
        self._deliver_records(run)

    def _deliver_records(self, records: list[bytes]) -> None:
        line_path = self.pipeline.line_path
        if records and (line_path is None or not line_path.feed(records, self._record)):
            for raw in records:
                self._record(raw)
        self.received += len(records)

    def _record(self, raw: bytes) -> None:
        """One ring record by the Python path, its /proc answers used or counted."""
        self.pipeline.handle_raw(raw)
        self._handled()

    def _deliver(self, frame: dict[str, Any]) -> None:
        """One note: a /proc seed or answer, a policy loaded or unloaded."""
        pipeline = self.pipeline
        if "seed" in frame:
            pipeline.handle(process_from_json(frame["seed"]))
            self._handled()
        elif "lookup" in frame:
            process = frame["process"]
            self._answers.append((frame["lookup"], process_from_json(process) if process is not None else None))
        elif "policy" in frame:
            pipeline.policies.add_hooks(frame["policy"], frame["name"], [hook_from_json(h) for h in frame["hooks"]],
                                        _no_stacks)
        elif "unload" in frame:
            pipeline.policies.remove(frame["unload"])
        else:
            log.warning("%s: a note of a kind this tetra does not know, skipped: %s", self.recording.path,
                        ", ".join(frame))

    def _handled(self) -> None:
        """Answers recorded for an input and not asked for by its replay."""
        self.diverged += len(self._answers)
        self._answers.clear()


@dataclass
class ReplaySummary:
    """What a replay did; printed as JSON when ``tetra replay`` ends."""

    pipeline: dict[str, Any] = field(default_factory=dict)
    received: int = 0
    diverged: int = 0
    cache_size: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Replay:
    """A recording fed to a pipeline built as ``Agent`` builds its own: the same exporters and
    export filters from the same flags, the node name and boot time of the recording."""

    def __init__(self, config: AgentConfig, path: str, extra_sinks: list[Sink] | None = None) -> None:
        """``extra_sinks``: after the export chain, unfiltered, where the agent has its gRPC broadcaster."""
        self.recording = Recording.open(path)
        header = self.recording.header
        self.clock = header.clock()
        node = config.node_name or header.node_name
        self.cache = ProcessCache(node, self.clock, max_size=config.process_cache_size)
        self.exporters = build_exporters(config)
        chain = ChainSink(build_chain(config, node), self.exporters, cluster_name=config.cluster_name)
        sinks: list[Sink] = [chain, *(extra_sinks or [])]
        self.pipeline = Pipeline(self.cache, sinks, self.clock)
        self.observer = ReplayObserver(self.recording, self.pipeline)

    def run(self) -> ReplaySummary:
        try:
            self.observer.drain()
            self.pipeline.flush()
        finally:
            self.pipeline.close()
            self.recording.close()
        if self.observer.diverged:
            log.warning("%s: the replay asked /proc other questions than the live run %d times "
                        "(other flags than the recording's?)", self.recording.path, self.observer.diverged)
        return ReplaySummary(self.pipeline.stats.as_dict(), self.observer.received, self.observer.diverged,
                             len(self.cache))
