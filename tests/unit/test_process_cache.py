"""The process cache: exec_ids, parent links, reference counts, collection, bounds."""

import base64
import time

import pytest

from tetra.decode.process import CloneRecord, ExecRecord
from tetra.node import BootClock
from tetra.process.cache import ProcessCache
from tetra.process.container import container_id
from tetra.process.model import join_arguments

CID = "0123456789abcdef" * 4


def exec_rec(pid: int, ppid: int, ktime: int, binary: str = "/bin/x", cwd: str = "/tmp",
             argv: list[str] | None = None, cgroup: str = "") -> ExecRecord:
    return ExecRecord(ktime, pid, pid, ppid, 0, 0, 1000, 1, binary, cwd, argv or [binary], cgroup, ["execve"])


@pytest.fixture
def cache() -> ProcessCache:
    return ProcessCache("node1", BootClock(), max_size=100, grace=0.0)


def test_exec_id_is_tetragons(cache: ProcessCache) -> None:
    proc = cache.add_exec(exec_rec(10, 1, 5000))
    assert base64.b64decode(proc.exec_id).decode() == "node1:5000:10"


def test_parent_link_and_refcounts(cache: ProcessCache) -> None:
    parent = cache.add_exec(exec_rec(10, 1, 1))
    child = cache.add_exec(exec_rec(11, 10, 2))
    assert child.parent_exec_id == parent.exec_id
    assert cache.parent_of(child) is parent
    assert parent.refcnt == 2  # itself + one live child
    cache.mark_exited(11)
    assert parent.refcnt == 1 and child.refcnt == 0


def test_exited_parent_stays_while_a_child_lives(cache: ProcessCache) -> None:
    parent = cache.add_exec(exec_rec(10, 1, 1))
    cache.add_exec(exec_rec(11, 10, 2))
    cache.mark_exited(10)
    cache.collect(now=1e12)
    assert cache.get(parent.exec_id) is parent
    cache.mark_exited(11)
    assert cache.collect(now=1e12) == 2
    assert len(cache) == 0


def test_collect_waits_grace_after_the_last_release() -> None:
    cache = ProcessCache("node1", BootClock(), max_size=100, grace=10.0)
    cache.add_exec(exec_rec(10, 1, 1))
    cache.add_exec(exec_rec(11, 10, 2))
    cache.mark_exited(11)  # released now; its parent still runs
    assert cache.collect(now=time.monotonic() + 5) == 0
    cache.mark_exited(10)
    released = time.monotonic()
    assert cache.collect(now=released + 5) == 0
    assert cache.collect(now=released + 11) == 2
    assert len(cache) == 0 and cache.stats.collected == 2


def test_collect_counts_only_what_it_removes() -> None:
    """A released entry that was evicted meanwhile is not collected (nor counted) again."""
    cache = ProcessCache("node1", BootClock(), max_size=2, grace=0.0)
    for pid in (10, 11):
        cache.add_exec(exec_rec(pid, 1, pid))
        cache.mark_exited(pid)
    cache.add_exec(exec_rec(12, 1, 12))  # evicts 10, released but not collected yet
    assert cache.stats.evictions == 1
    assert cache.collect(now=1e12) == 1  # 11; 12 still runs
    assert len(cache) == 1 and cache.by_pid(12) is not None


def test_clone_then_exec_flags(cache: ProcessCache) -> None:
    cache.add_exec(exec_rec(10, 1, 1, binary="/bin/bash", argv=["bash", "-c", "x"]))
    clone = cache.add_clone(CloneRecord(2, 11, 11, 10, 1))
    assert clone is not None
    assert (clone.binary, clone.arguments, clone.flags) == ("/bin/bash", '-c x', "clone")
    after = cache.add_exec(exec_rec(11, 10, 3, cwd="/"))
    assert after.flags == "execve clone rootcwd"
    assert clone.exited and cache.by_pid(11) is after
    again = cache.add_exec(exec_rec(11, 10, 4))
    assert again.flags == "execve"  # a second exec of the same process


def test_clone_of_unknown_parent(cache: ProcessCache) -> None:
    assert cache.add_clone(CloneRecord(2, 11, 11, 999, 1)) is None


def test_lru_bound_evicts_and_counts() -> None:
    cache = ProcessCache("n", BootClock(), max_size=3)
    for pid in range(10, 16):
        cache.add_exec(exec_rec(pid, 1, pid))
    assert len(cache) == 3
    assert cache.stats.evictions == 3
    assert cache.by_pid(10) is None and cache.by_pid(15) is not None


def test_docker_field_from_cgroup(cache: ProcessCache) -> None:
    proc = cache.add_exec(exec_rec(10, 1, 1, cgroup=f"docker-{CID}.scope"))
    assert proc.docker == CID[:31]
    assert proc.to_json()["docker"] == CID[:31]


@pytest.mark.parametrize("name,expected", [
    (f"cri-containerd-{CID}.scope", CID),
    (f"crio-{CID}.scope", CID),
    (f"libpod-{CID}.scope", CID),
    (CID, CID),
    (f"containerd:{CID}", CID),
    ("session-3.scope", ""),
    ("user.slice", ""),
    ("", ""),
])
def test_container_id(name: str, expected: str) -> None:
    assert container_id(name) == expected


def test_arguments_quote_spaces() -> None:
    assert join_arguments(["sh", "-c", "echo hi", "x"]) == '-c "echo hi" x'
    assert join_arguments(["only"]) == ""
