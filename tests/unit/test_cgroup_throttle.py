"""--cgroup-rate in user space: throttle records become THROTTLE_START once per throttle, the kernel's
per-CPU counts become THROTTLE_STOP when no CPU throttles any more, and every drop stays counted.

Records are packed with the wire layout and go through the pipeline's ring entry (decode by opcode,
dispatch) as the kernel's do; the counts are what bcc reads from the map. The kernel's side (the
counting itself, the drops) runs for real in tests/e2e/test_cgroup_rate.py.
"""

from typing import Any

import pytest
from google.protobuf import json_format

from tetra.agent.pipeline import Pipeline
from tetra.api import tg_events
from tetra.api.convert import to_dict, to_message
from tetra.decode.process import CloneRecord, ExecRecord
from tetra.errors import DecodeError
from tetra.export.compact import render_compact
from tetra.export.event import Event
from tetra.node import BootClock
from tetra.process.cache import ProcessCache
from tetra.process.throttle import CgroupRate, RateSlot, current_rate, throttling
from tetra.wire import layouts
from tetra.wire.constants import THROTTLE_EXEC, THROTTLE_START, Op

Json = dict[str, Any]
SECOND = 10**9
RATE = CgroupRate(20, SECOND)


class ListSink:
    def __init__(self) -> None:
        self.events: list[Json] = []

    def emit(self, event: Event) -> None:
        self.events.append(event.data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def _record(cgroup_id: int, name: bytes, ktime: int = 5 * SECOND, pid: int = 42,
            flags: int = THROTTLE_START) -> bytes:
    """A throttle record as the kernel writes it (struct tetra_throttle, then the name)."""
    size = layouts.THROTTLE.size + len(name)
    return layouts.THROTTLE.codec.pack(Op.THROTTLE, flags, 0, size, ktime, pid, pid, cgroup_id, len(name), 0, 0) + name


def _pipeline(proc: dict[int, ExecRecord] | None = None) -> tuple[Pipeline, ListSink]:
    """A pipeline whose /proc holds ``proc``."""
    out = ListSink()
    cache = ProcessCache("node", BootClock(0))
    return Pipeline(cache, [out], BootClock(0), lookup=lambda pid: (proc or {}).get(pid)), out


def _exec(pid: int, ppid: int, binary: str, ktime: int) -> ExecRecord:
    return ExecRecord(ktime, pid, pid, ppid, 0, 0, 0, 7, binary, "/", [binary], "storm.scope")


def _slot(window: int = 0, curr: int = 0, prev: int = 0, throttled: int = 0, dropped: int = 0) -> RateSlot:
    return RateSlot(window, curr, prev, throttled, dropped)


def test_one_start_per_throttle_whatever_the_cpus_say() -> None:
    pipeline, out = _pipeline()
    pipeline.handle_raw(_record(7, b"storm.scope"))
    pipeline.handle_raw(_record(7, b"storm.scope", ktime=6 * SECOND))  # the other CPU: the same news
    assert out.events == [{"process_throttle": {"type": "THROTTLE_START", "cgroup": "storm.scope"},
                           "node_name": "node", "time": "1970-01-01T00:00:05Z"}]
    assert pipeline.throttles.throttled == {7: "storm.scope"}
    assert pipeline.stats.events["process_throttle"] == 1


def test_a_dropped_exec_retires_the_image_the_cache_held() -> None:
    """A clone went out, its exec was dropped: the cache must not go on showing the parent's image
    for the child; its next event reads /proc, which knows the new one."""
    pipeline, out = _pipeline(proc={43: _exec(43, 42, "/usr/bin/curl", 3 * SECOND)})
    pipeline.handle(_exec(42, 1, "/bin/bash", SECOND))
    pipeline.handle(CloneRecord(2 * SECOND, 43, 43, 42, 7))
    assert pipeline.cache.by_pid(43).binary == "/bin/bash"
    pipeline.handle_raw(_record(7, b"", ktime=3 * SECOND, pid=43, flags=THROTTLE_EXEC))  # not a START
    assert pipeline.cache.by_pid(43) is None
    assert [next(iter(e)) for e in out.events] == ["process_exec"]  # bash's; no throttle event
    pipeline.handle(CloneRecord(4 * SECOND, 44, 44, 43, 7))  # a child of it (or a policy event)
    assert pipeline.cache.by_pid(43).binary == "/usr/bin/curl"
    assert pipeline.cache.by_pid(44).binary == "/usr/bin/curl"


def test_stop_when_no_cpu_would_drop_the_next_event() -> None:
    pipeline, out = _pipeline()
    pipeline.handle_raw(_record(7, b"storm.scope"))
    now = 6 * SECOND
    busy = _slot(window=5 * SECOND, curr=300, throttled=5 * SECOND, dropped=280)
    idle = _slot()  # a CPU that never ran the cgroup
    stops, forget = pipeline.throttles.check({7: [busy, idle]}, RATE, now)
    assert stops == [] and forget == []
    assert pipeline.throttles.dropped == 280

    later = 8 * SECOND  # two intervals without events: the rate is 0 again
    stops, forget = pipeline.throttles.check({7: [busy, idle]}, RATE, later)
    for stop in stops:
        pipeline.emit("process_throttle", stop)
    assert out.events[-1] == {"process_throttle": {"type": "THROTTLE_STOP", "cgroup": "storm.scope"},
                              "node_name": "node", "time": "1970-01-01T00:00:08Z"}
    assert pipeline.throttles.throttled == {} and forget == []
    pipeline.handle_raw(_record(7, b"storm.scope", ktime=9 * SECOND))  # throttled again: a new START
    assert [e["process_throttle"]["type"] for e in out.events] == ["THROTTLE_START", "THROTTLE_STOP",
                                                                     "THROTTLE_START"]


def test_the_kernels_test_of_a_throttled_cpu() -> None:
    """A CPU drops until a whole interval passed since it began and its rate, with the next event, is
    back at the limit: cgroup_rate.h's test, read from its counts."""
    started = 10 * SECOND
    slot = _slot(window=started, curr=100, throttled=started)
    assert throttling(slot, RATE, started + SECOND // 2)  # too soon, and far over
    assert current_rate(slot, RATE, started + SECOND + SECOND // 2) == 50  # half of the previous window
    assert throttling(slot, RATE, started + SECOND + SECOND // 2)
    assert current_rate(slot, RATE, started + 2 * SECOND - SECOND // 10) == 10
    assert not throttling(slot, RATE, started + 2 * SECOND - SECOND // 10)
    calm = _slot(window=started, curr=19, throttled=started)
    assert throttling(calm, RATE, started + SECOND // 2)  # under the limit, but not an interval yet
    assert not throttling(calm, RATE, started + SECOND)
    assert not throttling(_slot(window=started, curr=500), RATE, started)  # counted, not throttling


def test_quiet_cgroups_are_forgotten_and_their_drops_kept() -> None:
    pipeline, _ = _pipeline()
    now = 200 * SECOND
    old = [_slot(window=100 * SECOND, curr=30, throttled=100 * SECOND, dropped=9), _slot(dropped=1)]
    recent = [_slot(window=now - SECOND, curr=3, dropped=2)]
    stops, forget = pipeline.throttles.check({3: old, 4: recent}, RATE, now)
    assert stops == [] and forget == [3]
    assert pipeline.throttles.dropped == 12
    pipeline.throttles.check({4: recent}, RATE, now + SECOND)  # 3 is gone from the map
    assert pipeline.throttles.dropped == 12


def test_a_throttled_cgroup_is_never_forgotten() -> None:
    pipeline, _ = _pipeline()
    pipeline.handle_raw(_record(3, b"x"))
    now = 500 * SECOND
    stops, forget = pipeline.throttles.check({3: [_slot(window=now - SECOND // 2, curr=90, throttled=now - 1)]},
                                             RATE, now)
    assert stops == [] and forget == []


def test_a_short_record_is_a_decode_error() -> None:
    pipeline, out = _pipeline()
    pipeline.handle_raw(_record(7, b"storm.scope")[:-3])
    assert pipeline.stats.decode_errors == 1 and out.events == []


def test_the_root_cgroup_has_no_name_and_protojson_leaves_it_out() -> None:
    pipeline, out = _pipeline()
    pipeline.handle_raw(_record(1, b""))
    assert out.events[0]["process_throttle"] == {"type": "THROTTLE_START"}


def test_the_api_carries_it_as_the_json_export_does() -> None:
    pipeline, out = _pipeline()
    pipeline.handle_raw(_record(7, b"storm.scope"))
    event = out.events[0]
    assert to_dict(to_message(event)) == event
    assert json_format.MessageToDict(json_format.ParseDict(event, tg_events.GetEventsResponse()),
                                     preserving_proto_field_name=True) == event


def test_compact_line() -> None:
    pipeline, out = _pipeline()
    pipeline.handle_raw(_record(7, b"storm.scope"))
    assert render_compact(out.events[0]) == "🧬 throttle START storm.scope"


def test_decoder_refuses_a_name_longer_than_the_record() -> None:
    from tetra.decode.process import decode_throttle

    raw = bytearray(_record(7, b"abc"))
    raw[layouts.THROTTLE.offsets()["cgroup_len"]] = 200
    with pytest.raises(DecodeError, match="throttle record"):
        decode_throttle(bytes(raw))
