"""CgroupResolver's walks and cache, on plain directories under tmp_path: no root needed.

The resolver reads only directory names and inode numbers, so any file system
serves as its cgroup2 mount. One thing differs: kernfs gives a new cgroup an id
larger than any before it, and the resolver walks soon for such an id, while a
plain file system promises no order of inodes. So directories are made first,
sorted by inode and then renamed into place (a rename keeps the inode): the
tree "created later" holds the larger numbers, as on kernfs. The real
hierarchy, with a real process moved into it, is tests/e2e/test_cgroup_hierarchy.py.
"""

import uuid
from pathlib import Path

from tetra.enrich.cgroups import CgroupResolver, ContainerRef

HEX = uuid.uuid4().hex * 2
UID = str(uuid.uuid4())


def _dirs_by_inode(staging: Path, count: int) -> list[Path]:
    """``count`` empty directories, smallest inode first."""
    staging.mkdir()
    made = [staging / str(n) for n in range(count)]
    for directory in made:
        directory.mkdir()
    return sorted(made, key=lambda directory: directory.stat().st_ino)


def test_new_cgroups_are_found_soon_and_gone_ones_do_not_cause_walks(tmp_path: Path) -> None:
    root, kubepods, pod, first, second, gone = _dirs_by_inode(tmp_path / "staging", 6)
    root = root.rename(tmp_path / "cgroup")
    kubepods = kubepods.rename(root / "kubepods")
    pod = pod.rename(kubepods / f"pod{UID}")
    first = first.rename(pod / HEX)
    now = [100.0]
    resolver = CgroupResolver(root, fresh_interval=0.05, stale_interval=5.0, clock=lambda: now[0])
    assert resolver.container(first.stat().st_ino) == ContainerRef(HEX, UID, "")
    assert resolver.stats.walks == 1

    other = uuid.uuid4().hex * 2
    new_id = second.rename(pod / other).stat().st_ino
    now[0] += 0.01
    assert resolver.container(new_id) is None  # a walk just happened: not yet
    now[0] += 0.05
    assert resolver.container(new_id) == ContainerRef(other, UID, "")  # newer than any seen: walked at once
    assert resolver.stats.walks == 2

    gone_id = gone.stat().st_ino
    gone.rmdir()
    now[0] += 0.1
    assert resolver.container(gone_id) is None  # walked once: it is not there
    assert resolver.stats.walks == 3
    for _ in range(10):
        now[0] += 0.1
        assert resolver.container(gone_id) is None
    assert resolver.stats.walks == 3  # a gone cgroup does not make every lookup walk
    now[0] += 5
    assert resolver.container(gone_id) is None
    assert resolver.stats.walks == 4


def test_cache_is_bounded_and_keeps_what_was_asked(tmp_path: Path) -> None:
    leaves = [tmp_path / f"docker-{uuid.uuid4().hex * 2}.scope" for _ in range(20)]
    for leaf in leaves:
        leaf.mkdir()
    resolver = CgroupResolver(tmp_path, capacity=8)
    wanted = leaves[3]
    assert resolver.path(wanted.stat().st_ino) == f"/{wanted.name}"
    assert resolver.container(wanted.stat().st_ino) == ContainerRef(wanted.name[7:-6], "", "docker")
    assert len(resolver) == 8
    assert resolver.stats.dirs == 21  # it walked everything (the root too), and kept only 8
    assert resolver.stats.walks == 1  # the second question was answered from the cache
