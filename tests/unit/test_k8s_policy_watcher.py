"""The TracingPolicy watchers with the real ``kubernetes`` client against the fake API server.

The agent's side is a stand-in that runs on its own "agent" thread, drains
the hand-off queue as the agent loop does, and validates each object's text
with the real policy loader (loading into the kernel needs root: that is
tests/e2e/test_crd_policies.py). What is checked here is the watcher: what it
hands over and when, on which thread, what it writes into the objects'
status, and how it reconciles after 410 Gone, outages and failed writes.
"""

import logging
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.enrich.k8s_fake_api import (MERGE_PATCH, TRACING_POLICIES_NAMESPACED, FakeApiServer, eventually,
                                            make_policy)
from tetra.agent.k8s_policies import K8sPolicies, LoadOutcome, PolicyObject
from tetra.errors import TetraError
from tetra.k8s.listwatch import WatchState
from tetra.policy.loader import load_policies_text
from tetra.status.model import PolicyLoadState

NODE = "node-a"


def spec(event: str = "sys_enter_openat", prefix: str = "/tmp/x/") -> dict[str, Any]:
    return {"tracepoints": [{"subsystem": "syscalls", "event": event,
                             "args": [{"index": 6, "type": "string"}],
                             "selectors": [{"matchArgs": [{"index": 6, "operator": "Prefix", "values": [prefix]}]}]}]}


class StandInAgent:
    """The agent thread's side: a loop draining the hand-off, loads validated by the real loader."""

    def __init__(self) -> None:
        self.loaded: dict[str, str] = {}  # source -> policy text
        self.calls: list[tuple[str, str]] = []  # (load | unload, source)
        self.threads: set[int] = set()
        self.draining = threading.Event()
        self.draining.set()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def load(self, obj: PolicyObject) -> LoadOutcome:
        self.threads.add(threading.get_ident())
        self.calls.append(("load", obj.source))
        self.loaded.pop(obj.source, None)
        try:
            (policy,) = load_policies_text(obj.text, obj.source)
        except TetraError as err:
            return LoadOutcome(PolicyLoadState.LOAD_ERROR, str(err))
        self.loaded[obj.source] = obj.text
        return LoadOutcome(PolicyLoadState.ENABLED, mode=policy.policy_mode)

    def unload(self, obj: PolicyObject) -> None:
        self.threads.add(threading.get_ident())
        self.calls.append(("unload", obj.source))
        self.loaded.pop(obj.source, None)

    def loads(self, source: str) -> int:
        return self.calls.count(("load", source))

    def run(self, policies: K8sPolicies) -> None:
        self.policies = policies
        self.thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self.draining.is_set():
                self.policies.run_pending()
            time.sleep(0.01)

    def stop(self) -> None:
        self._stop.set()
        if self.thread.is_alive():
            self.thread.join()


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    server = FakeApiServer()
    server.put_policy(make_policy("opens", spec()))
    server.put_policy(make_policy("team-opens", spec(prefix="/srv/"), namespace="team-a"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def agent() -> Iterator[StandInAgent]:
    stand_in = StandInAgent()
    yield stand_in
    stand_in.stop()


def _policies(api: FakeApiServer, tmp_path: Path, agent: StandInAgent, **options: Any) -> K8sPolicies:
    policies = K8sPolicies(NODE, str(api.kubeconfig(tmp_path / "kubeconfig")), agent.load, agent.unload,
                           backoff_initial=0.05, backoff_max=0.2, **options)
    agent.run(policies)
    policies.start()
    return policies


@pytest.fixture
def policies(api: FakeApiServer, tmp_path: Path, agent: StandInAgent) -> Iterator[K8sPolicies]:
    started = _policies(api, tmp_path, agent)
    eventually(lambda: all(w.state is WatchState.SYNCED for w in started.watchers))
    yield started
    started.stop()


def node_status(api: FakeApiServer, name: str, namespace: str = "") -> dict[str, Any] | None:
    obj = api.policy(name, namespace)
    return None if obj is None else (obj.get("status") or {}).get("nodes", {}).get(NODE)


def test_objects_of_both_kinds_load_on_the_agent_thread_with_a_status(
        api: FakeApiServer, agent: StandInAgent, policies: K8sPolicies) -> None:
    assert set(agent.loaded) == {"k8s:TracingPolicy/opens", "k8s:TracingPolicyNamespaced/team-a/team-opens"}
    assert agent.threads == {agent.thread.ident}  # never on a watcher thread
    text = agent.loaded["k8s:TracingPolicyNamespaced/team-a/team-opens"]
    assert text.startswith("apiVersion: cilium.io/v1alpha1\nkind: TracingPolicyNamespaced\nmetadata:\n"
                           "  name: team-opens\n  namespace: team-a\nspec:\n")
    eventually(lambda: node_status(api, "opens") is not None and node_status(api, "team-opens", "team-a") is not None)
    loaded = {"state": "enabled", "mode": "enforce", "observedGeneration": 1}
    assert node_status(api, "opens") == loaded  # the merge patch's nulls removed "error"
    assert node_status(api, "team-opens", "team-a") == loaded
    writes = {(w.method, w.resource, w.namespace, w.name, w.content_type, w.code) for w in api.status_writes}
    assert writes == {("PATCH", "tracingpolicies", "", "opens", MERGE_PATCH, 200),
                      ("PATCH", TRACING_POLICIES_NAMESPACED, "team-a", "team-opens", MERGE_PATCH, 200)}
    assert api.lists("/apis/cilium.io/v1alpha1/tracingpoliciesnamespaced") == [{"resourceVersion": "0"}]
    assert [s.loaded for s in policies.status()] == [1, 1]


def test_other_nodes_entries_are_kept(api: FakeApiServer, agent: StandInAgent, policies: K8sPolicies) -> None:
    eventually(lambda: node_status(api, "opens") is not None)
    with api.cond:
        api.objects["tracingpolicies"]["opens"]["status"]["nodes"]["node-b"] = {"state": "error", "error": "x"}
    api.put_policy(make_policy("opens", spec(prefix="/tmp/y/")))
    eventually(lambda: (node_status(api, "opens") or {}).get("observedGeneration") == 2)
    nodes = api.policy("opens")["status"]["nodes"]  # type: ignore[index]
    assert nodes["node-b"] == {"state": "error", "error": "x"}


def test_a_changed_spec_reloads_and_nothing_else_does(api: FakeApiServer, agent: StandInAgent,
                                                      policies: K8sPolicies) -> None:
    source = "k8s:TracingPolicy/opens"
    eventually(lambda: node_status(api, "opens") is not None)
    api.put_policy(make_policy("opens", spec(prefix="/tmp/changed/")))
    eventually(lambda: (node_status(api, "opens") or {}).get("observedGeneration") == 2)
    assert "/tmp/changed/" in agent.loaded[source] and agent.loads(source) == 2

    labelled = make_policy("opens", spec(prefix="/tmp/changed/"))
    labelled["metadata"]["labels"] = {"team": "a"}
    labelled["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": "{}"}
    api.put_policy(labelled)  # metadata only: the generation stays
    assert api.policy("opens")["metadata"]["generation"] == 2  # type: ignore[index]
    marker = api.put_policy(make_policy("marker", spec()))  # events are applied in order: after this one...
    eventually(lambda: "k8s:TracingPolicy/marker" in agent.loaded)
    assert marker["metadata"]["generation"] == 1
    assert agent.loads(source) == 2  # ...the label change and every status write (MODIFIED events) reloaded nothing
    assert policies.status()[0].watch["events"] >= 4


def test_an_invalid_object_gets_an_error_status_with_its_location(api: FakeApiServer, agent: StandInAgent,
                                                                  policies: K8sPolicies) -> None:
    bad = spec()
    bad["tracepoints"][0]["args"][0]["type"] = "no-such-type"
    api.put_policy(make_policy("bad", bad))
    eventually(lambda: node_status(api, "bad") is not None)
    status = node_status(api, "bad")
    assert status is not None and status["state"] == "load_error" and "mode" not in status
    assert re.match(r"k8s:TracingPolicy/bad:\d+:\d+: spec\.tracepoints\[0\]\.args\[0\]\.type: ", status["error"])
    assert "k8s:TracingPolicy/bad" not in agent.loaded

    api.put_policy(make_policy("bad", spec()))  # fixed
    eventually(lambda: (node_status(api, "bad") or {}).get("state") == "enabled")
    assert "error" not in node_status(api, "bad")  # type: ignore[operator]
    assert "k8s:TracingPolicy/bad" in agent.loaded


def test_deleting_an_object_unloads_its_policy(api: FakeApiServer, agent: StandInAgent,
                                               policies: K8sPolicies) -> None:
    api.delete_policy("team-opens", "team-a")
    eventually(lambda: [s.objects for s in policies.status()] == [1, 0])
    assert "k8s:TracingPolicyNamespaced/team-a/team-opens" not in agent.loaded
    assert ("unload", "k8s:TracingPolicyNamespaced/team-a/team-opens") in agent.calls
    assert "k8s:TracingPolicy/opens" in agent.loaded


def _changes_unseen(api: FakeApiServer) -> None:
    """While nothing watches: one object deleted, one changed, one created, one left alone ("opens")."""
    api.put_policy(make_policy("kept-same", spec()), event=False)
    api.delete_policy("team-opens", "team-a", event=False)
    api.put_policy(make_policy("late", spec(event="sys_enter_unlinkat")), event=False)


def _reconciled(agent: StandInAgent) -> bool:
    return ("k8s:TracingPolicyNamespaced/team-a/team-opens" not in agent.loaded
            and "k8s:TracingPolicy/late" in agent.loaded)


def test_a_relist_after_410_reconciles(api: FakeApiServer, agent: StandInAgent, policies: K8sPolicies) -> None:
    api.put_policy(make_policy("kept-same", spec(prefix="/old/")))
    eventually(lambda: "k8s:TracingPolicy/kept-same" in agent.loaded)
    _changes_unseen(api)
    api.expire()  # the open watches end with 410 Gone: both kinds list again
    eventually(lambda: all(s.watch["relists"] == 1 for s in policies.status()))
    eventually(lambda: _reconciled(agent) and "/old/" not in agent.loaded["k8s:TracingPolicy/kept-same"])
    assert agent.loads("k8s:TracingPolicy/opens") == 1  # unchanged: not reloaded
    assert agent.loads("k8s:TracingPolicy/kept-same") == 2
    assert all(w.state is WatchState.SYNCED for w in policies.watchers)


def test_api_away_policies_stay_and_return_reconciles(api: FakeApiServer, agent: StandInAgent,
                                                     policies: K8sPolicies, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tetra.agent.k8s_policies")
    api.stop()
    eventually(lambda: all(w.state is WatchState.RECONNECTING for w in policies.watchers))
    time.sleep(0.3)
    assert set(agent.loaded) == {"k8s:TracingPolicy/opens", "k8s:TracingPolicyNamespaced/team-a/team-opens"}
    _changes_unseen(api)
    api.start()
    eventually(lambda: _reconciled(agent) and "k8s:TracingPolicy/kept-same" in agent.loaded)
    assert agent.loads("k8s:TracingPolicy/opens") == 1
    assert not any(op == "unload" and source == "k8s:TracingPolicy/opens" for op, source in agent.calls)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("Kubernetes TracingPolicy watch failed, retrying" in m for m in messages) == 1


def test_failed_status_writes_are_counted_and_written_later(api: FakeApiServer, agent: StandInAgent,
                                                            policies: K8sPolicies,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    api.fail_status = 500
    api.put_policy(make_policy("unreported", spec()))
    eventually(lambda: policies.status()[0].status_errors == 1)
    assert "k8s:TracingPolicy/unreported" in agent.loaded  # loaded all the same
    assert node_status(api, "unreported") is None
    assert policies.watchers[0].state is WatchState.SYNCED  # not a watch failure
    assert any("status not written" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    api.fail_status = 0
    api.expire()  # the next sighting (here a relist) writes it
    eventually(lambda: (node_status(api, "unreported") or {}).get("state") == "enabled")
    assert agent.loads("k8s:TracingPolicy/unreported") == 1


def test_stop_releases_a_watcher_that_waits_for_the_agent(api: FakeApiServer, agent: StandInAgent,
                                                          tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    agent.draining.clear()  # an agent thread busy elsewhere
    started = _policies(api, tmp_path, agent)
    time.sleep(0.3)  # both watchers now wait in their first load
    begun = time.monotonic()
    started.stop()
    assert time.monotonic() - begun < 2
    assert all(w.state is WatchState.STOPPED for w in started.watchers)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert agent.calls == []


def test_an_agent_that_does_not_take_the_load_in_time_is_retried(api: FakeApiServer, agent: StandInAgent,
                                                                 tmp_path: Path) -> None:
    agent.draining.clear()
    started = _policies(api, tmp_path, agent, command_timeout=0.2)
    try:
        eventually(lambda: "CommandTimeout" in started.watchers[0].last_error)
        assert agent.calls == []  # a load that timed out never runs
        agent.draining.set()
        eventually(lambda: len(agent.loaded) == 2 and all(w.state is WatchState.SYNCED for w in started.watchers))
        assert agent.loads("k8s:TracingPolicy/opens") == 1
    finally:
        started.stop()


def test_without_configuration_it_says_so_once(monkeypatch: pytest.MonkeyPatch, agent: StandInAgent,
                                               caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    policies = K8sPolicies(NODE, None, agent.load, agent.unload)
    policies.start()
    off = [r.getMessage() for r in caplog.records if "not watched" in r.getMessage()]
    assert len(off) == 1 and "--k8s-kubeconfig-path" in off[0]
    assert all(w.state is WatchState.STOPPED for w in policies.watchers)
    policies.stop()
