"""RotatingFile: every line lands exactly once, whole, in order, whatever happens."""

import errno
import gzip
import logging
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tetra.export.sinks import JsonSink
from tetra.errors import ExportError
from tetra.export import jsonfile
from tetra.export.jsonfile import MIB, RotatingFile, parse_perm


def _lines(n: int, start: int = 0) -> list[bytes]:
    """Numbered lines of varying length, so batches and files never align."""
    return [b'{"n":%d,"pad":"%s"}\n' % (i, b"x" * (i % 13)) for i in range(start, start + n)]


def _read(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


def _all_files(path: Path) -> list[Path]:
    """The current file and its backups, oldest first."""
    backups = [p for p in path.parent.iterdir() if p.name.startswith(path.name + ".")]
    backups.sort(key=lambda p: int(p.name[len(path.name) + 1 :].split(".")[0]), reverse=True)
    return [*backups, path] if path.exists() else backups


def _read_back(path: Path) -> list[bytes]:
    """Every line of every file, oldest first; asserts no file holds a split line."""
    lines: list[bytes] = []
    for p in _all_files(path):
        data = _read(p)
        assert data == b"" or data.endswith(b"\n"), f"{p.name} ends inside a line"
        lines += data.splitlines(keepends=True)
    return lines


def _size_mb(n_bytes: int) -> float:
    return n_bytes / MIB


@pytest.mark.parametrize("buffer_size", [0, 100, 64 * 1024])
def test_rotation_keeps_every_line_once_in_order(tmp_path: Path, buffer_size: int) -> None:
    path = tmp_path / "tetra.log"
    lines = _lines(500)
    out = RotatingFile(str(path), max_size_mb=_size_mb(300), max_backups=1000, buffer_size=buffer_size)
    for i, line in enumerate(lines):
        out.write(line)
        if i % 97 == 0:
            out.flush()
    out.close()

    assert _read_back(path) == lines
    files = _all_files(path)
    assert len(files) == out.rotations + 1
    assert out.rotations > 10
    assert all(p.stat().st_size <= 300 for p in files)
    assert out.bytes_written == sum(map(len, lines))
    assert out.write_errors == 0 and out.lines_dropped == 0


def test_backups_limit_keeps_the_newest(tmp_path: Path) -> None:
    path = tmp_path / "tetra.log"
    lines = _lines(300)
    with RotatingFile(str(path), max_size_mb=_size_mb(200), max_backups=3, buffer_size=0) as out:
        for line in lines:
            out.write(line)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["tetra.log", "tetra.log.1", "tetra.log.2", "tetra.log.3"]
    kept = _read_back(path)
    assert kept == lines[-len(kept) :]  # a contiguous tail, ending with the last line
    assert out.rotations > 3


def test_zero_backups_keeps_only_the_current_file(tmp_path: Path) -> None:
    path = tmp_path / "tetra.log"
    lines = _lines(100)
    with RotatingFile(str(path), max_size_mb=_size_mb(150), max_backups=0, buffer_size=0) as out:
        for line in lines:
            out.write(line)
    assert [p.name for p in tmp_path.iterdir()] == ["tetra.log"]
    assert out.rotations > 0
    kept = _read_back(path)
    assert kept == lines[-len(kept) :]


def test_stale_backups_beyond_the_limit_are_removed(tmp_path: Path) -> None:
    path = tmp_path / "tetra.log"
    for name in ("tetra.log.2", "tetra.log.7", "tetra.log.9.gz", "other.log.9"):
        (tmp_path / name).write_text("old\n")
    with RotatingFile(str(path), max_size_mb=_size_mb(50), max_backups=2, buffer_size=0) as out:
        for line in _lines(10):
            out.write(line)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["other.log.9", "tetra.log", "tetra.log.1", "tetra.log.2"]


def test_existing_file_is_appended_to(tmp_path: Path) -> None:
    path = tmp_path / "tetra.log"
    path.write_bytes(b'{"old":1}\n')
    with RotatingFile(str(path), buffer_size=0) as out:
        out.write(b'{"new":2}')  # the newline is added
    assert path.read_bytes() == b'{"old":1}\n{"new":2}\n'
    assert out.rotations == 0


def test_line_larger_than_max_size_gets_a_file_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "tetra.log"
    big = b'{"big":"' + b"y" * 500 + b'"}\n'
    lines = [b'{"a":1}\n', big, b'{"b":2}\n']
    with RotatingFile(str(path), max_size_mb=_size_mb(100), max_backups=5) as out:
        for line in lines:
            out.write(line)
    assert _read_back(path) == lines
    assert (tmp_path / "tetra.log.1").read_bytes() == big


def test_permissions_and_parent_directories(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "tetra.log"
    old_umask = os.umask(0o077)  # the configured mode must win over the umask
    try:
        with RotatingFile(str(path), max_size_mb=_size_mb(60), perm=0o640, compress=True, buffer_size=0) as out:
            for line in _lines(20):
                out.write(line)
    finally:
        os.umask(old_umask)
    files = _all_files(path)
    assert len(files) > 2 and any(p.suffix == ".gz" for p in files)
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) == 0o640, p.name


def test_default_permission_is_0600(tmp_path: Path) -> None:
    path = tmp_path / "tetra.log"
    with RotatingFile(str(path)) as out:
        out.write(b"{}\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_rotation_interval(tmp_path: Path) -> None:
    now = [1000.0]
    path = tmp_path / "tetra.log"
    out = RotatingFile(str(path), rotation_interval=60, buffer_size=0, clock=lambda: now[0])
    out.write(b'{"n":1}\n')
    now[0] += 30
    out.write(b'{"n":2}\n')
    assert out.rotations == 0
    now[0] += 31
    out.write(b'{"n":3}\n')  # 61 s after the file was opened
    assert out.rotations == 1
    now[0] += 59
    out.write(b'{"n":4}\n')  # the new file is 59 s old
    assert out.rotations == 1
    out.close()
    assert (tmp_path / "tetra.log.1").read_bytes() == b'{"n":1}\n{"n":2}\n'
    assert path.read_bytes() == b'{"n":3}\n{"n":4}\n'


def test_rotation_interval_does_not_rotate_an_empty_file(tmp_path: Path) -> None:
    now = [0.0]
    path = tmp_path / "tetra.log"
    out = RotatingFile(str(path), rotation_interval=10, buffer_size=0, clock=lambda: now[0])
    out.write(b'{"n":1}\n')
    now[0] += 11
    out.write(b'{"n":2}\n')
    now[0] += 11
    out.write(b'{"n":3}\n')
    out.close()
    assert out.rotations == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tetra.log", "tetra.log.1", "tetra.log.2"]


def test_compressed_backups(tmp_path: Path) -> None:
    path = tmp_path / "tetra.log"
    lines = _lines(200)
    with RotatingFile(str(path), max_size_mb=_size_mb(250), max_backups=100, compress=True) as out:
        for line in lines:
            out.write(line)
    backups = [p.name for p in _all_files(path)[:-1]]
    assert backups and all(name.endswith(".gz") for name in backups)
    assert "tetra.log.1.gz" in backups
    assert not any(name.endswith(".tmp") for name in os.listdir(tmp_path))
    assert _read_back(path) == lines


def test_unwritable_path_is_counted_and_survived(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "dir"
    blocker.write_text("a file where the directory should be")
    path = blocker / "tetra.log"
    lines = _lines(5)
    now = [0.0]
    out = RotatingFile(str(path), buffer_size=0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger=jsonfile.__name__):
        for line in lines[:3]:
            out.write(line)  # must not raise
            now[0] += jsonfile.BACKOFF_MIN
    assert out.write_errors == 2  # the second retry is not due yet: the backoff doubled
    assert out.failing and out.last_error
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1  # once per streak

    blocker.unlink()  # the operator fixes the disk; the next due write recovers
    now[0] += jsonfile.BACKOFF_MAX
    for line in lines[3:]:
        out.write(line)
    out.close()
    assert path.read_bytes() == b"".join(lines)
    assert out.lines_dropped == 0


def test_partial_write_is_rolled_back_and_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC halfway through a batch must leave no half line behind and no duplicate."""
    path = tmp_path / "tetra.log"
    lines = _lines(50)
    real_write = os.write
    calls = {"n": 0}

    def flaky_write(fd: int, data: memoryview | bytes) -> int:
        calls["n"] += 1
        if calls["n"] == 2:
            return real_write(fd, bytes(data[: len(data) // 2 + 3]))  # a short write
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    out = RotatingFile(str(path), max_size_mb=_size_mb(400), max_backups=50, buffer_size=200)
    monkeypatch.setattr(jsonfile.os, "write", flaky_write)
    for line in lines:
        out.write(line)
    out.close()
    assert calls["n"] > 3  # the short write, the failure, and the retries happened
    assert out.write_errors == 1
    assert _read_back(path) == lines


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file outside the export directory that a planted link points at: it must never change."""
    target = tmp_path / "victim"
    target.write_bytes(b"precious\n")
    target.chmod(0o644)
    return target


def _unchanged(target: Path) -> bool:
    return target.read_bytes() == b"precious\n" and stat.S_IMODE(target.stat().st_mode) == 0o644


def test_a_target_that_is_not_a_regular_file_is_refused(tmp_path: Path, victim: Path) -> None:
    link = tmp_path / "link.log"
    link.symlink_to(victim)
    fifo = tmp_path / "fifo.log"
    os.mkfifo(fifo)
    for path, what in ((link, "a symbolic link"), (fifo, "a FIFO"), (tmp_path, "a directory"),
                       (Path("/dev/full"), "a device")):
        with pytest.raises(ExportError, match=what):
            RotatingFile(str(path))
    assert _unchanged(victim)


def test_a_link_planted_at_the_path_later_is_not_followed(tmp_path: Path, victim: Path) -> None:
    now = [0.0]
    path = tmp_path / "log" / "tetra.log"
    out = RotatingFile(str(path), perm=0o600, clock=lambda: now[0])
    lines = _lines(30)
    for line in lines[:10]:
        out.write(line)
    out.flush()
    path.rename(tmp_path / "log" / "moved.log")
    path.symlink_to(victim)
    for line in lines[10:20]:
        out.write(line)
    out.flush()  # notices the file was replaced; refuses to open the link
    assert out.failing and "symbolic link" in out.last_error
    assert _unchanged(victim)

    path.unlink()
    now[0] += jsonfile.BACKOFF_MAX
    for line in lines[20:]:
        out.write(line)
    out.close()
    assert _unchanged(victim)
    assert (tmp_path / "log" / "moved.log").read_bytes() + path.read_bytes() == b"".join(lines)
    assert out.lines_dropped == 0 and out.write_errors == 1


def test_rotation_never_writes_through_planted_links(tmp_path: Path, victim: Path) -> None:
    """Links at the backup names and at the gzip temporary file are replaced or unlinked, never written."""
    path = tmp_path / "tetra.log"
    for name in ("tetra.log.1", "tetra.log.1.gz", "tetra.log.1.gz.tmp", "tetra.log.2", "tetra.log.2.gz"):
        (tmp_path / name).symlink_to(victim)
    lines = _lines(120)
    with RotatingFile(str(path), max_size_mb=_size_mb(300), max_backups=2, compress=True, buffer_size=0) as out:
        for i, line in enumerate(lines):
            out.write(line)
            if i == 20:  # the first rotation happened; plant the temporary file of the next one again
                assert out.rotations == 1
                (tmp_path / "tetra.log.1.gz.tmp").symlink_to(victim)
    assert _unchanged(victim)
    assert out.rotations > 3 and out.write_errors == 0
    assert not any(p.is_symlink() for p in tmp_path.iterdir())
    kept = _read_back(path)
    assert kept == lines[-len(kept):]


def test_a_leftover_gzip_temporary_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "tetra.log"
    (tmp_path / "tetra.log.1.gz.tmp").write_bytes(b"half a gzip stream from a crash")
    lines = _lines(20)
    with RotatingFile(str(path), max_size_mb=_size_mb(300), compress=True, buffer_size=0) as out:
        for line in lines:
            out.write(line)
    assert out.rotations == 1 and out.write_errors == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tetra.log", "tetra.log.1.gz"]
    assert _read_back(path) == lines


def test_outside_rename_and_delete_are_noticed_on_flush(tmp_path: Path) -> None:
    """logrotate without SIGHUP, or a careless rm: the next flush (every tick) starts a new file."""
    path = tmp_path / "tetra.log"
    lines = _lines(30)
    out = RotatingFile(str(path))
    for line in lines[:10]:
        out.write(line)
    out.flush()
    path.rename(tmp_path / "tetra.log-rotated")
    for line in lines[10:20]:
        out.write(line)
    out.flush()
    assert (out.reopens, out.last_reopen) == (1, "moved away")
    assert (tmp_path / "tetra.log-rotated").read_bytes() == b"".join(lines[:10])
    assert path.read_bytes() == b"".join(lines[10:20])

    path.unlink()
    for line in lines[20:]:
        out.write(line)
    out.flush()
    assert (out.reopens, out.last_reopen) == (2, "deleted")
    assert path.read_bytes() == b"".join(lines[20:])
    out.flush()  # nothing moved since: no reopen
    out.close()
    assert out.reopens == 2 and out.write_errors == 0


def test_reopen_on_request_starts_the_new_file_at_once(tmp_path: Path) -> None:
    path = tmp_path / "tetra.log"
    with RotatingFile(str(path)) as out:
        out.write(b'{"n":1}\n')
        out.flush()
        path.rename(tmp_path / "tetra.log.1")
        out.write(b'{"n":2}\n')  # still pending: goes to the new file
        out.reopen("SIGHUP")
        assert path.read_bytes() == b'{"n":2}\n'
        out.reopen("SIGHUP")  # nothing moved: a new file is not started, the same one is reopened
        out.write(b'{"n":3}\n')
    assert (out.reopens, out.last_reopen) == (2, "SIGHUP")
    assert JsonSink(out).state().state == "ok (reopened: SIGHUP)"
    assert (tmp_path / "tetra.log.1").read_bytes() == b'{"n":1}\n'
    assert path.read_bytes() == b'{"n":2}\n{"n":3}\n'


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A real 256 KiB tmpfs, to fill up."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "fs"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0755", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def _fill(path: Path) -> None:
    """Write ``path`` until the file system is full."""
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as err:
            assert err.errno == errno.ENOSPC


def _check_subsequence(found: list[bytes], lines: list[bytes]) -> None:
    """``found`` is ``lines`` with some left out: in order, none twice, none split."""
    index = {line: i for i, line in enumerate(lines)}
    positions = [index[line] for line in found]  # KeyError: a line that was never written (split)
    assert positions == sorted(set(positions)), "a line is out of order or duplicated"


def test_full_disk_backs_off_drops_counted_lines_and_recovers(small_fs: Path) -> None:
    now = [0.0]
    path = small_fs / "tetra.log"
    out = RotatingFile(str(path), buffer_size=4096, max_pending=32 * 1024, clock=lambda: now[0])
    _fill(small_fs / "filler")
    lines = _lines(6000)
    for line in lines:  # 6 seconds of events, one every millisecond
        out.write(line)
        now[0] += 0.001
        if int(now[0] * 1000) % 100 == 0:
            out.flush()  # as the agent's tick would, more often
    # 0.1 + 0.2 + 0.4 + 0.8 + 1.6 + 2 ... : a handful of attempts, not one per event
    assert 3 <= out.write_errors <= 8
    assert out.failing and out.last_error == os.strerror(errno.ENOSPC)
    assert out.lines_dropped > 0
    state = JsonSink(out).state()  # what `tetra status` and the metrics show
    assert state.state == "failing: No space left on device"
    assert state.counters["lines_dropped"] == out.lines_dropped
    assert state.counters["bytes_dropped"] == out.bytes_dropped != 0

    (small_fs / "filler").unlink()
    now[0] += jsonfile.BACKOFF_MAX
    out.flush()
    assert not out.failing and out.bytes_written == path.stat().st_size
    out.close()
    found = _read_back(path)
    _check_subsequence(found, lines)
    assert len(found) + out.lines_dropped == len(lines)
    assert out.bytes_dropped == sum(map(len, lines)) - path.stat().st_size
    assert found[-1] == lines[-1]  # the oldest were dropped, the newest kept


def test_full_disk_writes_the_whole_lines_that_fit(small_fs: Path) -> None:
    """A batch larger than the room left must not be retried whole forever: what fits goes out."""
    now = [0.0]
    path = small_fs / "tetra.log"
    out = RotatingFile(str(path), buffer_size=1 << 20, clock=lambda: now[0])
    with open(small_fs / "room", "wb") as f:
        f.write(b"\0" * 40 * 1024)
    _fill(small_fs / "filler")
    lines = _lines(8000)  # about 200 KB
    for line in lines:
        out.write(line)
    out.flush()
    assert out.failing and path.stat().st_size == 0

    (small_fs / "room").unlink()  # 40 KB free: less than the pending lines
    now[0] += jsonfile.BACKOFF_MAX
    out.flush()
    first = path.read_bytes()
    assert 16 * 1024 < len(first) <= 40 * 1024 and first.endswith(b"\n")
    assert out.failing  # still full

    (small_fs / "filler").unlink()
    now[0] += jsonfile.BACKOFF_MAX
    out.flush()
    assert not out.failing
    out.close()
    assert _read_back(path) == lines
    assert out.lines_dropped == 0


def test_write_after_close_raises(tmp_path: Path) -> None:
    out = RotatingFile(str(tmp_path / "tetra.log"))
    out.close()
    out.close()  # idempotent
    with pytest.raises(ValueError):
        out.write(b"{}\n")


@pytest.mark.parametrize(
    "kwargs",
    [{"max_size_mb": 0}, {"max_backups": -1}, {"perm": 0o10000}, {"rotation_interval": 0}],
)
def test_invalid_settings_are_reported(tmp_path: Path, kwargs: dict[str, float]) -> None:
    with pytest.raises(ExportError):
        RotatingFile(str(tmp_path / "x.log"), **kwargs)  # type: ignore[arg-type]


def test_parse_perm() -> None:
    assert parse_perm("600") == 0o600
    assert parse_perm("0640") == 0o640
    assert parse_perm("0o644") == 0o644
    for bad in ("", "800", "rw", "77777"):
        with pytest.raises(ExportError):
            parse_perm(bad)
