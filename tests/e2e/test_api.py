"""The gRPC API and its CLI end to end: a real agent, real gRPC, real kernel events.

One agent (module scope) serves on a socket of its own and loads a few
policies whose events cover the argument types tetra decodes; `tetra
getevents`, `tetra tracingpolicy ...`, `tetra status` and `tetra version` run
as subprocesses against it, as a user runs them. Bad inputs (no agent,
sockets the agent must refuse, oversized and garbage requests) and a
subscriber that never reads are tried against the same agent, which must
keep exporting every event all along.
"""

import os
import re
import signal
import socket
import stat
import subprocess
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import orjson
import pytest
from google.protobuf import json_format

from tests.e2e.harness import TETRA, Event, RunningAgent, tetra
from tests.unit.policy.hostile import merge_bomb
from tetra.api import tg_events, tg_sensors, tg_sensors_grpc, tg_tetragon
from tetra.api.convert import to_dict, to_message
from tetra.node import node_name

pytestmark = pytest.mark.usefixtures("root")

DRIVER = Path(__file__).resolve().parents[2] / "benchmarks" / "drivers" / "exec_storm.c"
STORM = 20_000
NOBODY = 65534

POLICIES = {
    # kprobes on syscalls: kprobes where the kernel has them, else the syscall tracepoints
    "api-open": """
        kprobes:
        - call: "sys_openat"
          syscall: true
          args:
          - index: 0
            type: int
          - index: 1
            type: "string"
            label: "path"
          - index: 2
            type: uint32
          selectors:
          - matchArgs:
            - index: 1
              operator: "Prefix"
              values: ["{root}/open/"]
            matchActions:
            - action: Post
              userStackTrace: true
        """,
    "api-read": """
        kprobes:
        - call: "sys_read"
          syscall: true
          return: true
          args:
          - index: 0
            type: "fd"
          - index: 1
            type: "char_buf"
            returnCopy: true
          - index: 2
            type: "size_t"
          returnArg:
            index: 0
            type: "long"
          selectors:
          - matchArgs:
            - index: 0
              operator: "Prefix"
              values: ["{root}/read/"]
        """,
    "api-connect": """
        kprobes:
        - call: "sys_connect"
          syscall: true
          args:
          - index: 0
            type: "int"
          - index: 1
            type: "sockaddr"
          selectors:
          - matchArgs:
            - index: 1
              operator: "SPort"
              values: ["{port}"]
        """,
    "api-sock": """
        tracepoints:
        - subsystem: "sock"
          event: "inet_sock_set_state"
          args:
          - index: 4
            type: "sock"
          - index: 6
            type: "int"
          selectors:
          - matchArgs:
            - index: 4
              operator: "DPort"
              values: ["{port}"]
        """,
}

KILL_POLICY = """\
apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: api-kill
spec:
  kprobes:
  - call: "sys_openat"
    syscall: true
    args:
    - index: 1
      type: "string"
    selectors:
    - matchArgs:
      - index: 1
        operator: "Equal"
        values: ["{target}"]
      matchActions:
      - action: Sigkill
  options:
  - name: policy-mode
    value: monitor
"""


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def root_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("api-root")
    for sub in ("open", "read"):
        (root / sub).mkdir()
    return root


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, root: None, root_dir: Path,
          listener: socket.socket) -> Iterator[RunningAgent]:
    policy_dir = tmp_path_factory.mktemp("api-policies")
    for name, spec in POLICIES.items():
        body = textwrap.dedent(spec).format(root=root_dir, port=listener.getsockname()[1])
        (policy_dir / f"{name}.yaml").write_text("apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\n"
                                                 f"metadata:\n  name: {name}\nspec:\n" + textwrap.indent(body, "  "))
    cache = tmp_path_factory.mktemp("api-policy-cache")
    cache.chmod(0o700)
    running = RunningAgent(tmp_path_factory.mktemp("api-agent"), "--tracing-policy-dir", str(policy_dir),
                           "--policy-cache-dir", str(cache)).start(180)
    yield running
    if running.proc and running.proc.poll() is None:
        running.stop()


@pytest.fixture(scope="module")
def storm_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("driver") / "exec_storm"
    subprocess.run(["gcc", "-O2", "-o", str(out), str(DRIVER)], check=True)
    return out


# -- helpers -------------------------------------------------------------------------------------


def status(agent: RunningAgent) -> dict[str, Any]:
    done = tetra(agent, "status", "-o", "json")
    assert done.returncode == 0, done.stderr.decode()
    return orjson.loads(done.stdout)


def subscriber_ids(agent: RunningAgent) -> list[int]:
    return [s["id"] for s in status(agent)["subscribers"]]


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


class Stream:
    """A `tetra getevents` subprocess against the agent, and the lines it printed so far."""

    def __init__(self, agent: RunningAgent, *args: str) -> None:
        self.proc = subprocess.Popen([*TETRA, "getevents", *args, "--server-address", agent.address],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: list[str] = []
        self.stderr = b""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.append(raw.decode().rstrip("\n"))

    def events(self) -> list[Event]:
        return [orjson.loads(line) for line in list(self.lines)]

    def wait_for(self, predicate: Callable[[list[str]], bool], timeout: float = 20) -> list[str]:
        wait_until(lambda: predicate(list(self.lines)) or self.proc.poll() is not None,
                   "getevents output", timeout)
        if not predicate(list(self.lines)):
            _, err = self.proc.communicate(timeout=10)
            raise AssertionError(f"getevents exited {self.proc.returncode}: {err.decode()}")
        return list(self.lines)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        _, self.stderr = self.proc.communicate(timeout=20)
        self._reader.join(10)


def subscribed(agent: RunningAgent, *streams: Stream, before: list[int]) -> None:
    """Wait until the agent has a subscriber for each new stream (events flow from then on)."""
    wait_until(lambda: len(set(subscriber_ids(agent)) - set(before)) >= len(streams), "the streams to subscribe")


def echo(token: str) -> int:
    proc = subprocess.run(["/usr/bin/echo", token], capture_output=True, check=True)
    return proc.returncode


def of_token(events: list[Event], kind: str, token: str) -> list[Event]:
    return [e for e in events if kind in e and e[kind].get("process", {}).get("arguments") == token]


# -- event streams ---------------------------------------------------------------------------


def test_json_stream_equals_the_export(agent: RunningAgent) -> None:
    before = subscriber_ids(agent)
    stream = Stream(agent, "-o", "json")
    try:
        subscribed(agent, stream, before=before)
        token = f"json-{uuid.uuid4()}"
        echo(token)
        stream.wait_for(lambda _: len(of_token(stream.events(), "process_exit", token)) == 1)
        exported = agent.wait_for(lambda ev: len(of_token(ev, "process_exit", token)) == 1)
        for kind in ("process_exec", "process_exit"):
            assert of_token(stream.events(), kind, token) == of_token(exported, kind, token)
        event = of_token(stream.events(), "process_exec", token)[0]
        assert event["process_exec"]["process"]["binary"] == "/usr/bin/echo"
        assert event["process_exec"]["parent"]["pid"] == os.getpid()
    finally:
        stream.stop()


def test_compact_stream_and_timestamps(agent: RunningAgent) -> None:
    before = subscriber_ids(agent)
    compact = Stream(agent, "-o", "compact", "--color", "never")
    stamped = Stream(agent, "-o", "compact", "--timestamps", "--process", "^/usr/bin/echo$")
    try:
        subscribed(agent, compact, stamped, before=before)
        token = f"compact-{uuid.uuid4()}"
        echo(token)
        node = node_name()
        expected = [f"🚀 process {node} /usr/bin/echo {token}", f"💥 exit    {node} /usr/bin/echo {token} 0"]
        lines = compact.wait_for(lambda lines: expected[1] in lines)
        assert [line for line in lines if token in line] == expected
        lines = stamped.wait_for(lambda lines: len(lines) >= 2)
        assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z .*", line) for line in lines), lines
        assert [line.split(" ", 1)[1] for line in lines if token in line] == expected
    finally:
        compact.stop()
        stamped.stop()


def test_every_client_filter(agent: RunningAgent, root_dir: Path) -> None:
    options = {
        "exits": ("-e", "PROCESS_EXIT"),
        "echo": ("--process", "^/usr/bin/echo$"),
        "policy": ("--policy-names", "api-open"),
        "host": ("-n", "default", "--host", "-e", "process_exec"),
        "pod": ("--pod", "."),
        "namespace": ("-n", "kube-system"),
        "include": ("-e", "PROCESS_EXEC", "--process", "^/usr/bin/echo$", "-f", "process.binary,process.arguments"),
        "exclude": ("-e", "PROCESS_EXEC", "--process", "^/usr/bin/echo$", "-F", "parent", "-F", "process.exec_id"),
    }
    before = subscriber_ids(agent)
    streams = {name: Stream(agent, *args) for name, args in options.items()}
    try:
        subscribed(agent, *streams.values(), before=before)
        token = f"filters-{uuid.uuid4()}"
        target = root_dir / "open" / token
        target.write_text("x")
        subprocess.run(["/usr/bin/cat", str(target)], check=True, capture_output=True)
        echo(token)
        streams["echo"].wait_for(lambda _: bool(of_token(streams["echo"].events(), "process_exit", token)))
        streams["policy"].wait_for(lambda _: any(e["process_kprobe"]["args"][1]["string_arg"] == str(target)
                                                 for e in streams["policy"].events()))
        for name in ("exits", "host", "include", "exclude"):
            streams[name].wait_for(lambda lines: any(token in line for line in lines))
        time.sleep(1)  # the streams that should stay empty had as long as the others
        events = {name: stream.events() for name, stream in streams.items()}
    finally:
        for stream in streams.values():
            stream.stop()
    assert all("process_exit" in e for e in events["exits"])
    assert of_token(events["exits"], "process_exit", token)
    assert all(next(iter(body for key, body in e.items() if key.startswith("process_")))["process"]["binary"]
               == "/usr/bin/echo" for e in events["echo"])
    assert {kind for e in events["echo"] for kind in e if kind.startswith("process_")} == {"process_exec",
                                                                                        "process_exit"}
    assert all(e["process_kprobe"]["policy_name"] == "api-open" for e in events["policy"])
    assert all("process_exec" in e for e in events["host"]) and of_token(events["host"], "process_exec", token)
    assert events["pod"] == [] and events["namespace"] == []
    included = of_token(events["include"], "process_exec", token)[0]
    assert included["process_exec"] == {"process": {"binary": "/usr/bin/echo", "arguments": token}}
    assert set(included) == {"process_exec", "node_name", "time"}
    excluded = of_token(events["exclude"], "process_exec", token)[0]["process_exec"]
    assert "parent" not in excluded and "exec_id" not in excluded["process"]
    assert excluded["process"]["binary"] == "/usr/bin/echo" and excluded["process"]["pid"] > 0



def test_cel_expressions_select_on_the_agent(agent: RunningAgent) -> None:
    """`--cel-expression` (repeatable, any may hold) goes to the agent, which evaluates it with the
    .proto's types (uid and pid are uint32: ``== 0u``). An expression that fails on an event (a label
    of a process in no pod) matches nothing and is counted in the status. Refused expressions (a uint
    compared with an int, a field Process lacks) are all named, and nothing streams."""
    yes, no, other = (f"cel-{name}-{uuid.uuid4()}" for name in ("yes", "no", "other"))
    before = subscriber_ids(agent)
    selected = Stream(agent, "--cel-expression",
                      f"process_exec.process.arguments == '{yes}' && process_exec.process.uid == 0u "
                      "&& process_exec.process.pid > 1u",
                      "--cel-expression", f"process_exit.process.arguments.matches('^{other}$')")
    failing = Stream(agent, "--cel-expression", 'process_exec.process.pod.pod_labels["app"] == "web"')
    try:
        subscribed(agent, selected, failing, before=before)
        new = set(subscriber_ids(agent)) - set(before)
        for token in (yes, no, other):
            echo(token)
        selected.wait_for(lambda _: bool(of_token(selected.events(), "process_exit", other)))
        state = status(agent)
        errors = sorted(s["cel_errors"] for s in state["subscribers"] if s["id"] in new)
        time.sleep(0.5)
        events = selected.events()
    finally:
        selected.stop()
        failing.stop()
    assert [(kind, e[kind]["process"]["arguments"]) for e in events for kind in e if kind.startswith("process_")] \
        == [("process_exec", yes), ("process_exit", other)]
    assert failing.lines == []
    # the failing stream: the three echos' execs at least; the other's expressions never failed
    assert errors[0] == 0 and errors[1] >= 3 and state["losses"]["cel_errors"] >= 3, errors
    refused = tetra(agent, "getevents", "--cel-expression", "process_exec.process.uid == 0",
                    "--cel-expression", "process_exec.process.bad_field_name == 'curl'")
    assert refused.returncode == 1 and b"Traceback" not in refused.stderr
    assert b"--cel-expression: \"process_exec.process.uid == 0\": 1:1: no matching overload for '_==_' " \
        b"applied to '(uint, int)'" in refused.stderr, refused.stderr
    assert b"--cel-expression: \"process_exec.process.bad_field_name == 'curl'\": 1:22: undefined field " \
        b"'bad_field_name' of tetragon.Process" in refused.stderr, refused.stderr

TETRAGON_LINES = [
    # the shape of Tetragon's own export: pod, container, labels, and keys tetra does not know
    {"process_exec": {"process": {
        "exec_id": "a3luZDoxMjM0NTY3ODk6NTI2OTk=", "pid": 52699, "uid": 0, "cwd": "/", "binary": "/usr/bin/curl",
        "arguments": "https://ebpf.io/applications/#tetragon", "flags": "execve rootcwd",
        "start_time": "2023-10-06T22:03:57.700327580Z", "auid": 4294967295,
        "pod": {"namespace": "default", "name": "xwing", "container": {
            "id": "containerd://551e161c47d8ff0eb665438a7bcd5b4e3ef5a297282b40a92b7c77d6bd168eb3",
            "name": "spaceship", "image": {"id": "docker.io/tgraf/netperf@sha256:8e86", "name": "netperf:latest"},
            "start_time": "2023-10-06T21:52:41Z", "pid": 49},
            "pod_labels": {"app.kubernetes.io/name": "xwing", "org": "alliance"}, "workload": "xwing"},
        "docker": "551e161c47d8ff0eb665438a7bcd5b4", "tid": 52699, "in_init_tree": False}},
        "node_name": "kind-control-plane", "time": "2023-10-06T22:03:57.700326678Z",
        "cluster_name": "kind", "node_labels": {"zone": "a"}},
    {"process_dns": {"process": {"binary": "/usr/bin/curl"}}, "node_name": "kind-control-plane"},
    {"process_exit": {"process": {"pid": 52699, "binary": "/usr/bin/curl",
                                  "arguments": "https://ebpf.io/applications/#tetragon",
                                  "pod": {"namespace": "default", "name": "xwing"}}, "status": 60},
     "node_name": "kind-control-plane", "time": "2023-10-06T22:03:58.1Z"},
]


def test_stdin_mode_reads_export_files(agent: RunningAgent, tmp_path: Path) -> None:
    token = f"stdin-{uuid.uuid4()}"
    echo(token)
    ours = agent.wait_for(lambda ev: len(of_token(ev, "process_exit", token)) == 1)
    lines = [orjson.dumps(e) for e in of_token(ours, "process_exec", token) + of_token(ours, "process_exit", token)]
    lines += [orjson.dumps(e) for e in TETRAGON_LINES] + [b"", b"not json at all", b"[1, 2]"]
    export = tmp_path / "mixed.log"
    export.write_bytes(b"\n".join(lines) + b"\n")

    def getevents(*args: str, pipe: bool = False) -> subprocess.CompletedProcess[bytes]:
        """No --server-address: with events on stdin, no agent is asked (none is at the default address)."""
        cmd = [*TETRA, "getevents", *args]
        if pipe:
            return subprocess.run(cmd, input=export.read_bytes(), capture_output=True, timeout=60)
        with export.open("rb") as stdin:
            return subprocess.run(cmd, stdin=stdin, capture_output=True, timeout=60)

    compact = getevents("-o", "compact")
    assert compact.returncode == 0, compact.stderr
    assert compact.stdout.decode().splitlines() == [
        f"🚀 process {node_name()} /usr/bin/echo {token}",
        f"💥 exit    {node_name()} /usr/bin/echo {token} 0",
        "🚀 process default/xwing /usr/bin/curl https://ebpf.io/applications/#tetragon",
        "💥 exit    default/xwing /usr/bin/curl https://ebpf.io/applications/#tetragon 60",
    ]
    assert compact.stderr.decode() == "tetra: 2 lines were not JSON events and were skipped\n"
    piped = getevents("-o", "json", "-e", "PROCESS_EXIT", pipe=True)
    assert [orjson.loads(line) for line in piped.stdout.splitlines()] == \
        [orjson.loads(lines[1]), TETRAGON_LINES[2]]
    pods = getevents("-o", "json", "--pod", "^xwing$", "-n", "default", "-f", "process.binary")
    assert [orjson.loads(line) for line in pods.stdout.splitlines()] == [
        {"process_exec": {"process": {"binary": "/usr/bin/curl"}}, "node_name": "kind-control-plane",
         "time": "2023-10-06T22:03:57.700326678Z", "cluster_name": "kind", "node_labels": {"zone": "a"}},
        {"process_exit": {"process": {"binary": "/usr/bin/curl"}}, "node_name": "kind-control-plane",
         "time": "2023-10-06T22:03:58.1Z"},
    ]
    unknown_types_kept = getevents("-o", "json")
    assert orjson.loads(unknown_types_kept.stdout.splitlines()[3]) == TETRAGON_LINES[1]


# -- tracing policies over the API --------------------------------------------------------------


def test_tracingpolicy_lifecycle(agent: RunningAgent, root_dir: Path, tmp_path: Path) -> None:
    target = root_dir / f"kill-{uuid.uuid4().hex[:8]}"
    target.write_text("ok")
    policy = tmp_path / "kill.yaml"
    policy.write_text(KILL_POLICY.format(target=target))

    def policy_state() -> tuple[str, str] | None:
        listed = tetra(agent, "tracingpolicy", "list", "-o", "json")
        assert listed.returncode == 0, listed.stderr.decode()
        found = [p for p in orjson.loads(listed.stdout)["policies"] if p["name"] == "api-kill"]
        return (found[0]["state"], found[0]["mode"]) if found else None

    def cat() -> int:
        return subprocess.run(["/usr/bin/cat", str(target)], capture_output=True).returncode

    def ok(*args: str) -> str:
        done = tetra(agent, "tracingpolicy", *args)
        assert done.returncode == 0, (args, done.stderr.decode())
        return done.stdout.decode()

    assert "added api-kill: enabled, monitor; hooks: __x64_sys_openat" in ok("add", str(policy))
    assert policy_state() == ("TP_STATE_ENABLED", "TP_MODE_MONITOR")
    assert cat() == 0  # monitor: reported, not killed
    events = agent.wait_for(lambda ev: any(e["process_kprobe"]["policy_name"] == "api-kill"
                                           for e in ev if "process_kprobe" in e))
    assert [e["process_kprobe"]["action"] for e in events if "process_kprobe" in e
            and e["process_kprobe"]["policy_name"] == "api-kill"][0] == "KPROBE_ACTION_SIGKILL"

    assert "enforce" in ok("set-mode", "api-kill", "enforce")
    assert policy_state() == ("TP_STATE_ENABLED", "TP_MODE_ENFORCE")
    assert cat() == -signal.SIGKILL

    assert "disabled api-kill: disabled, enforce" in ok("disable", "api-kill")
    assert policy_state() == ("TP_STATE_DISABLED", "TP_MODE_ENFORCE")
    assert cat() == 0  # its programs left the kernel

    assert "enabled api-kill: enabled, enforce" in ok("enable", "api-kill")
    assert cat() == -signal.SIGKILL  # loaded again, in the mode it had

    again = tetra(agent, "tracingpolicy", "add", str(policy))
    assert again.returncode == 1 and b"policy api-kill already exists" in again.stderr

    assert "deleted api-kill" in ok("delete", "api-kill")
    assert policy_state() is None
    assert cat() == 0

    for args, message in ((("delete", "api-kill"), b"tetra: no policy api-kill\n"),
                          (("enable", "nope"), b"tetra: no policy nope\n"),
                          (("set-mode", "nope", "monitor"), b"tetra: no policy nope\n")):
        done = tetra(agent, "tracingpolicy", *args)
        assert (done.returncode, done.stderr) == (1, message), args

    broken = tmp_path / "broken.yaml"
    broken.write_text(KILL_POLICY.format(target=target).replace('operator: "Equal"', 'operator: "Equalz"'))
    done = tetra(agent, "tracingpolicy", "add", str(broken))
    assert done.returncode == 1
    assert f"tetra: {broken}:15:19: ".encode() in done.stderr and b"Traceback" not in done.stderr


def test_add_mode_and_errors_named_after_the_file(agent: RunningAgent, root_dir: Path, tmp_path: Path) -> None:
    """`tp add -m enforce` on a file that says monitor enforces from the first call; what the agent refuses
    is located in the file, not in "api"."""
    target = root_dir / f"kill-{uuid.uuid4().hex[:8]}"
    target.write_text("ok")
    policy = tmp_path / "kill.yaml"
    policy.write_text(KILL_POLICY.format(target=target))
    assert "policy-mode" in policy.read_text() and "monitor" in policy.read_text()
    done = tetra(agent, "tp", "add", "-m", "enforce", str(policy))
    assert done.returncode == 0, done.stderr.decode()
    assert "added api-kill: enabled, enforce" in done.stdout.decode()
    assert subprocess.run(["/usr/bin/cat", str(target)], capture_output=True).returncode == -signal.SIGKILL
    assert tetra(agent, "tp", "delete", "api-kill").returncode == 0

    unplaceable = tmp_path / "no-tracepoint.yaml"
    unplaceable.write_text("apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: no-tp\nspec:\n"
                           "  tracepoints:\n  - subsystem: syscalls\n    event: sys_enter_no_such_call\n")
    done = tetra(agent, "tp", "add", "-m", "monitor", str(unplaceable))
    assert done.returncode == 1
    assert f"{unplaceable}:7:5: spec.tracepoints[0]: this kernel has no tracepoint".encode() in done.stderr, \
        done.stderr
    assert b"api:" not in done.stderr


# -- status and version ----------------------------------------------------------------------


def test_status_reports_counters_and_rates(agent: RunningAgent, root_dir: Path) -> None:
    time.sleep(1.5)  # the agent samples its counters every second: one sample before the burst
    for _ in range(30):
        subprocess.run(["/usr/bin/true"], check=True)
    state = status(agent)
    assert state["version"] and state["uptime_seconds"] > 0
    process = state["sensors"][0]
    assert process["name"] == "process"
    assert {h["hook"]: h["mechanism"] for h in process["hooks"]} == {
        "sched:sched_process_exec": "tracepoint", "sched_process_fork": "raw tracepoint",
        "sched:sched_process_exit": "tracepoint"}
    assert {s["name"] for s in state["sensors"][1:]} == {f"policy {name}" for name in POLICIES}
    events = {e["type"]: e for e in state["events"]}
    assert events["process_exec"]["total"] >= 30 and events["process_exec"]["rate"] > 0
    losses = state["losses"]
    assert {k["opcode"] for k in losses["kernel"]} == {"exec", "clone", "exit", "generic", "throttle", "loader"}
    assert all(k["lost"] == 0 for k in losses["kernel"]) and losses["kernel_lost"] == 0
    assert losses["ringbuf_received"] > 0 and losses["decode_errors"] == 0
    assert {"parent_unknown", "exits_unknown", "sink_errors", "process_unknown", "policy_unknown"} <= \
        set(losses["pipeline"])
    assert losses["convert_errors"] == 0 and losses["exporter_errors"] == 0
    assert state["process_cache"]["size"] > 0 and state["process_cache"]["capacity"] == 65536
    exporters = {e["name"]: e for e in state["exporters"]}
    assert exporters["json"]["target"] == str(agent.export) and exporters["json"]["state"] == "ok"
    assert exporters["json"]["counters"]["bytes_written"] > 0
    assert exporters["grpc"]["target"] == agent.address
    policies = {p["name"]: p for p in state["policies"]}
    assert set(policies) == set(POLICIES)
    assert all(p["state"] == "TP_STATE_ENABLED" for p in policies.values())
    assert policies["api-open"]["tetra_hooks"][0]["seen"] > 0
    text = tetra(agent, "status")
    assert text.returncode == 0 and b"process_exec" in text.stdout and b"kernel ring buffer: exec" in text.stdout


def test_version(agent: RunningAgent) -> None:
    done = tetra(agent, "version", "-s")
    assert done.returncode == 0
    assert done.stdout.decode().splitlines() == ["client 0.1.0", f"agent  0.1.0 ({agent.address})"]


# -- every event of the run goes through protobuf and back unchanged --------------------------


def test_real_events_round_trip_through_protobuf(agent: RunningAgent, root_dir: Path,
                                                 listener: socket.socket) -> None:
    (root_dir / "open" / "f").write_text("o")
    (root_dir / "read" / "f").write_bytes(b"\x00\x01binary\xff")
    subprocess.run(["/usr/bin/cat", str(root_dir / "open" / "f"), str(root_dir / "read" / "f")],
                   check=True, capture_output=True)
    with socket.create_connection(listener.getsockname()):
        pass
    subprocess.run(["/bin/sh", "-c", "exit 3"])
    subprocess.run(["/bin/sh", "-c", "kill -9 $$"])
    wanted = {"process_exec", "process_exit", "process_kprobe", "process_tracepoint"}
    arg_kinds = {"int_arg", "string_arg", "uint_arg", "file_arg", "bytes_arg", "size_arg", "long_arg",
                 "sockaddr_arg", "sock_arg"}

    def kinds(events: list[Event]) -> tuple[set[str], set[str]]:
        seen = {k for e in events for k in e if k.startswith("process_")}
        args = {k for e in events for body in e.values() if isinstance(body, dict)
                for a in body.get("args", []) + [body.get("return", {})] for k in a if k != "label"}
        return seen, args

    events = agent.wait_for(lambda ev: kinds(ev) >= (wanted, arg_kinds), timeout=30)
    assert any("user_stack_trace" in e.get("process_kprobe", {}) for e in events)
    for event in events:
        message = json_format.ParseDict(event, tg_events.GetEventsResponse(), ignore_unknown_fields=False)
        assert json_format.MessageToDict(message, preserving_proto_field_name=True) == event
        assert to_message(event) == message and to_dict(message) == event


# -- bad inputs -------------------------------------------------------------------------------


def test_clients_without_an_agent_say_so(tmp_path: Path) -> None:
    address = f"unix://{tmp_path}/none.sock"
    for command in (["getevents"], ["status"], ["version", "-s"], ["tracingpolicy", "list"]):
        done = subprocess.run([*TETRA, *command, "--server-address", address], stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=60)
        assert done.returncode == 1, command
        assert done.stderr.decode().endswith(f"no tetra agent at {address}: is `tetra agent` running?\n"), command
        assert b"Traceback" not in done.stderr
    mute = socket.socket(socket.AF_UNIX)  # listens, never speaks: the call must time out
    mute.bind(str(tmp_path / "mute.sock"))
    mute.listen(1)
    try:
        done = subprocess.run([*TETRA, "status", "--timeout", "1", "--server-address", f"unix://{tmp_path}/mute.sock"],
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    finally:
        mute.close()
    assert done.returncode == 1
    assert done.stderr.decode() == f"tetra: the agent at unix://{tmp_path}/mute.sock did not answer within 1s\n"


def test_socket_is_for_root_only(agent: RunningAgent, nobody: int) -> None:
    assert stat.S_IMODE(agent.socket.stat().st_mode) == 0o600
    assert stat.S_IMODE(agent.socket.parent.stat().st_mode) == 0o700
    done = subprocess.run([*TETRA, "status", "--server-address", agent.address], stdin=subprocess.DEVNULL,
                          capture_output=True, user=nobody, timeout=60)
    assert done.returncode == 1
    assert done.stderr.decode() == (f"tetra: permission denied on {agent.address}: the agent's socket is for "
                                    "root (try sudo)\n")


def _refused(tmp_path: Path, address: str, *args: str) -> str:
    """The agent's whole stderr when it refuses ``address``: one line, before any BPF loads."""
    done = subprocess.run([*TETRA, "agent", "-o", "none", "--server-address", address, *args],
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    assert done.returncode == 1, done.stderr.decode()
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_agent_refuses_sockets_it_cannot_trust(agent: RunningAgent, tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    not_socket = private / "file.sock"
    not_socket.write_text("")
    assert _refused(tmp_path, f"unix://{not_socket}") == \
        f"tetra: cannot serve at {not_socket}: it exists and is not a socket (remove it, or choose another " \
        "--server-address)"
    foreign = private / "foreign.sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(foreign))
    sock.close()
    os.chown(foreign, NOBODY, NOBODY)
    assert _refused(tmp_path, f"unix://{foreign}") == \
        f"tetra: cannot serve at {foreign}: the socket there belongs to uid {NOBODY}, not to this user " \
        "(remove it, or choose another --server-address)"
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    assert _refused(tmp_path, f"unix://{open_dir}/tetra.sock") == \
        f"tetra: cannot serve at {open_dir}/tetra.sock: {open_dir} is writable by others (mode 0777) without " \
        "the sticky bit"
    assert _refused(tmp_path, agent.address) == f"tetra: cannot serve at {agent.socket}: another agent is serving there"
    assert _refused(tmp_path, "localhost:99999") == \
        "tetra: 'localhost:99999': expected unix:///path/to/socket or host:port (e.g. localhost:54321)"


def test_agent_refuses_addresses_it_cannot_serve_at(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("")
    assert _refused(tmp_path, f"unix://{a_file}/sub/tetra.sock") == \
        f"tetra: cannot serve at {a_file}/sub/tetra.sock: cannot create {a_file}/sub: Not a directory"
    assert _refused(tmp_path, "unix:///proc/tetra-test.sock") == \
        "tetra: cannot serve at /proc/tetra-test.sock: No such file or directory"  # not writable, even by root
    assert _refused(tmp_path, "::1:54321") == \
        "tetra: '::1:54321': expected unix:///path/to/socket or host:port (e.g. localhost:54321)"
    assert _refused(tmp_path, "192.0.2.1:54321", "--server-insecure-tcp") == \
        "tetra: cannot serve at 192.0.2.1:54321: Cannot assign requested address"  # not this machine's
    assert _refused(tmp_path, "nohost.invalid:54321", "--server-insecure-tcp").startswith(
        "tetra: cannot serve at nohost.invalid:54321: nohost.invalid: ")  # the resolver's reason follows


def test_stale_world_writable_socket_is_replaced(tmp_path: Path) -> None:
    stale = tmp_path / "run" / "tetra.sock"
    stale.parent.mkdir(mode=0o700)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(stale))
    sock.close()  # an agent that died: its socket file stays, nobody listens
    stale.chmod(0o666)
    running = RunningAgent(tmp_path, "--server-address", f"unix://{stale}").start()
    try:
        assert stat.S_IMODE(stale.stat().st_mode) == 0o600
        done = subprocess.run([*TETRA, "version", "-s", "--server-address", f"unix://{stale}"],
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        assert done.returncode == 0, done.stderr
    finally:
        running.stop()
    assert not stale.exists()  # a clean stop removes it


def test_oversized_and_garbage_requests(agent: RunningAgent) -> None:
    channel = grpc.insecure_channel(f"unix:{agent.socket}",
                                    options=[("grpc.max_send_message_length", 64 * 1024 * 1024)])
    stub = tg_sensors_grpc.FineGuidanceSensorsStub(channel)

    def code_of(call: Callable[[], Any]) -> tuple[grpc.StatusCode, str]:
        with pytest.raises(grpc.RpcError) as caught:
            call()
        return caught.value.code(), caught.value.details()  # type: ignore[attr-defined]

    code, _ = code_of(lambda: stub.AddTracingPolicy(tg_sensors.AddTracingPolicyRequest(yaml="#" * (5 << 20)), timeout=30))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    raw = channel.unary_unary("/tetragon.FineGuidanceSensors/AddTracingPolicy")
    code, details = code_of(lambda: raw(b"\xff\xff\xff\xff", timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("malformed request")
    code, details = code_of(lambda: stub.AddTracingPolicy(tg_sensors.AddTracingPolicyRequest(yaml="{{{ not yaml"),
                                                          timeout=30))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("api:2:1: ")
    code, _ = code_of(lambda: stub.ConfigureTracingPolicy(tg_sensors.ConfigureTracingPolicyRequest(
        name="x", mode=tg_sensors.TP_MODE_UNKNOWN), timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, _ = code_of(lambda: channel.unary_unary("/tetra.api.v1.Tetra/GetEvents")(b"", timeout=10))
    assert code == grpc.StatusCode.UNIMPLEMENTED
    for bad in (tg_events.Filter(binary_regex=["("]), tg_events.Filter(pid_set=[1]),
                tg_events.Filter(cel_expression=["process_exec.process.pid == "])):
        code, details = code_of(lambda: next(stub.GetEvents(tg_events.GetEventsRequest(allow_list=[bad]), timeout=10)))
        assert code == grpc.StatusCode.INVALID_ARGUMENT, details
    code, details = code_of(lambda: next(stub.GetEvents(tg_events.GetEventsRequest(
        field_filters=[tg_events.FieldFilter(fields={"paths": ["process..binary"]})]), timeout=10)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "field_filters:1" in details
    channel.close()
    for garbage in (os.urandom(4096), b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + os.urandom(512)):
        with socket.socket(socket.AF_UNIX) as raw_socket:
            raw_socket.connect(str(agent.socket))
            raw_socket.sendall(garbage)
    bad_filter = tetra(agent, "getevents", "--process", "(")
    assert bad_filter.returncode == 1 and b"--process" in bad_filter.stderr and b"Traceback" not in bad_filter.stderr
    # the agent is unharmed: it answers and still exports
    assert agent.proc is not None and agent.proc.poll() is None
    assert tetra(agent, "version", "-s").returncode == 0
    token = f"after-garbage-{uuid.uuid4()}"
    echo(token)
    agent.wait_for(lambda ev: bool(of_token(ev, "process_exit", token)))


# -- hostile policy input ---------------------------------------------------------------------

SLOW_CALLS = ("sys_close", "sys_dup", "sys_fsync", "sys_fdatasync", "sys_syncfs", "sys_fchdir")


def slow_policy(calls: tuple[str, ...]) -> str:
    """A policy of several syscall hooks: seconds of clang when its object is not cached yet."""
    return """\
apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: api-slow
spec:
  kprobes:
""" + "".join(f"""\
  - call: "{call}"
    syscall: true
    args: [{{index: 0, type: int}}]
    selectors: [{{matchArgs: [{{index: 0, operator: Equal, values: ["-7"]}}]}}]
""" for call in calls)


def _stub(agent: RunningAgent) -> tuple[grpc.Channel, Any]:
    channel = grpc.insecure_channel(f"unix:{agent.socket}")
    return channel, tg_sensors_grpc.FineGuidanceSensorsStub(channel)


def _failure(call: Callable[[], Any]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code(), caught.value.details()  # type: ignore[attr-defined]


def _listed(stub: Any) -> list[str]:
    return [p.name for p in stub.ListTracingPolicies(tg_sensors.ListTracingPoliciesRequest(), timeout=30).policies]


def test_a_merge_bomb_is_refused_fast_and_the_agent_stays_healthy(agent: RunningAgent) -> None:
    channel, stub = _stub(agent)
    health: list[str] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            health.append(stub.GetHealth(tg_tetragon.GetHealthStatusRequest(), timeout=10).health_status[0].status)
            time.sleep(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        time.sleep(0.3)
        started = time.monotonic()
        code, details = _failure(lambda: stub.AddTracingPolicy(tg_sensors.AddTracingPolicyRequest(yaml=merge_bomb()),
                                                               timeout=30))
        took = time.monotonic() - started
        time.sleep(0.5)
    finally:
        done.set()
        watcher.join(15)
    assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT, "api:1:1: this document expands to more than "
                               "200000 YAML nodes (aliases are counted at each use): refusing to read it")
    assert took < 1.0
    assert health and set(health) == {tg_tetragon.HEALTH_STATUS_RUNNING}
    assert "merge-bomb" not in _listed(stub)
    channel.close()


def test_policy_names_are_checked_and_never_echoed_in_full(agent: RunningAgent) -> None:
    channel, stub = _stub(agent)
    long_name = "a" * 100_000
    for call in (lambda: stub.DeleteTracingPolicy(tg_sensors.DeleteTracingPolicyRequest(name=long_name), timeout=10),
                 lambda: stub.EnableTracingPolicy(tg_sensors.EnableTracingPolicyRequest(name=long_name), timeout=10),
                 lambda: stub.DisableTracingPolicy(tg_sensors.DisableTracingPolicyRequest(name=long_name), timeout=10),
                 lambda: stub.ConfigureTracingPolicy(tg_sensors.ConfigureTracingPolicyRequest(
                     name=long_name, mode=tg_sensors.TP_MODE_MONITOR), timeout=10)):
        assert _failure(call) == (grpc.StatusCode.INVALID_ARGUMENT,
                                  f"'{'a' * 80}…' is 100000 characters, a name may have at most 253")
    code, details = _failure(lambda: stub.DeleteTracingPolicy(tg_sensors.DeleteTracingPolicyRequest(name="Not_A_Name"),
                                                              timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("'Not_A_Name' is not a valid Kubernetes name")
    code, details = _failure(lambda: stub.DeleteTracingPolicy(tg_sensors.DeleteTracingPolicyRequest(
        name="api-open", namespace="n" * 64), timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "is not a valid namespace" in details
    code, details = _failure(lambda: stub.DeleteTracingPolicy(tg_sensors.DeleteTracingPolicyRequest(name="b" * 253),
                                                              timeout=10))
    assert (code, details) == (grpc.StatusCode.NOT_FOUND, f"no policy {'b' * 80}…")
    # thousands of problems: as many lines as a client accepts, then how many more there are
    keys = "".join(f"  unknown{i}: 1\n" for i in range(3000))
    text = f"apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: noisy\nspec:\n{keys}"
    code, details = _failure(lambda: stub.AddTracingPolicy(tg_sensors.AddTracingPolicyRequest(yaml=text), timeout=30))
    lines = details.splitlines()
    assert code == grpc.StatusCode.INVALID_ARGUMENT and lines[0].startswith("api:6:3: spec: unknown key 'unknown0'")
    assert re.fullmatch(r"… and \d+ more lines: `tetra tracingpolicy validate` lists them all", lines[-1])
    assert len(details.encode()) <= 6000
    channel.close()


def test_an_add_whose_client_gave_up_does_not_take_effect_later(agent: RunningAgent) -> None:
    channel, stub = _stub(agent)
    started = time.monotonic()
    # the agent's policy cache starts empty, and the two adds differ in their hooks: each is built
    stub.AddTracingPolicy(tg_sensors.AddTracingPolicyRequest(yaml=slow_policy(SLOW_CALLS)), timeout=60)
    loading = time.monotonic() - started
    stub.DeleteTracingPolicy(tg_sensors.DeleteTracingPolicyRequest(name="api-slow"), timeout=30)
    assert loading > 0.6, f"the policy loads in {loading:.2f}s: too fast to time out in the middle"
    logged = len(agent.stderr_lines)
    # the agent takes the call within a loop turn (0.1 s), then compiles for longer than the client waits
    code, _ = _failure(lambda: stub.AddTracingPolicy(tg_sensors.AddTracingPolicyRequest(yaml=slow_policy(SLOW_CALLS[:-1])),
                                                     timeout=loading / 2))
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    wait_until(lambda: any("policies api-slow not added: their client stopped waiting" in line
                           for line in agent.stderr_lines[logged:]), "the agent to take the add back", 60)
    assert "api-slow" not in _listed(stub)
    channel.close()


def test_policies_beyond_the_limit_are_refused(tmp_path: Path) -> None:
    # 128 registered policies, quickly: they are valid, and fail to load at once (no such function)
    policies = tmp_path / "policies"
    policies.mkdir()
    for part in range(2):
        (policies / f"part{part}.yaml").write_text("---\n".join(
            f"apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: nope-{part}-{i}\n"
            "spec:\n  kprobes: [{call: tetra_no_such_function, syscall: false}]\n" for i in range(64)))
    limited = RunningAgent(tmp_path / "agent", "--tracing-policy-dir", str(policies),
                           "--tracing-policy-keep-going").start()
    channel, stub = _stub(limited)
    try:
        assert len(_listed(stub)) == 128
        one = ("apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: more\n"
               "spec:\n  tracepoints: [{subsystem: syscalls, event: sys_enter_getppid}]\n")  # loads: it attaches
        assert _failure(lambda: stub.AddTracingPolicy(tg_sensors.AddTracingPolicyRequest(yaml=one), timeout=30)) == (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "128 policies are registered and at most 128 may be at once: delete some before adding one more")
        stub.DeleteTracingPolicy(tg_sensors.DeleteTracingPolicyRequest(name="nope-0-0"), timeout=30)
        [added] = stub.AddTracingPolicy(tg_sensors.AddTracingPolicyRequest(yaml=one), timeout=60).tetra_policies
        assert added.name == "more"
    finally:
        channel.close()
        limited.stop()


# -- a subscriber that never reads, and one that does, under an exec storm ---------------------


def test_slow_subscriber_never_blocks_the_agent(agent: RunningAgent, storm_binary: Path) -> None:
    channel = grpc.insecure_channel(f"unix:{agent.socket}")
    before = subscriber_ids(agent)
    stuck = tg_sensors_grpc.FineGuidanceSensorsStub(channel).GetEvents(tg_events.GetEventsRequest())  # started, never read
    wait_until(lambda: len(set(subscriber_ids(agent)) - set(before)) == 1, "the stuck subscriber")
    stuck_id = max(set(subscriber_ids(agent)) - set(before))
    reader = Stream(agent, "-o", "json", "--process", "^/usr/bin/true$")
    subscribed(agent, reader, before=[*before, stuck_id])
    reader_id = max(set(subscriber_ids(agent)) - set(before) - {stuck_id})
    exported_before = len(agent.events())

    started = time.monotonic()
    driver = subprocess.run([str(storm_binary), str(STORM)], capture_output=True, check=True, timeout=600)
    storm_s = time.monotonic() - started

    assert int(driver.stdout.split()[1]) == STORM
    subscribers: dict[int, dict[str, str]] = {}

    def settled() -> bool:
        subscribers.update({s["id"]: s for s in status(agent)["subscribers"]})
        counted = subscribers[reader_id]["dropped"] + len(reader.lines)
        return counted >= 2 * STORM and subscribers[reader_id]["queued"] == 0

    wait_until(settled, "the reader to receive or be counted for every storm event", timeout=180)
    received_s = time.monotonic() - started
    state = status(agent)
    reader.stop()
    stuck.cancel()
    channel.close()

    mine = {s["id"]: s for s in state["subscribers"]}
    assert mine[stuck_id]["dropped"] > 0, "the stuck subscriber's queue filled and it lost events"
    assert mine[stuck_id]["queued"] <= 10_000
    assert state["losses"]["subscriber_dropped"] >= mine[stuck_id]["dropped"]
    storm_events = [e for e in reader.events() if e.get("process_exec", e.get("process_exit", {}))
                    .get("process", {}).get("binary") == "/usr/bin/true"]
    assert len(storm_events) + mine[reader_id]["dropped"] >= 2 * STORM
    # the agent kept exporting everything while a subscriber was stuck
    assert state["losses"]["kernel_lost"] == 0
    exported = agent.wait_for(lambda ev: len(ev) - exported_before >= 2 * STORM, timeout=120)
    true_execs = [e for e in exported[exported_before:] if "process_exec" in e
                  and e["process_exec"]["process"]["binary"] == "/usr/bin/true"]
    assert len(true_execs) >= STORM
    rate = len(storm_events) / received_s
    print(f"\nexec storm of {STORM} processes in {storm_s:.1f}s; `tetra getevents -o json` received "
          f"{len(storm_events)} events ({rate:.0f}/s over {received_s:.1f}s), dropped "
          f"{mine[reader_id]['dropped']}; the stuck subscriber dropped {mine[stuck_id]['dropped']}")


# -- TCP: TLS, or a warning at every start ----------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_plain_tcp_only_when_asked_and_warned_at_every_start(tmp_path: Path) -> None:
    v4, v6 = f"127.0.0.1:{_free_port()}", f"[::1]:{_free_port()}"
    assert _refused(tmp_path, v4) == (
        f"tetra: refusing to serve at {v4} without TLS: any local user could control the agent; give "
        "--server-tls-cert-file and --server-tls-key-file (and --server-tls-client-ca-file for mutual TLS), or "
        "--server-insecure-tcp to accept that")
    running = RunningAgent(tmp_path, "--server-address", v4, "--server-address", v6, "--server-insecure-tcp").start()
    try:
        for address in (v4, v6):
            assert (f"tetra: WARNING: API at {address}: plain TCP (--server-insecure-tcp): any local user can "
                    "control the agent and read every event") in running.stderr_lines
            done = subprocess.run([*TETRA, "version", "-s", "--server-address", address], stdin=subprocess.DEVNULL,
                                  capture_output=True, timeout=60)
            assert done.returncode == 0, done.stderr
            assert done.stdout.decode().splitlines()[1] == f"agent  0.1.0 ({address})"
    finally:
        running.stop()


def _certificates(directory: Path) -> dict[str, Path]:
    """A CA, a server certificate for localhost and a client certificate, made with openssl."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
            "-subj", "/CN=tetra-test-ca")
    (directory / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name, subject in (("server", "/CN=localhost"), ("client", "/CN=tetra-client")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", subject)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.pem", "-days", "1", "-extfile", "san.ext")
    return {name: directory / name for name in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}


def test_tcp_with_mutual_tls(tmp_path: Path) -> None:
    certs = _certificates(tmp_path)
    address = f"localhost:{_free_port()}"
    running = RunningAgent(tmp_path, "--server-address", address, "--server-tls-cert-file", str(certs["server.pem"]),
                           "--server-tls-key-file", str(certs["server.key"]),
                           "--server-tls-client-ca-file", str(certs["ca.pem"])).start()
    try:
        def version(*tls: str) -> subprocess.CompletedProcess[bytes]:
            return subprocess.run([*TETRA, "version", "-s", "--server-address", address, *tls],
                                  stdin=subprocess.DEVNULL, capture_output=True, timeout=60)

        trusted = ("--tls-ca-file", str(certs["ca.pem"]))
        client = ("--tls-cert-file", str(certs["client.pem"]), "--tls-key-file", str(certs["client.key"]))
        done = version(*trusted, *client)
        assert done.returncode == 0, done.stderr
        assert done.stdout.decode().splitlines()[1] == f"agent  0.1.0 ({address})"
        for refused in (version(*trusted), version()):  # no client certificate; no TLS at all
            assert refused.returncode == 1
            assert refused.stderr.decode().splitlines()[-1] == (
                f"tetra: the agent at {address} closed the connection: does it want TLS (--tls-ca-cert-files) or a "
                "client certificate (--tls-cert-file, --tls-key-file)?")
        state = subprocess.run([*TETRA, "status", "-o", "json", "--server-address", address, *trusted, *client],
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        grpc_exporter = [e for e in orjson.loads(state.stdout)["exporters"] if e["name"] == "grpc"][0]
        assert grpc_exporter["target"] == address  # only what was asked for is bound
        assert not [line for line in running.stderr_lines if "WARNING" in line]
    finally:
        running.stop()


def test_tls_without_client_certificates_is_warned(tmp_path: Path) -> None:
    certs = _certificates(tmp_path)
    address = f"localhost:{_free_port()}"
    running = RunningAgent(tmp_path, "--server-address", address, "--server-tls-cert-file", str(certs["server.pem"]),
                           "--server-tls-key-file", str(certs["server.key"])).start()
    try:
        assert (f"tetra: WARNING: API at {address}: TLS without client certificates (no "
                "--server-tls-client-ca-file): any local user can control the agent and read every event"
                ) in running.stderr_lines
        done = subprocess.run([*TETRA, "version", "-s", "--server-address", address,
                               "--tls-ca-file", str(certs["ca.pem"])],
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        assert done.returncode == 0, done.stderr
    finally:
        running.stop()


# -- an agent that goes away -------------------------------------------------------------------


def test_agent_restart_with_and_without_reconnect(tmp_path: Path) -> None:
    first = RunningAgent(tmp_path / "one").start()
    before = subscriber_ids(first)
    loyal = Stream(first, "-o", "compact", "--reconnect", "--process", "^/usr/bin/echo$")
    quitter = Stream(first, "-o", "compact")
    subscribed(first, loyal, quitter, before=before)
    first.stop()
    assert quitter.proc.wait(30) == 1
    quitter.stop()
    assert quitter.stderr.decode() == f"tetra: the agent at {first.address} ended the stream: it is stopping\n"
    (tmp_path / "two").mkdir()
    second = RunningAgent(tmp_path / "two", "--server-address", first.address).start()  # the same socket
    try:
        token = f"reconnect-{uuid.uuid4()}"
        wait_until(lambda: bool(subscriber_ids(second)), "the client to come back")
        echo(token)
        loyal.wait_for(lambda lines: f"💥 exit    {node_name()} /usr/bin/echo {token} 0" in lines)
    finally:
        loyal.stop()
        second.stop()
    assert b"reconnecting" in loyal.stderr
