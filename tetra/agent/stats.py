"""Counters of what the pipeline saw, and of everything it could not deliver."""

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from tetra.status.model import LatencyHistogram


class ActionKey(NamedTuple):
    """What a policy event is counted by: its policy, Tetragon's mode word and its action.

    ``mode`` is "monitor" when the policy's monitoring mode withheld the action
    (the kernel's GEN_MONITOR flag, the event's ``policy_mode``), "enforce"
    otherwise: a monitored Sigkill and a real kill are different counts. It is
    the record's flag, not the policy's mode now, so an event still in the ring
    when the mode changes is counted as the kernel handled it."""

    policy: str
    mode: str
    action: str


# ActionKey.mode, indexed by whether the record has GEN_MONITOR (tetra/wire/constants.py)
MODE_WORDS = ("enforce", "monitor")


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
    # execs whose binary path the kernel keeps only in part (deeper than its walk or longer
    # than its binary map): matchBinaries compares only the part it has (docs/policy-limits.md)
    binary_truncated: int = 0
    compiled_lines: int = 0  # events whose line the compiled path made (tetra/_speed), in ``events`` too
    actions: Counter[ActionKey] = field(default_factory=Counter)  # policy events by policy, mode, action
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)

    def as_dict(self) -> dict[str, Any]:
        """The exit summary's form: the events by type, then every counter."""
        return {"events": dict(self.events), **self.counters()}

    def counters(self) -> dict[str, int]:
        """Every count of an event the pipeline could not deliver whole, and of the records it read."""
        return {
            "records": self.records,
            "decode_errors": self.decode_errors,
            "parent_unknown": self.parent_unknown,
            "exits_unknown": self.exits_unknown,
            "sink_errors": self.sink_errors,
            "process_unknown": self.process_unknown,
            "policy_unknown": self.policy_unknown,
            "binary_truncated": self.binary_truncated,
            "compiled_lines": self.compiled_lines,
        }
