"""RotatingFile: every line lands exactly once, whole, in order, whatever happens."""

import errno
import gzip
import logging
import os
import stat
from pathlib import Path

import pytest

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
    out = RotatingFile(str(path), buffer_size=0)
    with caplog.at_level(logging.WARNING, logger=jsonfile.__name__):
        for line in lines[:3]:
            out.write(line)  # must not raise
    assert out.write_errors == 3
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1  # once per streak

    blocker.unlink()  # the operator fixes the disk; the next write recovers
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


def test_dev_full_counts_errors_and_keeps_running() -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    out = RotatingFile("/dev/full", max_size_mb=_size_mb(100), buffer_size=1 << 20, max_pending=100)
    for line in _lines(20):
        out.write(line)
    out.flush()  # ENOSPC here
    assert out.write_errors >= 1
    out.write(b'{"after":1}\n')  # still alive; retried and failing again
    assert out.write_errors >= 2
    out.close()
    assert out.lines_dropped == 21
    assert out.rotations == 0  # a device is never renamed


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
