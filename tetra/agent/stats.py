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

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": dict(self.events),
            "records": self.records,
            "decode_errors": self.decode_errors,
            "parent_unknown": self.parent_unknown,
            "exits_unknown": self.exits_unknown,
            "sink_errors": self.sink_errors,
        }
