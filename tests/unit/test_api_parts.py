"""The API's pieces without an agent: addresses, the command queue, the broadcaster, rates, status messages."""

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from tetra.api import convert
from tetra.api.address import AddressError, check_bindable, parse_address, prepare_socket_path
from tetra.api.broadcast import Broadcaster
from tetra.agent.commands import AgentUnavailable, CommandQueue, CommandTimeout
from tetra.api.service import STATUS_MESSAGE_BYTES, grpc_message_size, status_message
from tetra.status.rates import RateMeter
from tetra.filters.events import ExportFilter, parse_filter_list
from tetra.filters.fields import cli_field_filters
from tetra.export.event import Event


@pytest.mark.parametrize(("text", "target"), [
    ("unix:///var/run/tetra/tetra.sock", "unix:/var/run/tetra/tetra.sock"),
    ("unix:/tmp/t.sock", "unix:/tmp/t.sock"),
    ("localhost:54321", "localhost:54321"),
    ("[::1]:54321", "[::1]:54321"),  # gRPC reads "::1:54321" as host "::1:54321", port 443
    ("0.0.0.0:1", "0.0.0.0:1"),
])
def test_addresses(text: str, target: str) -> None:
    assert parse_address(text).target == target


@pytest.mark.parametrize("text", ["unix://relative.sock", "unix:///dir/", "unix:///a\0b", "localhost", ":54321",
                                  "host:0", "host:65536", "host:port", "host:\u0663", "unix:///" + "x" * 120,
                                  "::1:54321", "[::1:54321", "[localhost]:54321", "local host:54321"])
def test_bad_addresses(text: str) -> None:
    with pytest.raises(AddressError):
        parse_address(text)


def test_socket_directory_is_created_private(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "tetra.sock"
    prepare_socket_path(path)
    assert (path.parent.stat().st_mode & 0o777) == 0o700


def test_stale_socket_is_removed_and_live_one_refused(tmp_path: Path) -> None:
    path = tmp_path / "tetra.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(1)
    with pytest.raises(AddressError, match="another agent is serving there"):
        prepare_socket_path(path)
    server.close()  # the file stays: stale
    prepare_socket_path(path)
    assert not path.exists()


def test_not_a_socket_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tetra.sock"
    path.write_text("")
    with pytest.raises(AddressError, match="exists and is not a socket"):
        prepare_socket_path(path)
    os.chmod(tmp_path, 0o777)
    with pytest.raises(AddressError, match="writable by others"):
        prepare_socket_path(tmp_path / "other.sock")


def test_a_path_under_a_file_is_refused_in_a_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(AddressError) as refused:
        prepare_socket_path(tmp_path / "file" / "sub" / "tetra.sock")
    assert str(refused.value) == (f"cannot serve at {tmp_path}/file/sub/tetra.sock: cannot create "
                                  f"{tmp_path}/file/sub: Not a directory")


def test_addresses_are_bound_once_at_start(tmp_path: Path) -> None:
    path = tmp_path / "tetra.sock"
    check_bindable(parse_address(f"unix://{path}"))
    assert not path.exists()  # the probe leaves nothing behind
    (tmp_path / "ro").mkdir(mode=0o500)
    if os.geteuid() != 0:  # root writes anyway
        with pytest.raises(AddressError, match=f"^cannot serve at {tmp_path}/ro/x.sock: Permission denied$"):
            check_bindable(parse_address(f"unix://{tmp_path}/ro/x.sock"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(AddressError, match=f"^cannot serve at {address}: Address already in use$"):
            check_bindable(parse_address(address))
    check_bindable(parse_address(address))  # free again
    with pytest.raises(AddressError, match="^cannot serve at 192.0.2.1:54321: Cannot assign requested address$"):
        check_bindable(parse_address("192.0.2.1:54321"))  # TEST-NET-1: not this machine's
    with pytest.raises(AddressError, match="^cannot serve at nohost.invalid:54321: nohost.invalid: "):
        check_bindable(parse_address("nohost.invalid:54321"))


def test_commands_run_on_the_draining_thread() -> None:
    commands = CommandQueue()
    ran_on: list[str] = []

    def agent_loop() -> None:
        for _ in range(50):
            commands.run_pending()
            time.sleep(0.01)

    loop = threading.Thread(target=agent_loop, name="agent")
    loop.start()
    assert commands.call(lambda: ran_on.append(threading.current_thread().name) or 42, timeout=5) == 42
    with pytest.raises(ZeroDivisionError):
        commands.call(lambda: 1 // 0, timeout=5)
    loop.join()
    assert ran_on == ["agent"]


def test_a_command_its_caller_gave_up_on_never_runs() -> None:
    commands = CommandQueue()
    ran: list[int] = []
    with pytest.raises(CommandTimeout):
        commands.call(lambda: ran.append(1), timeout=0.05)
    commands.run_pending()
    assert ran == []


def test_closing_fails_waiting_callers_and_refuses_new_ones() -> None:
    commands = CommandQueue()
    errors: list[Exception] = []

    def caller() -> None:
        try:
            commands.call(lambda: None, timeout=5)
        except AgentUnavailable as err:
            errors.append(err)

    thread = threading.Thread(target=caller)
    thread.start()
    time.sleep(0.1)
    commands.close()
    thread.join(5)
    assert [str(e) for e in errors] == ["the agent is shutting down"]
    with pytest.raises(AgentUnavailable):
        commands.call(lambda: None, timeout=1)


def _event(binary: str, pid: int = 1) -> dict:
    return {"process_exec": {"process": {"pid": pid, "binary": binary}}, "node_name": "n",
            "time": "2026-11-26T10:00:00Z"}


def test_full_queues_drop_for_their_subscriber_only(monkeypatch: pytest.MonkeyPatch) -> None:
    broadcaster = Broadcaster(queue_size=2)
    slow = broadcaster.subscribe("slow")
    curl = broadcaster.subscribe("curl", events=ExportFilter(parse_filter_list('{"binary_regex": ["curl"]}', "t"), []))
    for i in range(5):
        broadcaster.emit(Event(_event("/usr/bin/curl" if i % 2 else "/bin/true", pid=i)))
    assert (slow.dropped, curl.dropped, broadcaster.dropped) == (3, 0, 3)
    assert [curl.queue.get_nowait().event["process_exec"]["process"]["pid"] for _ in range(2)] == [1, 3]

    conversions: list[dict] = []
    real = convert.to_bytes
    monkeypatch.setattr("tetra.api.broadcast.to_bytes", lambda e, *wire: conversions.append(e) or real(e, *wire))
    envelope = slow.queue.get_nowait()
    other = broadcaster.subscribe("other")
    assert broadcaster.encoded(slow, envelope) == broadcaster.encoded(other, envelope) == real(envelope.event)
    assert len(conversions) == 1  # once per event, whoever sends it first


def test_field_filtered_subscribers_get_their_own_copy() -> None:
    broadcaster = Broadcaster()
    sub = broadcaster.subscribe("f", fields=cli_field_filters(["process.binary"], []))
    broadcaster.emit(Event(_event("/bin/true", pid=9)))
    data = broadcaster.encoded(sub, sub.queue.get_nowait())
    assert data is not None
    assert convert.to_dict(convert.tg_events.GetEventsResponse.FromString(data))["process_exec"] == {
        "process": {"binary": "/bin/true"}}


def test_cluster_name_goes_to_grpc_subscribers_as_tetragons_field() -> None:
    """--cluster-name: GetEventsResponse.cluster_name (the exporters get it from the ChainSink)."""
    broadcaster = Broadcaster(cluster_name="prod")
    sub = broadcaster.subscribe("c")
    original = _event("/bin/true", pid=9)
    broadcaster.emit(Event(original))
    data = broadcaster.encoded(sub, sub.queue.get_nowait())
    assert data is not None and convert.tg_events.GetEventsResponse.FromString(data).cluster_name == "prod"
    assert convert.to_dict(convert.tg_events.GetEventsResponse.FromString(data)) == {**original, "cluster_name": "prod"}
    assert "cluster_name" not in original  # the event other sinks share is not changed


def test_an_event_that_does_not_convert_is_counted_once() -> None:
    broadcaster = Broadcaster()
    first, second = broadcaster.subscribe("a"), broadcaster.subscribe("b")
    broadcaster.emit(Event({"process_exec": {"process": {"no_such_field": 1}}}))
    envelope = first.queue.get_nowait()
    assert broadcaster.encoded(first, envelope) is None and broadcaster.encoded(second, envelope) is None
    assert broadcaster.convert_errors == 1


def test_no_subscriber_costs_nothing() -> None:
    broadcaster = Broadcaster()
    broadcaster.emit(Event({"not": "even an event"}))  # not looked at
    assert broadcaster.dropped == 0


def test_rates_over_the_window() -> None:
    meter = RateMeter(window=10)
    meter.sample(0.0, {"process_exec": 0})
    meter.sample(1.0, {"process_exec": 50})
    assert meter.rates(2.0, {"process_exec": 100}) == {"process_exec": 50.0}
    for t in range(2, 30):
        meter.sample(float(t), {"process_exec": 100})
    assert meter.rates(30.0, {"process_exec": 100}) == {"process_exec": 0.0}


def test_status_messages_stay_within_what_a_client_accepts() -> None:
    from tetra.policy.errors import PolicyErrors, PolicyIssue
    from tetra.policy.model import Location

    errors = PolicyErrors([PolicyIssue(Location("api", line, 1, "spec"), f"unknown key 'é{line}'")
                           for line in range(1, 3001)])
    message = status_message(errors)
    lines = message.split("\n")
    assert grpc_message_size(message) <= STATUS_MESSAGE_BYTES
    assert lines[0] == "api:1:1: spec: unknown key 'é1'" and lines[-2] == f"api:{len(lines) - 1}:1: spec: " \
        f"unknown key 'é{len(lines) - 1}'"
    assert lines[-1] == (f"… and {3001 - len(lines)} more lines: `tetra tracingpolicy validate` lists them all")
    assert status_message("one short line") == "one short line"
    single = status_message("é" * 100_000)
    assert grpc_message_size(single) <= STATUS_MESSAGE_BYTES and single.endswith("é…")
