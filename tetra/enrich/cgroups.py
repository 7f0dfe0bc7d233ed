"""From a cgroup id to its path and container.

Probes see a task's cgroup as ``bpf_get_current_cgroup_id()``: on cgroup v2
that is the inode number of the cgroup's directory under the cgroup2 mount, and
the kernel offers no reverse lookup. So the resolver walks the hierarchy
(``scandir`` gives each directory's inode without a ``stat``) and remembers
what it saw::

    cgroup id ──> LRU cache hit ────────────────────────────> "/kubepods.slice/.../cri-containerd-<id>.scope"
         └──────> miss ──> walk the cgroup2 mount (rate-limited) ──┘            │
                                                                    container_ref() ──> ContainerRef

A miss walks again, but not every miss: kernfs hands out cgroup ids in
increasing order, so an id above the largest one the last walk saw belongs to
a cgroup created since (a container starting: worth a walk almost at once),
while a smaller unknown id is a cgroup that is already gone (walking again
would not find it, so those walks are spaced out) or one the bounded cache let
go (found again at the next spaced-out walk). Cached paths never go stale
in a harmful way: cgroup ids are 64-bit and not reused while the system runs.

A walk costs 15 to 45 µs per cgroup (the kernel lists each directory's
interface files too): tens of milliseconds on a node with a thousand cgroups.

One resolver serves one thread (the pipeline's); it takes no locks.
"""

import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tetra.kernel.mounts import cgroup2_mount
from tetra.process.container import ContainerRef, container_ref

__all__ = ["CgroupResolver", "ContainerRef", "ResolverStats"]

@dataclass(slots=True)
class ResolverStats:
    """What the resolver did; ``dirs`` and ``seconds`` describe the latest walk."""

    lookups: int = 0
    misses: int = 0
    walks: int = 0
    dirs: int = 0
    seconds: float = 0.0


class _Entry:
    """A cgroup's path; its container is parsed when first asked for (most walked paths never are)."""

    __slots__ = ("path", "parsed", "ref")

    def __init__(self, path: str) -> None:
        self.path = path
        self.parsed = False
        self.ref: ContainerRef | None = None


class CgroupResolver:
    """Maps cgroup v2 ids to paths below the cgroup2 mount and to their containers."""

    def __init__(self, root: Path | None = None, *, capacity: int = 16384, stale_interval: float = 5.0,
                 fresh_interval: float = 0.25, clock: Callable[[], float] = time.monotonic) -> None:
        """``root``: the cgroup2 mount (found in /proc/mounts when None). At most
        ``capacity`` paths are kept, least recently used first out. A walk for
        an id newer than any seen happens at most every ``fresh_interval``
        seconds, one for an older unknown id at most every ``stale_interval``."""
        self.root = root if root is not None else Path(cgroup2_mount())
        self.capacity = capacity
        self.stale_interval = stale_interval
        self.fresh_interval = fresh_interval
        self.stats = ResolverStats()
        self._clock = clock
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._newest = -1  # the largest id the last walk saw
        self._last_walk = float("-inf")

    def __len__(self) -> int:
        return len(self._entries)

    def path(self, cgroup_id: int) -> str | None:
        """The cgroup's path relative to the mount ("/" for the root), or None if not found."""
        entry = self._entry(cgroup_id)
        return entry.path if entry is not None else None

    def container(self, cgroup_id: int) -> ContainerRef | None:
        """The container the cgroup belongs to; None for host cgroups and unknown ids."""
        entry = self._entry(cgroup_id)
        if entry is None:
            return None
        if not entry.parsed:
            entry.ref, entry.parsed = container_ref(entry.path), True
        return entry.ref

    def _entry(self, cgroup_id: int) -> _Entry | None:
        self.stats.lookups += 1
        entry = self._entries.get(cgroup_id)
        if entry is not None:
            self._entries.move_to_end(cgroup_id)
            return entry
        self.stats.misses += 1
        interval = self.fresh_interval if cgroup_id > self._newest else self.stale_interval
        if self._clock() - self._last_walk < interval:
            return None
        path = self._walk(cgroup_id)
        if path is None:
            # It existed when its event was sent, before this walk: it is gone, or outside
            # this mount's view. Either way another walk soon would not find it.
            self._newest = max(self._newest, cgroup_id)
            return None
        self._remember(cgroup_id, path)  # again: a tree larger than the cache may have evicted it
        self._entries.move_to_end(cgroup_id)
        return self._entries[cgroup_id]

    def _walk(self, wanted: int) -> str | None:
        """Record every directory below the mount, depth first; returns the path of ``wanted`` if seen."""
        started = time.perf_counter()
        self._last_walk = self._clock()
        newest, count, found = self._newest, 0, None
        try:
            pending = [(os.stat(self.root).st_ino, "/", str(self.root))]
        except OSError:
            pending = []
        while pending:
            inode, rel, full = pending.pop()
            self._remember(inode, rel)
            if inode == wanted:
                found = rel
            count += 1
            newest = max(newest, inode)
            try:
                with os.scandir(full) as children:
                    for child in children:
                        if child.is_dir(follow_symlinks=False):
                            pending.append((child.inode(), f"{rel.rstrip('/')}/{child.name}", child.path))
            except OSError:  # removed while we walked: its children went with it
                continue
        self._newest = newest
        self.stats.walks += 1
        self.stats.dirs = count
        self.stats.seconds = time.perf_counter() - started
        return found

    def _remember(self, cgroup_id: int, path: str) -> None:
        entry = self._entries.get(cgroup_id)
        if entry is not None and entry.path == path:
            return
        self._entries[cgroup_id] = _Entry(path)
        if len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
