"""PodIndex: lookups by container id (full or 31-character prefix) and pod uid, and the TTL of what left."""

import threading

from tetra.enrich.podindex import IndexSizes, PodIndex
from tetra.enrich.pods import ContainerInfo, PodInfo

A, B, C = "a" * 64, "b" * 64, "c" * 64


def pod(uid: str, *ids: str, name: str = "p") -> PodInfo:
    containers = {cid: ContainerInfo(f"containerd://{cid}", "c", "img", "", "", False, ()) for cid in ids}
    return PodInfo("default", name, uid, {}, None, name, "Pod", containers)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_lookup_by_full_id_prefix_and_pod_uid() -> None:
    index = PodIndex(ttl=10)
    p = pod("u1", A)
    index.upsert(p)
    assert index.lookup(A) is p
    assert index.lookup(A[:31]) is p  # process.docker
    assert index.lookup(A[:31] + "f" * 33) is None  # same prefix, another id
    assert index.lookup(B) is None
    assert index.lookup(B, "u1") is p  # container not listed yet, pod known from its cgroup path
    assert index.lookup("", "") is None


def test_deleted_pods_resolve_until_the_ttl() -> None:
    clock = Clock()
    index = PodIndex(ttl=10, clock=clock)
    p = pod("u1", A)
    index.upsert(p)
    index.remove("u1")
    clock.now += 9.9
    assert index.lookup(A) is p and index.lookup("", "u1") is p
    assert index.sizes() == IndexSizes(pods=0, containers=0, gone_pods=1, gone_containers=1)
    clock.now += 0.2
    assert index.lookup(A) is None and index.lookup("", "u1") is None
    assert index.sizes() == IndexSizes(0, 0, 0, 0)  # and the memory is freed


def test_restarted_container_keeps_resolving_under_its_old_id() -> None:
    clock = Clock()
    index = PodIndex(ttl=10, clock=clock)
    before, after = pod("u1", A), pod("u1", B)
    index.upsert(before)
    index.upsert(after)  # the container restarted: new id
    assert index.lookup(B) is after
    assert index.lookup(A) is before  # late events of the old instance
    clock.now += 11
    assert index.lookup(A) is None and index.lookup(B) is after


def test_replace_retires_pods_missing_from_a_list() -> None:
    clock = Clock()
    index = PodIndex(ttl=10, clock=clock)
    index.replace([pod("u1", A), pod("u2", B)])
    fresh = pod("u3", C)
    index.replace([pod("u2", B), fresh])  # u1 was deleted while we were not watching
    assert index.lookup(A) is not None  # still within the TTL
    assert index.lookup(C) is fresh
    assert index.sizes() == IndexSizes(pods=2, containers=2, gone_pods=1, gone_containers=1)


def test_a_pod_that_comes_back_is_live_again_and_outlives_its_old_deadline() -> None:
    clock = Clock()
    index = PodIndex(ttl=10, clock=clock)
    p = pod("u1", A)
    index.upsert(p)
    index.remove("u1")
    clock.now += 5
    index.upsert(p)  # a relist still had it
    clock.now += 20
    assert index.sizes() == IndexSizes(1, 1, 0, 0)
    assert index.lookup(A) is p


def test_lookups_while_another_thread_writes() -> None:
    index = PodIndex(ttl=0.001)
    stop = threading.Event()

    def churn() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            index.upsert(pod(f"u{n % 50}", f"{n % 50:064x}"))
            index.remove(f"u{(n + 25) % 50}")

    writer = threading.Thread(target=churn)
    writer.start()
    try:
        for i in range(20000):
            index.lookup(f"{i % 50:064x}", f"u{i % 50}")
    finally:
        stop.set()
        writer.join()
