"""PodWatcher with the real ``kubernetes`` client against a fake API server on 127.0.0.1.

The client reads a kubeconfig written here, lists and watches over HTTP with
chunked streams; the server closes streams, answers 410 Gone, and goes away
and comes back, as API servers do.
"""

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.enrich.k8s_fake_api import FakeApiServer, eventually, make_pod
from tetra.enrich.k8s import PodWatcher, WatchState

NODE = "node-a"
WEB, DB, OTHER, NEW, LATE = ("a" * 64, "b" * 64, "c" * 64, "d" * 64, "e" * 64)
WEB_UID = "11111111-1111-4111-8111-111111111111"
DB_UID = "22222222-2222-4222-8222-222222222222"
TTL = 1.5


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    server = FakeApiServer()
    server.put(make_pod("web-7f9c-x1", WEB_UID, NODE, {"web": WEB}, labels={"app": "web", "pod-template-hash": "7f9c"},
                        owner=("ReplicaSet", "web-7f9c")))
    server.put(make_pod("db-0", DB_UID, NODE, {"db": DB}, owner=("StatefulSet", "db")))
    server.put(make_pod("elsewhere", "33333333-3333-4333-8333-333333333333", "node-b", {"x": OTHER}))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def watcher(api: FakeApiServer, tmp_path: Path) -> Iterator[PodWatcher]:
    w = PodWatcher(NODE, str(api.kubeconfig(tmp_path / "kubeconfig")), deleted_ttl=TTL,
                   backoff_initial=0.05, backoff_max=0.2)
    w.start()
    eventually(lambda: w.state is WatchState.SYNCED)
    yield w
    w.stop()


def test_initial_list_holds_this_nodes_pods(api: FakeApiServer, watcher: PodWatcher) -> None:
    web = watcher.lookup(WEB)
    assert web is not None and (web.name, web.workload, web.workload_kind) == ("web-7f9c-x1", "web", "Deployment")
    db = watcher.lookup(DB[:31])  # process.docker
    assert db is not None and (db.workload, db.workload_kind) == ("db", "StatefulSet")
    assert watcher.lookup(OTHER) is None  # another node's pod is neither listed nor watched
    assert api.requests[0] == {"fieldSelector": "spec.nodeName=node-a", "resourceVersion": "0"}
    assert web.to_json(WEB)["container"]["id"] == f"containerd://{WEB}"
    status = watcher.status()
    assert (status.lists, status.relists, status.errors, status.sizes.pods) == (1, 0, 0, 2)


def test_added_modified_deleted(api: FakeApiServer, watcher: PodWatcher) -> None:
    api.put(make_pod("job-1", "44444444-4444-4444-8444-444444444444", NODE, {"job": NEW},
                     owner=("Job", "backup-29012345")))
    eventually(lambda: watcher.lookup(NEW) is not None)
    assert watcher.lookup(NEW).workload_kind == "CronJob"  # type: ignore[union-attr]

    api.put(make_pod("web-7f9c-x1", WEB_UID, NODE, {"web": WEB}, labels={"app": "web", "tier": "front"}))
    eventually(lambda: watcher.lookup(WEB).labels.get("tier") == "front")  # type: ignore[union-attr]

    api.put(make_pod("db-0", DB_UID, NODE, {"db": LATE}, owner=("StatefulSet", "db")))  # container restarted
    eventually(lambda: watcher.lookup(LATE) is not None)
    assert watcher.lookup(DB) is not None  # the old instance's id still resolves, for a while

    api.delete(WEB_UID)
    eventually(lambda: watcher.status().sizes.gone_pods == 1)
    assert watcher.lookup(WEB) is not None  # late events of a deleted pod still find it
    eventually(lambda: watcher.lookup(WEB) is None and watcher.lookup(DB) is None, timeout=TTL + 5)
    assert watcher.status().events == 4


def test_watch_reopens_from_the_last_version_after_the_server_ends_it(api: FakeApiServer, watcher: PodWatcher) -> None:
    api.put(make_pod("late", "55555555-5555-4555-8555-555555555555", NODE, {"late": LATE}))
    eventually(lambda: watcher.lookup(LATE) is not None)
    seen = api.version
    api.close_streams()
    eventually(lambda: watcher.status().watch_restarts == 1)
    eventually(lambda: len(api.watches()) == 2)
    assert api.watches()[1]["resourceVersion"] == str(seen)  # resumed, not re-listed
    api.put(make_pod("after", "66666666-6666-4666-8666-666666666666", NODE, {"after": NEW}))
    eventually(lambda: watcher.lookup(NEW) is not None)
    assert len(api.lists()) == 1 and watcher.status().relists == 0


def test_410_gone_lists_again(api: FakeApiServer, watcher: PodWatcher) -> None:
    api.put(make_pod("quiet", "77777777-7777-4777-8777-777777777777", NODE, {"quiet": NEW}), event=False)
    api.expire()  # the open watch gets an ERROR event with code 410
    eventually(lambda: watcher.status().relists == 1)
    assert api.lists()[-1] == {"fieldSelector": "spec.nodeName=node-a"}  # a consistent read, not the cache
    assert watcher.lookup(NEW) is not None  # only the list could tell
    assert watcher.state is WatchState.SYNCED and watcher.status().errors == 0
    api.put(make_pod("next", "88888888-8888-4888-8888-888888888888", NODE, {"next": LATE}))
    eventually(lambda: watcher.lookup(LATE) is not None)  # and it watches again


def test_410_on_every_watch_backs_off(api: FakeApiServer, watcher: PodWatcher) -> None:
    with api.cond:
        api.oldest = 10**9  # a broken watch cache: every watch is too old
        api.cond.notify_all()
    eventually(lambda: watcher.status().relists >= 2)
    before = len(api.lists())
    time.sleep(1.0)
    assert len(api.lists()) - before < 30  # relists back off once a 410 brings no progress
    assert watcher.lookup(WEB) is not None


def test_api_server_goes_away_and_returns(api: FakeApiServer, watcher: PodWatcher,
                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tetra.enrich.k8s")
    api.stop()
    eventually(lambda: watcher.state is WatchState.RECONNECTING)
    eventually(lambda: watcher.status().errors >= 3)  # it keeps trying, with backoff
    assert watcher.lookup(WEB) is not None  # answers from memory meanwhile, raises nothing
    assert watcher.last_error

    api.delete(DB_UID, event=False)  # changes while it was away
    api.put(make_pod("new", "99999999-9999-4999-8999-999999999999", NODE, {"new": NEW}), event=False)
    api.start()
    eventually(lambda: watcher.state is WatchState.SYNCED)
    assert watcher.lookup(NEW) is not None
    assert watcher.lookup(DB) is not None  # deleted while away: kept for the TTL
    eventually(lambda: watcher.lookup(DB) is None, timeout=TTL + 5)
    assert watcher.status().relists == 1
    messages = [r.getMessage() for r in caplog.records]
    assert any("failed, retrying with backoff" in m for m in messages)
    assert sum("failed, retrying" in m for m in messages) == 1  # one warning per outage, not one per retry
    assert any(m.startswith("Kubernetes pod watch synced") for m in messages)


def test_watches_cut_at_once_back_off_instead_of_spinning(api: FakeApiServer, watcher: PodWatcher) -> None:
    api.cut_watches = True
    api.close_streams()
    eventually(lambda: watcher.state is WatchState.RECONNECTING)
    assert "ShortWatchError" in watcher.last_error
    before = len(api.requests)
    time.sleep(1.0)
    assert len(api.requests) - before < 30  # backoff (0.05 s doubling to 0.2 s), not a busy loop
    assert watcher.lookup(WEB) is not None
    api.cut_watches = False
    eventually(lambda: watcher.state is WatchState.SYNCED and watcher.status().errors >= 1)


def test_stop_is_prompt_while_a_watch_is_open(watcher: PodWatcher) -> None:
    started = time.monotonic()
    watcher.stop()
    assert time.monotonic() - started < 2
    assert watcher.state is WatchState.STOPPED


def test_without_configuration_enrichment_is_off_and_says_so(monkeypatch: pytest.MonkeyPatch,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    w = PodWatcher(NODE)
    w.start()
    assert w.state is WatchState.DISABLED
    assert "--k8s-kubeconfig-path" in w.last_error
    assert any("Kubernetes pod enrichment is off" in r.getMessage() for r in caplog.records)
    assert w.lookup(WEB) is None
    w.stop()
    assert w.state is WatchState.DISABLED


def test_a_bad_kubeconfig_is_an_error_state_not_an_exception(tmp_path: Path) -> None:
    w = PodWatcher(NODE, str(tmp_path / "missing"), backoff_initial=0.05, backoff_max=0.1)
    w.start()
    try:
        eventually(lambda: w.state is WatchState.RECONNECTING)
        assert "missing" in w.last_error
        assert w.lookup(WEB) is None
    finally:
        w.stop()


def test_a_wrong_token_is_reported(api: FakeApiServer, tmp_path: Path) -> None:
    config = api.kubeconfig(tmp_path / "kubeconfig")
    config.write_text(config.read_text().replace("tetra-test-token", "wrong"))
    w = PodWatcher(NODE, str(config), backoff_initial=0.05, backoff_max=0.1)
    w.start()
    try:
        eventually(lambda: w.state is WatchState.RECONNECTING)
        assert "401" in w.last_error
    finally:
        w.stop()
