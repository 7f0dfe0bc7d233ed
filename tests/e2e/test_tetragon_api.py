"""Tetragon's gRPC API (tetragon.FineGuidanceSensors) as an outside client uses it, against a real agent.

The client knows nothing of tetra: its stubs are generated at test time by
grpc_tools.protoc from tetra/api/tetragon/*.proto (Tetragon's package, names
and numbers), and it runs as a separate ``python -I`` process whose path is
the stubs and site-packages, and which checks at the end that no module of
tetra was imported. It does what a Tetragon client does: version, health,
add a tracing policy, list it, stream events with Tetragon's filters (a
process_exec of a command it runs, the policy's process_kprobe of it; a
``cel_expression`` the agent evaluates), change the policy's mode and state
(also through its sensors, as old clients do), read and set the log level,
delete the policy. The test then holds what it received to what the agent
exported.
"""

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.e2e.harness import Event, RunningAgent

pytestmark = pytest.mark.usefixtures("root")

PROTOS = Path(__file__).resolve().parents[2] / "tetra" / "api"

# The client: stdlib, grpc and protobuf, and the stubs in sys.argv[1]; nothing of tetra.
CLIENT = r'''
import json, os, subprocess, sys, threading, time
sys.path.insert(0, sys.argv[1])
address, root, policy_yaml = sys.argv[2], sys.argv[3], sys.argv[4]

import grpc
from google.protobuf import json_format
from tetragon import events_pb2, sensors_pb2, sensors_pb2_grpc, tetragon_pb2

out = {}
stub = sensors_pb2_grpc.FineGuidanceSensorsStub(grpc.insecure_channel(address))


def as_dict(message):
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def status(call, request):
    try:
        call(request, timeout=30)
    except grpc.RpcError as err:
        return err.code().name, err.details()
    return "OK", ""


def code(call, request):
    return status(call, request)[0]


def collect(request, run, enough):
    """The stream's events until ``enough`` of them; ``run`` makes events meanwhile (the stream
    subscribes when the server takes it: run the commands until their events come)."""
    stream = stub.GetEvents(request, timeout=60)
    received, done = [], threading.Event()

    def run_until_seen():
        while not done.wait(0.5):
            run()

    threading.Thread(target=run_until_seen, daemon=True).start()
    for response in stream:
        received.append(as_dict(response))
        if enough(received):
            break
    done.set()
    stream.cancel()
    return received


out["version"] = stub.GetVersion(sensors_pb2.GetVersionRequest(), timeout=10).version
out["health"] = as_dict(stub.GetHealth(tetragon_pb2.GetHealthStatusRequest(), timeout=10))
out["policies_before"] = as_dict(stub.ListTracingPolicies(sensors_pb2.ListTracingPoliciesRequest(), timeout=10))
stub.AddTracingPolicy(sensors_pb2.AddTracingPolicyRequest(yaml=policy_yaml), timeout=120)
out["policies_added"] = as_dict(stub.ListTracingPolicies(sensors_pb2.ListTracingPoliciesRequest(), timeout=10))
out["sensors"] = as_dict(stub.ListSensors(sensors_pb2.ListSensorsRequest(), timeout=10))

request = events_pb2.GetEventsRequest(
    allow_list=[events_pb2.Filter(arguments_regex=[root],
                                  event_set=["PROCESS_EXEC", "PROCESS_KPROBE", "PROCESS_TRACEPOINT"])],
    deny_list=[events_pb2.Filter(binary_regex=["^/usr/bin/env$"])],
    field_filters=[events_pb2.FieldFilter(action="EXCLUDE", fields={"paths": ["process.cwd"]})],
    aggregation_options=events_pb2.AggregationOptions(channel_buffer_size=10))


def open_and_exec():
    subprocess.run(["/bin/cat", f"{root}/open/file"], stdout=subprocess.DEVNULL)
    subprocess.run(["/usr/bin/env", "/bin/true", root])


def kinds_seen(received):
    kinds = {kind for event in received for kind in event if kind.startswith("process_")}
    return "process_exec" in kinds and bool(kinds & {"process_kprobe", "process_tracepoint"})


out["events"] = collect(request, open_and_exec, kinds_seen)

# cel_expression: the server evaluates it on each event's GetEventsResponse (uid and pid are uint32)
cel = (f"process_exec.process.binary.endsWith('/true') && process_exec.process.arguments == '{root}/cel' "
       "&& process_exec.process.uid == 0u && process_exec.process.pid > 1u")


def true_and_echo():
    subprocess.run(["/bin/echo", f"{root}/cel"], stdout=subprocess.DEVNULL)
    subprocess.run(["/bin/true", f"{root}/cel"])


out["cel_events"] = collect(events_pb2.GetEventsRequest(allow_list=[events_pb2.Filter(cel_expression=[cel])]),
                            true_and_echo, lambda received: len(received) >= 2)
out["bad_cel"] = status(lambda r, timeout: next(stub.GetEvents(r, timeout=timeout)), events_pb2.GetEventsRequest(
    allow_list=[events_pb2.Filter(cel_expression=["process_exec.process.pid == 1u", "process_exec.proces.pid > 1u"])]))
long_cel = "process_exec.process.binary == '" + "a" * 4000 + "'"  # each within bounds, not all five together
out["cel_budget"] = status(lambda r, timeout: next(stub.GetEvents(r, timeout=timeout)), events_pb2.GetEventsRequest(
    allow_list=[events_pb2.Filter(cel_expression=[long_cel] * 3), events_pb2.Filter(cel_expression=[long_cel] * 2)]))

out["monitor"] = code(stub.ConfigureTracingPolicy,
                      sensors_pb2.ConfigureTracingPolicyRequest(name="tg-open", mode="TP_MODE_MONITOR"))
out["disable"] = code(stub.ConfigureTracingPolicy,
                      sensors_pb2.ConfigureTracingPolicyRequest(name="tg-open", enable=False))
out["policies_configured"] = as_dict(stub.ListTracingPolicies(sensors_pb2.ListTracingPoliciesRequest(), timeout=10))
out["enable"] = code(stub.EnableTracingPolicy, sensors_pb2.EnableTracingPolicyRequest(name="tg-open"))


def sensors():
    return as_dict(stub.ListSensors(sensors_pb2.ListSensorsRequest(), timeout=10))["sensors"]


hook = next(s["name"] for s in sensors() if s.get("collection") == "tg-open")
base = next(s["name"] for s in sensors() if not s.get("collection"))
out["sensor_names"] = {"hook": hook, "base": base}
out["disable_sensor"] = code(stub.DisableSensor, sensors_pb2.DisableSensorRequest(name=hook))
out["sensors_disabled"] = sensors()
out["enable_sensor"] = code(stub.EnableSensor, sensors_pb2.EnableSensorRequest(name=hook))
out["sensors_enabled"] = sensors()
out["disable_base"] = code(stub.DisableSensor, sensors_pb2.DisableSensorRequest(name=base))
out["enable_base"] = code(stub.EnableSensor, sensors_pb2.EnableSensorRequest(name=base))
out["enable_unknown"] = code(stub.EnableSensor, sensors_pb2.EnableSensorRequest(name="no-such-sensor"))
try:
    stub.RemoveSensor(sensors_pb2.RemoveSensorRequest(name=hook), timeout=10)
except grpc.RpcError as err:
    out["remove_sensor"] = [err.code().name, err.details()]
stub.AddTracingPolicy(sensors_pb2.AddTracingPolicyRequest(
    yaml=policy_yaml.replace("name: tg-open", "name: tg-open-too")), timeout=120)
out["disable_shared"] = code(stub.DisableSensor, sensors_pb2.DisableSensorRequest(name=hook))
stub.DeleteTracingPolicy(sensors_pb2.DeleteTracingPolicyRequest(name="tg-open-too"), timeout=60)
out["debug_set"] = as_dict(stub.SetDebug(sensors_pb2.SetDebugRequest(level="LOG_LEVEL_DEBUG"), timeout=10))
out["debug_get"] = as_dict(stub.GetDebug(sensors_pb2.GetDebugRequest(), timeout=10))
stub.SetDebug(sensors_pb2.SetDebugRequest(level="LOG_LEVEL_INFO"), timeout=10)
out["info"] = as_dict(stub.GetInfo(sensors_pb2.GetInfoRequest(), timeout=10))
out["delete"] = code(stub.DeleteTracingPolicy, sensors_pb2.DeleteTracingPolicyRequest(name="tg-open"))
out["delete_again"] = code(stub.DeleteTracingPolicy, sensors_pb2.DeleteTracingPolicyRequest(name="tg-open"))
out["bad_filter"] = code(lambda r, timeout: next(stub.GetEvents(r, timeout=timeout)),
                         events_pb2.GetEventsRequest(allow_list=[events_pb2.Filter(binary_regex=["("])]))
out["runtime_hook_empty"] = code(stub.RuntimeHook, tetragon_pb2.RuntimeHookRequest())
out["runtime_hook"] = code(stub.RuntimeHook, tetragon_pb2.RuntimeHookRequest(
    createContainer=tetragon_pb2.CreateContainer(cgroupsPath="/kubepods/pod1/" + "a" * 64, podName="p")))
out["policies_after"] = as_dict(stub.ListTracingPolicies(sensors_pb2.ListTracingPoliciesRequest(), timeout=10))
out["tetra_imported"] = sorted(name for name in sys.modules if name == "tetra" or name.startswith("tetra."))
print(json.dumps(out))
'''

POLICY = """\
apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: tg-open
spec:
  kprobes:
  - call: "sys_openat"
    syscall: true
    args:
    - index: 0
      type: int
    - index: 1
      type: "string"
    - index: 2
      type: int
    selectors:
    - matchArgs:
      - index: 1
        operator: "Prefix"
        values: ["{root}/open/"]
"""


@pytest.fixture(scope="module")
def stubs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Python stubs from tetra/api/tetragon/*.proto, as a Tetragon client generates them."""
    out = tmp_path_factory.mktemp("tetragon-stubs")
    protos = sorted(str(p.relative_to(PROTOS)) for p in (PROTOS / "tetragon").glob("*.proto"))
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTOS}", f"--python_out={out}",
                    f"--grpc_python_out={out}", *protos], check=True, cwd=PROTOS)
    return out


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, root: None) -> Iterator[RunningAgent]:
    running = RunningAgent(tmp_path_factory.mktemp("tetragon-api-agent")).start(180)
    yield running
    if running.proc and running.proc.poll() is None:
        running.stop()


@pytest.fixture(scope="module")
def session(agent: RunningAgent, stubs: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What the outside client saw, start to end."""
    root = tmp_path_factory.mktemp("tetragon-api-root")
    (root / "open").mkdir()
    (root / "open" / "file").write_text("x")
    script = stubs / "client.py"
    script.write_text(CLIENT)
    done = subprocess.run([sys.executable, "-I", str(script), str(stubs), agent.address, str(root),
                           POLICY.format(root=root)], capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode() + "\n".join(agent.stderr_lines[-30:])
    result: dict[str, Any] = json.loads(done.stdout)
    result["root"] = str(root)
    return result


def _of(events: list[Event], kind: str) -> list[Event]:
    return [event for event in events if kind in event]


def test_the_client_imported_nothing_of_tetra(session: dict[str, Any]) -> None:
    assert session["tetra_imported"] == []


def test_version_and_health(session: dict[str, Any]) -> None:
    from tetra import __version__
    assert session["version"] == __version__
    assert session["health"] == {"health_status": [{"event": "HEALTH_STATUS_TYPE_STATUS",
                                                    "status": "HEALTH_STATUS_RUNNING", "details": "running"}]}
    assert session["info"]["version"] == __version__ and session["info"]["name"] == "tetra"


def test_policies_are_listed_as_tetragon_lists_them(session: dict[str, Any]) -> None:
    assert session["policies_before"] == {}
    (policy,) = session["policies_added"]["policies"]
    assert (policy["name"], policy["state"], policy["mode"], policy["enabled"]) == (
        "tg-open", "TP_STATE_ENABLED", "TP_MODE_ENFORCE", True)
    assert policy["sensors"] and int(policy["id"]) > 0
    assert [h["hook"] for h in policy["tetra_hooks"]] == policy["sensors"]
    assert "stats" in policy
    assert {"name": policy["sensors"][0], "enabled": True, "collection": "tg-open"} in session["sensors"]["sensors"]
    (configured,) = session["policies_configured"]["policies"]
    assert (session["monitor"], session["disable"]) == ("OK", "OK")
    assert (configured["state"], configured["mode"]) == ("TP_STATE_DISABLED", "TP_MODE_MONITOR")
    assert "enabled" not in configured
    assert (session["enable"], session["delete"], session["delete_again"]) == ("OK", "OK", "NOT_FOUND")
    assert session["policies_after"] == {}


def test_events_come_filtered_as_tetragons_messages(session: dict[str, Any], agent: RunningAgent) -> None:
    events, root = session["events"], session["root"]
    # a kprobe on the syscall where the kernel has one, else the syscall's tracepoint
    execs, hooks = _of(events, "process_exec"), _of(events, "process_kprobe") + _of(events, "process_tracepoint")
    assert execs and hooks
    assert all(root in next(iter(e.values()))["process"]["arguments"] for e in events)  # allow_list
    assert not any(e["process_exec"]["process"]["binary"] == "/usr/bin/env" for e in execs)  # deny_list
    assert all("cwd" not in next(iter(e.values()))["process"] for e in events)  # field_filters
    hook = next(iter(hooks[0].values()))
    assert (hook["policy_name"], hook["action"]) == ("tg-open", "KPROBE_ACTION_POST")
    assert {"string_arg": f"{root}/open/file"} in hook["args"]
    # what the client decoded is what the agent exported, field for field (but the excluded cwd)
    wanted = {e["process_exec"]["process"]["exec_id"] for e in execs}
    exported = {e["process_exec"]["process"]["exec_id"]: e for e in agent.wait_for(
        lambda lines: wanted <= {e["process_exec"]["process"]["exec_id"] for e in _of(lines, "process_exec")})
        if "process_exec" in e}
    for event in execs:
        line = orjson.loads(orjson.dumps(exported[event["process_exec"]["process"]["exec_id"]]))
        line["process_exec"]["process"].pop("cwd", None)
        assert event == line


def test_log_level_is_read_and_set(session: dict[str, Any]) -> None:
    assert session["debug_set"] == {"level": "LOG_LEVEL_DEBUG"}
    assert session["debug_get"] == {"level": "LOG_LEVEL_DEBUG"}


def test_bad_requests_get_tetragons_status_codes(session: dict[str, Any]) -> None:
    assert session["bad_filter"] == "INVALID_ARGUMENT"
    assert session["runtime_hook_empty"] == "INVALID_ARGUMENT"
    # no pod enrichment here (--enable-k8s-api): nothing to register, and a hook must not fail a container
    assert session["runtime_hook"] == "OK"


def test_sensors_enable_and_disable_their_policy(session: dict[str, Any]) -> None:
    """A hook's sensor stands for its policy (they load together); the base sensor stays."""
    hook, base = session["sensor_names"]["hook"], session["sensor_names"]["base"]
    assert (session["disable_sensor"], session["enable_sensor"]) == ("OK", "OK")
    assert {"name": hook, "collection": "tg-open"} in session["sensors_disabled"]  # enabled false: left out
    assert {"name": hook, "enabled": True, "collection": "tg-open"} in session["sensors_enabled"]
    assert {"name": base, "enabled": True} in session["sensors_disabled"]
    assert (session["disable_base"], session["enable_base"]) == ("FAILED_PRECONDITION", "OK")
    assert session["enable_unknown"] == "NOT_FOUND"
    assert session["disable_shared"] == "INVALID_ARGUMENT"  # tg-open and tg-open-too both hook it
    # Tetragon answers RemoveSensor with a plain error (UNKNOWN) today
    code, details = session["remove_sensor"]
    assert code == "UNKNOWN" and details.startswith("RemoveSensor is deprecated")


def test_the_stubs_are_generated_not_imported(stubs: Path) -> None:
    """The stubs import each other as Tetragon's do (package tetragon), not as tetra's modules."""
    text = (stubs / "tetragon" / "sensors_pb2.py").read_text()
    assert "from tetragon import events_pb2" in text and "tetra.api" not in text


def test_cel_expressions_are_evaluated_by_the_agent(session: dict[str, Any]) -> None:
    """Only the execs of /bin/true the expression selects came (the /bin/echo run just before each did not);
    an expression naming a field Tetragon's Process lacks is refused before the stream starts."""
    events = session["cel_events"]
    assert len(events) >= 2 and all(set(e) >= {"process_exec"} for e in events), events
    for event in events:
        proc = event["process_exec"]["process"]
        assert proc["binary"].endswith("/true") and (proc["arguments"], proc["uid"]) == (f"{session['root']}/cel", 0)
    code, details = session["bad_cel"]
    assert code == "INVALID_ARGUMENT"
    assert "allow_list:1: cel_expression: " in details and "undefined field 'proces'" in details, details
    code, details = session["cel_budget"]
    assert code == "INVALID_ARGUMENT" and "at most 16384 are accepted" in details, details
