"""``cluster_name`` on exported events (--cluster-name), where Tetragon has it: a top-level field of
GetEventsResponse after ``node_name`` and ``time``, absent when no name is set.

A wrapper rather than a field of every event: with the flag unset (the common case) nothing
changes, not a byte of the line nor a cycle of the pipeline's hot path; with it set, the line is
the inner event's with the field spliced in before its closing brace (the inner line is made
once, as without the flag), and the dict a copy with the field added, each made only when asked.
"""

from tetra.export.encode import fragment
from tetra.export.event import Event, Json


class ClusterNamed(Event):
    """``inner`` with ``"cluster_name": <name>`` as its last top-level field."""

    __slots__ = ("inner", "name", "member")

    def __init__(self, inner: Event, name: str, member: bytes) -> None:
        """``member``: ``cluster_member(name)``, encoded once per agent rather than per event."""
        super().__init__()
        self.inner = inner
        self.name = name
        self.member = member

    def _build(self) -> Json:
        return {**self.inner.data, "cluster_name": self.name}

    def _encode(self) -> bytes:
        return self.inner.line[:-2] + self.member + b"}\n"  # every line ends in b"}\n"


def cluster_member(name: str) -> bytes:
    return b',"cluster_name":' + fragment(name)
