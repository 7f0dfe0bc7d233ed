"""The JSON export file with size and time rotation (``--export-filename``).

Lines are queued in memory and written in batches; a batch only ever holds
whole lines that fit in the current file, so a line is never split across
files. Rotation follows lumberjack, which Tetragon uses::

    write(line) ──> pending lines ──drain──> file          (the current file)
                                        │
              size + line > max size,   └─rotate─> file.1 ─> file.2 ─> ... file.N
              or rotation interval        (file.N dropped; file.1.gz ... when compressed)
              elapsed since opened

Choices and their reasons:

* Backups are numbered ``file.1`` (newest) to ``file.N`` rather than named by
  timestamp as lumberjack does: a shipper can follow a fixed set of names, and
  the order is obvious from the name. With ``compress`` they are ``file.N.gz``.
* ``max_backups == 0`` keeps no backup (lumberjack would keep all): a
  rotation then just starts the file again.
* A single line larger than the maximum size is written alone into a fresh
  file rather than dropped: losing an event is worse than one large file.
* A target that is not a regular file (``/dev/stdout``, a FIFO) is never
  rotated, renamed, truncated or chmod'ed.
* An ``OSError`` (a full disk, a directory replaced by a file) never reaches
  the caller: it is counted in :attr:`RotatingFile.write_errors`, logged once
  per streak of failures, and the file is opened again on the next write. A
  half-written batch is truncated away, so a retry neither duplicates nor
  splits a line. While the failure lasts, pending lines are kept up to
  ``max_pending`` bytes; older ones beyond that are dropped and counted in
  :attr:`RotatingFile.lines_dropped`.
* Compression runs synchronously at rotation: the exporter is already behind a
  bounded queue, and a synchronous step keeps backup renames race-free.
"""

import gzip
import logging
import os
import re
import shutil
import stat
import threading
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType

from tetra.errors import ExportError

log = logging.getLogger(__name__)

MIB = 1024 * 1024
DEFAULT_BUFFER_SIZE = 64 * 1024
DEFAULT_MAX_PENDING = 16 * MIB


def parse_perm(text: str) -> int:
    """Parse ``--export-file-perm`` ("600", "0640", "0o644") into a mode."""
    digits = text.strip().lower().removeprefix("0o")
    if not digits or any(c not in "01234567" for c in digits) or int(digits, 8) > 0o7777:
        raise ExportError(f"invalid file permission {text!r}: expected an octal mode such as 600")
    return int(digits, 8)


class RotatingFile:
    """An append-only JSON lines file that rotates by size and age.

    Not a file object: :meth:`write` takes one whole line (a trailing newline is
    added when missing). Thread-safe, so a timer may call :meth:`flush` while
    the exporter writes; the exporter should call :meth:`flush` whenever its
    queue runs empty, so a quiet stream does not sit in memory.
    """

    def __init__(
        self,
        path: str,
        max_size_mb: float = 10,
        max_backups: int = 5,
        perm: int = 0o600,
        rotation_interval: float | None = None,
        compress: bool = False,
        *,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        max_pending: int = DEFAULT_MAX_PENDING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not path:
            raise ExportError("export file name is empty")
        if max_size_mb <= 0:
            raise ExportError(f"export file max size must be positive, got {max_size_mb} MB")
        if max_backups < 0:
            raise ExportError(f"export file max backups must be >= 0, got {max_backups}")
        if not 0 <= perm <= 0o7777:
            raise ExportError(f"invalid export file permission {perm:o}")
        if rotation_interval is not None and rotation_interval <= 0:
            raise ExportError(f"export file rotation interval must be positive, got {rotation_interval}")
        self._path = os.path.abspath(path)
        self._max_bytes = max(1, int(max_size_mb * MIB))
        self._max_backups = max_backups
        self._perm = perm
        self._interval = rotation_interval
        self._compress = compress
        self._buffer_size = buffer_size
        self._max_pending = max_pending
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: deque[bytes] = deque()
        self._pending_bytes = 0
        self._fd = -1
        self._regular = True
        self._size = 0  # bytes known to be in the current file
        self._opened_at = 0.0
        self._closed = False
        self._failures = 0  # errors in the current streak; 0 when healthy
        self._bytes_written = 0
        self._rotations = 0
        self._write_errors = 0
        self._lines_dropped = 0

    @property
    def path(self) -> str:
        """The absolute path of the current file."""
        return self._path

    @property
    def bytes_written(self) -> int:
        """Bytes handed to the kernel, across all files since construction."""
        return self._bytes_written

    @property
    def rotations(self) -> int:
        """How many times the file was rotated."""
        return self._rotations

    @property
    def write_errors(self) -> int:
        """How many open, write or rotation attempts failed with an OSError."""
        return self._write_errors

    @property
    def lines_dropped(self) -> int:
        """Lines given up on: beyond ``max_pending`` during a failure, or at close."""
        return self._lines_dropped

    @property
    def failing(self) -> bool:
        """Whether the last attempt to write failed (lines are kept and retried meanwhile)."""
        return self._failures > 0

    def write(self, line: bytes) -> None:
        """Queue one line; write the queue out once it reaches the buffer size.

        Never raises on I/O errors (see the module docstring); raises
        ``ValueError`` after :meth:`close`, like a closed file.
        """
        if not line.endswith(b"\n"):
            line += b"\n"
        with self._lock:
            if self._closed:
                raise ValueError(f"write to closed export file {self._path}")
            self._pending.append(line)
            self._pending_bytes += len(line)
            # While failing, retry on every write: recovery is noticed at once.
            if self._pending_bytes >= self._buffer_size or self._failures:
                self._drain()

    def flush(self) -> None:
        """Write every queued line to the kernel (no fsync)."""
        with self._lock:
            self._drain()

    def close(self) -> None:
        """Flush and close; lines that still cannot be written are counted as dropped."""
        with self._lock:
            if self._closed:
                return
            self._drain()
            if self._pending:
                log.error("export file %s closed with %d lines unwritten", self._path, len(self._pending))
                self._lines_dropped += len(self._pending)
                self._pending.clear()
                self._pending_bytes = 0
            self._close_fd()
            self._closed = True

    def __enter__(self) -> "RotatingFile":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals; all called with the lock held ------------------------------

    def _drain(self) -> None:
        """Write pending lines, rotating in between; record a failure, never raise."""
        try:
            while self._pending:
                if self._fd < 0:
                    self._open()
                if self._rotation_due(len(self._pending[0])):
                    self._rotate()
                    continue
                count, batch = self._next_batch()
                self._write_all(batch)
                for _ in range(count):
                    self._pending.popleft()
                self._pending_bytes -= len(batch)
                self._size += len(batch)
                self._bytes_written += len(batch)
        except OSError as err:
            self._fail(err)
            return
        if self._failures:
            log.warning(
                "export file %s writable again after %d failed attempts", self._path, self._failures
            )
            self._failures = 0

    def _rotation_due(self, next_len: int) -> bool:
        """Whether the next line belongs in a new file."""
        if not self._regular:
            return False
        expired = self._interval is not None and self._clock() - self._opened_at >= self._interval
        if self._size == 0:
            if expired:  # nothing to rotate away: the empty file counts as new
                self._opened_at = self._clock()
            return False
        return expired or self._size + next_len > self._max_bytes

    def _next_batch(self) -> tuple[int, bytes]:
        """The leading pending lines that fit in the current file (at least one)."""
        if not self._regular:
            return len(self._pending), b"".join(self._pending)
        room = self._max_bytes - self._size
        lines: list[bytes] = []
        total = 0
        for line in self._pending:
            if lines and total + len(line) > room:
                break
            lines.append(line)
            total += len(line)
        return len(lines), b"".join(lines)

    def _write_all(self, data: bytes) -> None:
        """Write ``data`` completely, or truncate back to the last whole line and raise."""
        view = memoryview(data)
        done = 0
        try:
            while done < len(view):
                done += os.write(self._fd, view[done:])
        except OSError:
            if done and self._regular:
                try:
                    os.ftruncate(self._fd, self._size)
                except OSError as trunc_err:
                    log.error("export file %s: cannot remove a partial line: %s", self._path, trunc_err)
            raise

    def _open(self) -> None:
        parent = os.path.dirname(self._path)
        os.makedirs(parent, mode=0o755, exist_ok=True)
        fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, self._perm)
        try:
            st = os.fstat(fd)
        except OSError:
            os.close(fd)
            raise
        self._regular = stat.S_ISREG(st.st_mode)
        if self._regular:
            self._set_perm(fd, st)
        self._fd = fd
        self._size = st.st_size if self._regular else 0
        self._opened_at = self._clock()

    def _set_perm(self, fd: int, st: os.stat_result) -> None:
        """Apply the configured mode, which the umask may have narrowed."""
        if stat.S_IMODE(st.st_mode) == self._perm:
            return
        try:
            os.fchmod(fd, self._perm)
        except OSError as err:  # not our file: writing still works
            log.warning("export file %s: cannot set mode %o: %s", self._path, self._perm, err)

    def _rotate(self) -> None:
        """Close the current file, shift backups, and open a new current file."""
        self._close_fd()
        self._remove_backups(keep=self._max_backups - 1)
        for i in range(self._max_backups - 1, 0, -1):
            for suffix in ("", ".gz"):
                _rename_if_exists(f"{self._path}.{i}{suffix}", f"{self._path}.{i + 1}{suffix}")
        if self._max_backups == 0:
            _unlink_if_exists(self._path)
        else:
            _rename_if_exists(self._path, f"{self._path}.1")
            if self._compress:
                self._gzip(f"{self._path}.1")
        self._rotations += 1
        self._open()

    def _remove_backups(self, keep: int) -> None:
        """Delete backups numbered above ``keep``, also those of an older, larger setting."""
        parent, base = os.path.split(self._path)
        pattern = re.compile(re.escape(base) + r"\.(\d+)(?:\.gz)?(?:\.tmp)?")
        for name in os.listdir(parent):
            m = pattern.fullmatch(name)
            if m and int(m[1]) > keep:
                _unlink_if_exists(os.path.join(parent, name))

    def _gzip(self, src: str) -> None:
        """Compress ``src`` to ``src.gz``; on failure keep ``src`` and count the error."""
        dst = src + ".gz"
        tmp = dst + ".tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, self._perm)
            with os.fdopen(fd, "wb") as raw:
                os.fchmod(fd, self._perm)
                with open(src, "rb") as plain, gzip.GzipFile(os.path.basename(src), "wb", 6, raw) as gz:
                    shutil.copyfileobj(plain, gz, MIB)
            os.replace(tmp, dst)
            os.unlink(src)
        except OSError as err:
            self._write_errors += 1
            log.warning("export file %s: cannot compress, kept uncompressed: %s", src, err)
            _unlink_if_exists(tmp)

    def _fail(self, err: OSError) -> None:
        self._write_errors += 1
        if not self._failures:
            log.warning(
                "export file %s: %s; events are kept in memory and the write retried", self._path, err
            )
        self._failures += 1
        self._close_fd()
        while self._pending_bytes > self._max_pending and self._pending:
            self._pending_bytes -= len(self._pending.popleft())
            self._lines_dropped += 1

    def _close_fd(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            try:
                os.close(fd)
            except OSError as err:
                log.warning("export file %s: close failed: %s", self._path, err)


def _rename_if_exists(src: str, dst: str) -> None:
    try:
        os.rename(src, dst)
    except FileNotFoundError:
        pass


def _unlink_if_exists(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
