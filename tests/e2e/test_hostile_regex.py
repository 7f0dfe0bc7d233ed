"""A pathological filter pattern meets a hostile command line, and the agent does not freeze.

``^(a+)+$`` backtracks exponentially in Python's ``re`` on 'a's followed by a
'!'; any unprivileged user can exec such a command line. Filters run on the
agent thread, so with ``re`` one ``/bin/true aaa...a!`` stopped every event,
the status and the health answer. With RE2 (tetra.regex) the same pattern, in
the export allowlist and in a gRPC subscriber's allowlist, costs microseconds:
the agent answers at once and exports the next exec within seconds.
"""

import subprocess
import threading
from typing import Any

import grpc
import pytest

from tests.e2e.harness import Event, RunningAgent
from tetra.api import pb, pb_grpc, tg_events, tg_sensors_grpc, tg_tetragon
from tetra.api.convert import to_dict

pytestmark = pytest.mark.usefixtures("root")

NOBODY = 65534
EVIL = "^(a+)+$"
HOSTILE = "a" * 40 + "!"


def _arguments(events: list[Event], kind: str = "process_exec") -> list[str]:
    return [e[kind]["process"].get("arguments", "") for e in events if kind in e]


class _Subscriber:
    """A GetEvents stream with ``EVIL`` in its allowlist, read on a thread of its own."""

    def __init__(self, stub: Any) -> None:
        self.events: list[Event] = []
        self.stream = stub.GetEvents(tg_events.GetEventsRequest(
            allow_list=[tg_events.Filter(arguments_regex=[EVIL])]))
        self.changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for response in self.stream:
                with self.changed:
                    self.events.append(to_dict(response))
                    self.changed.notify_all()
        except grpc.RpcError:
            pass  # cancelled at the end of the test

    def wait_for_exec(self, arguments: str, timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: arguments in _arguments(self.events), timeout)


@pytest.mark.timeout(300)
def test_pathological_pattern_and_hostile_process_do_not_freeze_the_agent(tmp_path: Any, root: None) -> None:
    running = RunningAgent(tmp_path, "--export-allowlist", f'{{"arguments_regex": ["{EVIL}"]}}').start()
    channel = grpc.insecure_channel(f"unix:{running.socket}")
    stub = tg_sensors_grpc.FineGuidanceSensorsStub(channel)
    subscriber = _Subscriber(stub)
    try:
        for _ in range(30):  # the stream subscribes asynchronously: exec until it sees one
            subprocess.run(["/bin/true", "aa"], check=True)
            if subscriber.wait_for_exec("aa", timeout=1):
                break
        else:
            raise AssertionError("the subscriber never saw /bin/true aa")

        subprocess.run(["/bin/true", HOSTILE], check=True, user=NOBODY)  # any user can exec this
        # the agent thread answers: GetStatus runs on it (it waited forever behind re's backtracking)
        status = pb_grpc.TetraStub(channel).GetStatus(pb.GetStatusRequest(), timeout=5)
        assert status.version
        subprocess.run(["/bin/true", "aaa"], check=True)
        assert subscriber.wait_for_exec("aaa", timeout=5)
        events = running.wait_for(lambda ev: "aaa" in _arguments(ev), timeout=5)
        health = stub.GetHealth(tg_tetragon.GetHealthStatusRequest(), timeout=5).health_status[0]
        assert health.status == tg_tetragon.HEALTH_STATUS_RUNNING, health.details

        assert HOSTILE not in _arguments(events) + _arguments(events, "process_exit")  # filtered out, as it should
        assert HOSTILE not in _arguments(subscriber.events)
        assert "aa" in _arguments(events)

        with pytest.raises(grpc.RpcError) as refused:  # a subscriber's bad pattern: one located line
            next(stub.GetEvents(tg_events.GetEventsRequest(allow_list=[tg_events.Filter(arguments_regex=["(a" * 3000])]),
                                timeout=10))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
        assert refused.value.details() == (  # type: ignore[attr-defined]
            f"allow_list:1: arguments_regex: '{'(a' * 20}...' (6000 characters) is not a valid regular expression "
            "(RE2 syntax): missing )")
        subscriber.stream.cancel()
        channel.close()
        summary = running.stop()
        assert summary["pipeline"]["events"]["process_exec"] >= 3
    finally:
        subscriber.stream.cancel()
        if running.proc is not None and running.proc.poll() is None:
            running.proc.kill()  # a frozen agent ignores SIGTERM: Python's re never lets the handler run
            running.proc.wait()
