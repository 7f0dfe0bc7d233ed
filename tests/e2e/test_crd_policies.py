"""TracingPolicy objects of a Kubernetes API, loaded, changed and unloaded by a running agent.

One agent runs the whole module with ``--enable-k8s-api`` against the fake
API server of tests/unit/enrich (the real ``kubernetes`` client talks HTTP to
it) and one policy file of its own. Objects are created, changed and deleted
through the API; the assertions are on the events the agent exports, on its
policy list (``tetra tracingpolicy list``) and on the status it writes back
into the objects.
"""

import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest

from tests.e2e.harness import Event, RunningAgent, tetra
from tests.unit.enrich.k8s_fake_api import FakeApiServer, make_policy

pytestmark = pytest.mark.usefixtures("root")
NODE = "tetra-crd-node"
FILE_POLICY = "file-opens"
LOAD_TIMEOUT = 120  # a load compiles a BPF module: seconds on a busy two-core machine
T = TypeVar("T")


def opens(prefix: str) -> dict[str, Any]:
    """openat(2) of paths under ``prefix``: the syscalls tracepoint, which every kernel has."""
    return {"tracepoints": [{"subsystem": "syscalls", "event": "sys_enter_openat",
                             "args": [{"index": 6, "type": "string"}],
                             "selectors": [{"matchArgs": [{"index": 6, "operator": "Prefix", "values": [prefix]}]}]}]}


@pytest.fixture(scope="module")
def root_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("crd-root")


@pytest.fixture(scope="module")
def api() -> Iterator[FakeApiServer]:
    server = FakeApiServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, root: None, root_dir: Path,
          api: FakeApiServer) -> Iterator[RunningAgent]:
    workdir = tmp_path_factory.mktemp("crd-agent")
    policy = workdir / f"{FILE_POLICY}.yaml"
    policy.write_text(orjson.dumps(make_policy(FILE_POLICY, opens(f"{root_dir}/file/"))).decode())  # JSON is YAML
    running = RunningAgent(workdir, "--node-name", NODE, "--enable-k8s-api", "--k8s-kubeconfig-path",
                           str(api.kubeconfig(workdir / "kubeconfig")), "--tracing-policy", str(policy)).start(180)
    yield running
    if running.proc and running.proc.poll() is None:
        running.stop()


def hits(events: list[Event], policy: str, path: Path | str) -> list[Event]:
    """The openat tracepoint events of ``policy`` for ``path``."""
    return [e["process_tracepoint"] for e in events if "process_tracepoint" in e
            and e["process_tracepoint"].get("policy_name") == policy
            and e["process_tracepoint"]["args"][0].get("string_arg") == str(path)]


def touch(*paths: Path) -> None:
    """openat(2) each path, in this order, from one process (a missing file is opened all the same)."""
    subprocess.run(["/usr/bin/cat", *map(str, paths)], capture_output=True)


def file_policy_works(agent: RunningAgent, root_dir: Path, name: str) -> list[Event]:
    """An open the file policy reports, and its event: also a marker that what came before is in."""
    target = root_dir / "file" / name
    touch(target)
    return agent.wait_for(lambda ev: bool(hits(ev, FILE_POLICY, target)), timeout=30)


def node_status(api: FakeApiServer, name: str, namespace: str = "") -> dict[str, Any]:
    obj = api.policy(name, namespace) or {}
    return dict((obj.get("status") or {}).get("nodes", {}).get(NODE) or {})


def wait(check: Callable[[], T], what: str, agent: RunningAgent, timeout: float = LOAD_TIMEOUT) -> T:
    """``check()`` once it is true; the agent's last words when it is not within ``timeout``."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}; agent said:\n" + "\n".join(agent.stderr_lines[-30:]))
        time.sleep(0.2)
    return result


def wait_status(api: FakeApiServer, agent: RunningAgent, name: str, namespace: str = "", *, state: str,
                generation: int = 1) -> dict[str, Any]:
    def reported() -> dict[str, Any]:
        status = node_status(api, name, namespace)
        return status if (status.get("state"), status.get("observedGeneration")) == (state, generation) else {}

    return wait(reported, f"{name}: status {state} for generation {generation}", agent)


def listed(agent: RunningAgent) -> dict[str, dict[str, Any]]:
    """The agent's policies by name (``tetra tracingpolicy list -o json``)."""
    done = tetra(agent, "tracingpolicy", "list", "-o", "json")
    assert done.returncode == 0, done.stderr.decode()
    return {p["name"]: p for p in orjson.loads(done.stdout)["policies"]}


def test_an_object_created_loads_its_policy_and_its_events_come(agent: RunningAgent, api: FakeApiServer,
                                                                root_dir: Path) -> None:
    api.put_policy(make_policy("crd-created", opens(f"{root_dir}/created/")))
    status = wait_status(api, agent, "crd-created", state="enabled")
    assert status == {"state": "enabled", "mode": "enforce", "observedGeneration": 1}
    entry = listed(agent)["crd-created"]
    assert (entry["info"], entry["state"]) == ("k8s:TracingPolicy/crd-created", "TP_STATE_ENABLED")
    target = root_dir / "created" / "one"
    touch(target)
    event = hits(agent.wait_for(lambda ev: bool(hits(ev, "crd-created", target)), timeout=30), "crd-created",
                 target)[0]
    assert (event["subsys"], event["event"]) == ("syscalls", "sys_enter_openat")
    assert event["process"]["binary"] == "/usr/bin/cat"


def test_a_changed_object_changes_what_is_reported_without_a_restart(agent: RunningAgent, api: FakeApiServer,
                                                                    root_dir: Path) -> None:
    assert agent.proc is not None
    pid = agent.proc.pid
    api.put_policy(make_policy("crd-changed", opens(f"{root_dir}/before/")))
    wait_status(api, agent, "crd-changed", state="enabled")
    first = root_dir / "before" / "1"
    touch(first)
    agent.wait_for(lambda ev: bool(hits(ev, "crd-changed", first)), timeout=30)

    api.put_policy(make_policy("crd-changed", opens(f"{root_dir}/after/")))
    wait_status(api, agent, "crd-changed", state="enabled", generation=2)
    old, new = root_dir / "before" / "2", root_dir / "after" / "2"
    touch(old, new)  # one process, in this order: once the second is reported, the first would have been
    events = agent.wait_for(lambda ev: bool(hits(ev, "crd-changed", new)), timeout=30)
    assert hits(events, "crd-changed", old) == []
    assert agent.proc.pid == pid and agent.proc.poll() is None


def test_a_deleted_object_stops_its_events(agent: RunningAgent, api: FakeApiServer, root_dir: Path) -> None:
    api.put_policy(make_policy("crd-deleted", opens(f"{root_dir}/deleted/")))
    wait_status(api, agent, "crd-deleted", state="enabled")
    before = root_dir / "deleted" / "before"
    touch(before)
    agent.wait_for(lambda ev: bool(hits(ev, "crd-deleted", before)), timeout=30)

    api.delete_policy("crd-deleted")
    wait(lambda: "crd-deleted" not in listed(agent), "crd-deleted unloaded", agent)
    after = root_dir / "deleted" / "after"
    touch(after)
    events = file_policy_works(agent, root_dir, "after-delete")  # reported after the open, if it had been
    assert hits(events, "crd-deleted", after) == []


def test_an_invalid_object_gets_an_error_status_with_its_location(agent: RunningAgent, api: FakeApiServer,
                                                                  root_dir: Path) -> None:
    bad = opens(f"{root_dir}/invalid/")
    bad["tracepoints"][0]["args"][0]["type"] = "no-such-type"
    api.put_policy(make_policy("crd-invalid", bad))
    status = wait_status(api, agent, "crd-invalid", state="load_error")
    assert re.match(r"k8s:TracingPolicy/crd-invalid:\d+:\d+: spec\.tracepoints\[0\]\.args\[0\]\.type: ",
                    status["error"]), status["error"]
    assert "crd-invalid" not in listed(agent)
    file_policy_works(agent, root_dir, "after-invalid")  # the others run on

    api.put_policy(make_policy("crd-invalid", opens(f"{root_dir}/invalid/")))  # fixed
    status = wait_status(api, agent, "crd-invalid", state="enabled", generation=2)
    assert "error" not in status


def test_an_object_named_like_a_file_policy_is_refused(agent: RunningAgent, api: FakeApiServer,
                                                       root_dir: Path) -> None:
    source = listed(agent)[FILE_POLICY]["info"]
    api.put_policy(make_policy(FILE_POLICY, opens(f"{root_dir}/conflict/")))
    status = wait_status(api, agent, FILE_POLICY, state="load_error")
    assert f"loaded already, from {source}" in status["error"]
    assert listed(agent)[FILE_POLICY]["info"] == source
    api.delete_policy(FILE_POLICY)  # unloads nothing: the policy of that name is not the object's
    wait(lambda: api.policy(FILE_POLICY) is None, "object deleted", agent)
    file_policy_works(agent, root_dir, "after-conflict")
    assert listed(agent)[FILE_POLICY]["info"] == source


def test_a_namespaced_object_loads_with_its_namespace(agent: RunningAgent, api: FakeApiServer,
                                                      root_dir: Path) -> None:
    api.put_policy(make_policy("team-opens", opens(f"{root_dir}/team/"), namespace="team-a"))
    wait_status(api, agent, "team-opens", "team-a", state="enabled")
    entry = listed(agent)["team-opens"]
    assert (entry["namespace"], entry["info"]) == ("team-a", "k8s:TracingPolicyNamespaced/team-a/team-opens")


def test_an_api_outage_keeps_the_policies_and_the_return_reconciles(agent: RunningAgent, api: FakeApiServer,
                                                                   root_dir: Path) -> None:
    api.put_policy(make_policy("crd-stays", opens(f"{root_dir}/stays/")))
    api.put_policy(make_policy("crd-goes", opens(f"{root_dir}/goes/")))
    wait_status(api, agent, "crd-stays", state="enabled")
    wait_status(api, agent, "crd-goes", state="enabled")
    stays_id = listed(agent)["crd-stays"]["id"]

    api.stop()
    wait(lambda: any("TracingPolicy watch failed" in line for line in agent.stderr_lines), "the outage noticed",
         agent, timeout=60)
    during = root_dir / "stays" / "during"
    touch(during)
    agent.wait_for(lambda ev: bool(hits(ev, "crd-stays", during)), timeout=30)  # still loaded, still reporting
    api.delete_policy("crd-goes", event=False)
    api.put_policy(make_policy("crd-new", opens(f"{root_dir}/new/")), event=False)
    api.start()

    wait_status(api, agent, "crd-new", state="enabled")
    wait(lambda: "crd-goes" not in listed(agent), "crd-goes unloaded", agent)
    assert listed(agent)["crd-stays"]["id"] == stays_id  # unchanged: not reloaded
    target = root_dir / "new" / "after"
    touch(target)
    agent.wait_for(lambda ev: bool(hits(ev, "crd-new", target)), timeout=30)


def test_the_objects_are_left_alone_when_the_flag_says_so(tmp_path: Path) -> None:
    api = FakeApiServer()
    api.put_policy(make_policy("ignored", opens(f"{tmp_path}/ignored/")))
    api.start()
    try:
        running = RunningAgent(tmp_path, "--node-name", NODE, "--enable-k8s-api", "--enable-tracing-policy-crd=false",
                               "--k8s-kubeconfig-path", str(api.kubeconfig(tmp_path / "kubeconfig"))).start(180)
        try:
            wait(lambda: any("pod watch synced" in line for line in running.stderr_lines), "pods listed", running, 60)
            assert listed(running) == {}
        finally:
            running.stop()
    finally:
        api.stop()
    assert [path for _method, path, _query in api.calls if "cilium.io" in path] == []
    assert node_status(api, "ignored") == {}
