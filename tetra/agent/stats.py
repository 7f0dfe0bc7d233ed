"""Counters of what the pipeline saw, and of everything it could not deliver."""

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class PipelineStats:
    """Per-stage counts; every place an event can go missing has a counter here."""

    events: Counter[str] = field(default_factory=Counter)  # emitted, by event type
    records: int = 0  # records read from the kernel
    decode_errors: int = 0  # records that did not match their layout
    parent_unknown: int = 0  # events sent without a parent (parent never seen)
    exits_unknown: int = 0  # exits of processes the cache did not know
    sink_errors: int = 0  # exceptions raised by a sink
    process_unknown: int = 0  # policy events of a process neither the cache nor /proc knew
    policy_unknown: int = 0  # policy events that arrived after their policy was removed

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": dict(self.events),
            "records": self.records,
            "decode_errors": self.decode_errors,
            "parent_unknown": self.parent_unknown,
            "exits_unknown": self.exits_unknown,
            "sink_errors": self.sink_errors,
            "process_unknown": self.process_unknown,
            "policy_unknown": self.policy_unknown,
        }
