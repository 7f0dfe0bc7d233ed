"""The event types, one table: Tetragon's names for them and what in tetra produces each.

An exported event is a dict with one key naming its type next to ``node_name``
and ``time``::

    {"process_exec": {...}, "node_name": "...", "time": "..."}
      └ key              name: PROCESS_EXEC (Tetragon's EventType enum, --event-types)
                         number: 1 (the enum's number = the GetEventsResponse field)

        key                 made from                           by
        process_exec        exec record (Op.EXEC)               process/events.py
        process_exit        exit record (Op.EXIT)               process/events.py
        process_kprobe      policy record (Op.GENERIC)          agent/policy_events.py
          process_tracepoint, process_uprobe, process_lsm, process_usdt: the
          same; which one is the hook's (HookPlan.event, from its policy section)
        process_throttle    throttle record (Op.THROTTLE) for   process/throttle.py
                            THROTTLE_START; the agent's check
                            of the kernel's counts for _STOP
        process_loader      loader record (Op.LOADER)           process/loader.py
        rate_limit_info     no record: the export rate limit     filters/ratelimit.py

Tetragon's other type (test) is known here so that
filters and renderings accept them; tetra produces none of them. Code that
names a type takes it from here (``PROCESS_EXEC.key``), never spells it.
tests/unit/test_wire_constants.py checks the table against tetra.proto.
"""

from dataclasses import dataclass, field

from tetra.wire.constants import Op


@dataclass(frozen=True)
class EventType:
    """One type: Tetragon's enum name and number, and where tetra's events of it come from."""

    name: str  # Tetragon's EventType name: PROCESS_EXEC
    number: int  # its number, also the GetEventsResponse oneof field number
    opcode: Op | None = None  # the record it is built from; None: made in user space, or never
    key: str = field(init=False)  # the event dict's key: process_exec

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", self.name.lower())


PROCESS_EXEC = EventType("PROCESS_EXEC", 1, Op.EXEC)
PROCESS_EXIT = EventType("PROCESS_EXIT", 5, Op.EXIT)
PROCESS_KPROBE = EventType("PROCESS_KPROBE", 9, Op.GENERIC)
PROCESS_TRACEPOINT = EventType("PROCESS_TRACEPOINT", 10, Op.GENERIC)
PROCESS_LOADER = EventType("PROCESS_LOADER", 11, Op.LOADER)
PROCESS_UPROBE = EventType("PROCESS_UPROBE", 12, Op.GENERIC)
PROCESS_THROTTLE = EventType("PROCESS_THROTTLE", 27, Op.THROTTLE)
PROCESS_LSM = EventType("PROCESS_LSM", 28, Op.GENERIC)
PROCESS_USDT = EventType("PROCESS_USDT", 29, Op.GENERIC)
TEST = EventType("TEST", 40000)
RATE_LIMIT_INFO = EventType("RATE_LIMIT_INFO", 40001)

EVENT_TYPES: tuple[EventType, ...] = (
    PROCESS_EXEC, PROCESS_EXIT, PROCESS_KPROBE, PROCESS_TRACEPOINT, PROCESS_LOADER, PROCESS_UPROBE,
    PROCESS_THROTTLE, PROCESS_LSM, PROCESS_USDT, TEST, RATE_LIMIT_INFO,
)
