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
* The file must be a regular file. The agent runs as root and the log
  directory may be writable by others, so a symbolic link, a FIFO or a device
  at the path is refused (:class:`ExportError` at start, a counted error
  later), the file is opened with ``O_NOFOLLOW``, and the gzip temporary file
  is created with ``O_EXCL`` (a leftover one is unlinked, never written
  through). Renames and unlinks act on a link itself, never on its target.
* Someone else may rotate the file (logrotate: rename or delete, then SIGHUP).
  :meth:`reopen` starts a new file at the path; :meth:`flush`, which the agent
  calls every tick, also compares the path with the open file (device and
  inode) and reopens when the file was moved away, deleted or replaced, so
  events never go on into a file nobody reads. Pending lines go to the new
  file: each line is still written exactly once.
* An ``OSError`` (a full disk, a directory replaced by a file) never reaches
  the caller: it is counted in :attr:`RotatingFile.write_errors`, logged once
  per streak of failures, and retried after a backoff that doubles from
  ``BACKOFF_MIN`` to ``BACKOFF_MAX`` seconds, so a full disk costs a few
  system calls a second rather than a busy loop, and recovery is noticed
  within ``BACKOFF_MAX`` plus one flush. When a write stops part way (the disk
  filled up), the whole lines it wrote are kept and only a partial last line
  is truncated away; a retry sends at most ``PROBE_BYTES``, then full batches
  once that worked. So a line is never split or duplicated, and whatever room
  the disk has is used. While the failure lasts, pending lines are kept up to
  ``max_pending`` bytes; older ones beyond that are dropped and counted in
  :attr:`RotatingFile.lines_dropped` and :attr:`RotatingFile.bytes_dropped`.
* Compression runs synchronously at rotation: the exporter is already behind a
  bounded queue (tetra/export/handoff.py) and runs this on its own writer
  thread, and a synchronous step keeps backup renames race-free.
"""

import errno
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
from itertools import repeat
from types import TracebackType

from tetra.errors import ExportError

log = logging.getLogger(__name__)

MIB = 1024 * 1024
DEFAULT_BUFFER_SIZE = 64 * 1024
DEFAULT_MAX_PENDING = 16 * MIB
BACKOFF_MIN = 0.1  # seconds before the first retry after a failure
BACKOFF_MAX = 2.0  # longest wait between retries: bounds how late a recovery is noticed
PROBE_BYTES = 64 * 1024  # most bytes a retry sends before one write has worked again

_OPEN_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
_TMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
_READ_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW


def parse_perm(text: str) -> int:
    """Parse ``--export-file-perm`` ("600", "0640", "0o644") into a mode."""
    digits = text.strip().lower().removeprefix("0o")
    if not digits or any(c not in "01234567" for c in digits) or int(digits, 8) > 0o7777:
        raise ExportError(f"invalid file permission {text!r}: expected an octal mode such as 600")
    return int(digits, 8)


def _not_regular(path: str, mode: int) -> str | None:
    """Why ``path`` (of this ``st_mode``, from lstat) cannot be the export file; None if it can."""
    if stat.S_ISREG(mode):
        return None
    what = ("a symbolic link" if stat.S_ISLNK(mode) else "a directory" if stat.S_ISDIR(mode)
            else "a FIFO" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "not a regular file")
    return f"{path} is {what}: the export file must be a regular file (links are not followed)"


class RotatingFile:
    """An append-only JSON lines file that rotates by size and age.

    Not a file object: :meth:`write` takes one whole line (a trailing newline is
    added when missing). Thread-safe, so a timer may call :meth:`flush` while
    the exporter writes; the exporter should call :meth:`flush` whenever its
    queue runs empty or at least every second or so, so a quiet stream does not
    sit in memory and an outside rotation is noticed.
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
        try:
            refused = _not_regular(self._path, os.lstat(self._path).st_mode)
        except OSError:  # missing (created at the first write) or unreachable for now (retried)
            refused = None
        if refused:
            raise ExportError(refused)
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
        self._size = 0  # bytes known to be in the current file
        self._opened_at = 0.0
        self._closed = False
        self._failures = 0  # errors in the current streak; 0 when healthy
        self._last_error = ""
        self._retry_at = 0.0  # while failing: no attempt before this clock time
        self._backoff = 0.0
        self._bytes_written = 0
        self._rotations = 0
        self._write_errors = 0
        self._lines_dropped = 0
        self._bytes_dropped = 0
        self._reopens = 0
        self._last_reopen = ""

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
    def bytes_dropped(self) -> int:
        """The bytes of :attr:`lines_dropped`."""
        return self._bytes_dropped

    @property
    def reopens(self) -> int:
        """How many times the file was reopened: on request (SIGHUP) or after an outside rotation."""
        return self._reopens

    @property
    def last_reopen(self) -> str:
        """Why the file was last reopened ("" if never): the reason given to :meth:`reopen`,
        or "moved away", "deleted", "replaced"."""
        return self._last_reopen

    @property
    def failing(self) -> bool:
        """Whether the last attempt to write failed (lines are kept and retried meanwhile)."""
        return self._failures > 0

    @property
    def last_error(self) -> str:
        """The error of the current failure streak ("" when healthy)."""
        return self._last_error if self._failures else ""

    @property
    def unwritten(self) -> int:
        """Lines taken by :meth:`write` and not in the file yet. Read without the lock: the
        count a stuck writer (a frozen disk) leaves behind, when the process gives up on it."""
        return len(self._pending)

    def write(self, line: bytes) -> None:
        """Queue one line; write the queue out once it reaches the buffer size.

        Never raises on I/O errors (see the module docstring); raises
        ``ValueError`` after :meth:`close`, like a closed file.
        """
        self.write_lines([line])

    def write_lines(self, lines: list[bytes]) -> None:
        """:meth:`write` for several lines at once, all queued before any is written
        (so :attr:`unwritten` covers them all while a write blocks)."""
        if not all(map(bytes.endswith, lines, repeat(b"\n"))):  # the check in C: lines come by the thousand
            lines = [line if line.endswith(b"\n") else line + b"\n" for line in lines]
        with self._lock:
            if self._closed:
                raise ValueError(f"write to closed export file {self._path}")
            self._pending.extend(lines)
            self._pending_bytes += sum(map(len, lines))
            if self._failures:
                if self._clock() >= self._retry_at:
                    self._drain()
                else:
                    self._trim()
            elif self._pending_bytes >= self._buffer_size:
                self._drain()

    def flush(self) -> None:
        """Write every queued line to the kernel (no fsync), unless a retry is not due yet;
        first reopen the file if it was moved away, deleted or replaced since it was opened."""
        with self._lock:
            if self._closed:
                return
            moved = self._outside_rotation()
            if moved:
                self._reopen(moved)
            elif not self._failures or self._clock() >= self._retry_at:
                self._drain()

    def reopen(self, reason: str) -> None:
        """Close the file and open the path again now, e.g. on SIGHUP after logrotate renamed it.

        A retry after a failure is due at once too: the operator may have fixed the disk.
        """
        with self._lock:
            if not self._closed:
                self._reopen(reason)

    def close(self) -> None:
        """Flush and close; lines that still cannot be written are counted as dropped."""
        with self._lock:
            if self._closed:
                return
            self._drain()
            if self._pending:
                log.error("export file %s closed with %d lines unwritten", self._path, len(self._pending))
                self._lines_dropped += len(self._pending)
                self._bytes_dropped += self._pending_bytes
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

    def _drain(self, open_now: bool = False) -> None:
        """Write pending lines, rotating in between; record a failure, never raise."""
        probing = self._failures > 0
        try:
            if open_now and self._fd < 0:
                self._open()
            while self._pending:
                if self._fd < 0:
                    self._open()
                if self._rotation_due(len(self._pending[0])):
                    self._rotate()
                    continue
                room = self._max_bytes - self._size
                count, batch = self._next_batch(min(room, PROBE_BYTES) if probing else room)
                self._write_batch(count, batch)
                probing = False
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
        expired = self._interval is not None and self._clock() - self._opened_at >= self._interval
        if self._size == 0:
            if expired:  # nothing to rotate away: the empty file counts as new
                self._opened_at = self._clock()
            return False
        return expired or self._size + next_len > self._max_bytes

    def _next_batch(self, limit: int) -> tuple[int, bytes]:
        """The leading pending lines that fit in ``limit`` bytes (at least one)."""
        lines: list[bytes] = []
        total = 0
        for line in self._pending:
            if lines and total + len(line) > limit:
                break
            lines.append(line)
            total += len(line)
        return len(lines), b"".join(lines)

    def _write_batch(self, count: int, batch: bytes) -> None:
        """Write the first ``count`` pending lines (joined in ``batch``) and take them off the queue.

        When a write stops part way, the whole lines written are kept and taken off,
        a partial last line is truncated away, and the error is raised.
        """
        view = memoryview(batch)
        done = 0
        try:
            while done < len(view):
                done += os.write(self._fd, view[done:])
        except OSError:
            lines, kept = self._whole_lines(count, done)
            if done > kept:
                try:
                    os.ftruncate(self._fd, self._size + kept)
                except OSError as trunc_err:
                    log.error("export file %s: cannot remove a partial line: %s", self._path, trunc_err)
            self._taken(lines, kept)
            raise
        self._taken(count, len(batch))

    def _whole_lines(self, count: int, done: int) -> tuple[int, int]:
        """How many of the first ``count`` pending lines, and their bytes, lie within ``done`` bytes."""
        lines = kept = 0
        for line in self._pending:
            if lines == count or kept + len(line) > done:
                break
            lines += 1
            kept += len(line)
        return lines, kept

    def _taken(self, lines: int, size: int) -> None:
        """``lines`` pending lines of ``size`` bytes are in the file now."""
        for _ in range(lines):
            self._pending.popleft()
        self._pending_bytes -= size
        self._size += size
        self._bytes_written += size

    def _open(self) -> None:
        """Open (or create) the path for appending; refuse anything but a regular file.

        O_NOFOLLOW refuses a link; O_NONBLOCK keeps a FIFO from blocking the open
        (it is refused right after by its type, and the flag is cleared again).
        """
        parent = os.path.dirname(self._path)
        os.makedirs(parent, mode=0o755, exist_ok=True)
        try:
            fd = os.open(self._path, _OPEN_FLAGS, self._perm)
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise OSError(errno.ELOOP, _not_regular(self._path, stat.S_IFLNK)) from err
            raise
        try:
            st = os.fstat(fd)
            refused = _not_regular(self._path, st.st_mode)
            if refused:
                raise OSError(errno.EINVAL, refused)
            os.set_blocking(fd, True)
        except OSError:
            os.close(fd)
            raise
        self._set_perm(fd, st)
        self._fd = fd
        self._size = st.st_size
        self._opened_at = self._clock()

    def _set_perm(self, fd: int, st: os.stat_result) -> None:
        """Apply the configured mode, which the umask may have narrowed."""
        if stat.S_IMODE(st.st_mode) == self._perm:
            return
        try:
            os.fchmod(fd, self._perm)
        except OSError as err:  # not our file: writing still works
            log.warning("export file %s: cannot set mode %o: %s", self._path, self._perm, err)

    def _outside_rotation(self) -> str:
        """Why the open file is no longer the one at the path ("" if it still is)."""
        if self._fd < 0:
            return ""
        try:
            st = os.fstat(self._fd)
        except OSError:
            return ""
        try:
            at_path = os.stat(self._path, follow_symlinks=False)
        except OSError:
            return "deleted" if st.st_nlink == 0 else "moved away"
        if (at_path.st_dev, at_path.st_ino) != (st.st_dev, st.st_ino):
            return "replaced"
        return ""

    def _reopen(self, reason: str) -> None:
        """Close the current file and open the path again at once."""
        self._close_fd()
        self._reopens += 1
        self._last_reopen = reason
        log.info("export file %s reopened (%s)", self._path, reason)
        self._retry_at = 0.0
        self._drain(open_now=True)

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
            fd = _create_exclusive(tmp, self._perm)
            with os.fdopen(fd, "wb") as raw:
                os.fchmod(fd, self._perm)
                with (os.fdopen(os.open(src, _READ_FLAGS), "rb") as plain,
                      gzip.GzipFile(os.path.basename(src), "wb", 6, raw) as gz):
                    shutil.copyfileobj(plain, gz, MIB)
            os.replace(tmp, dst)
            os.unlink(src)
        except OSError as err:
            self._write_errors += 1
            log.warning("export file %s: cannot compress, kept uncompressed: %s", src, err)
            _unlink_if_exists(tmp)

    def _fail(self, err: OSError) -> None:
        """Count a failure and schedule the retry after a doubling backoff."""
        self._write_errors += 1
        if not self._failures:
            log.warning(
                "export file %s: %s; events are kept in memory and the write retried", self._path, err
            )
        self._backoff = min(self._backoff * 2, BACKOFF_MAX) if self._failures else BACKOFF_MIN
        self._retry_at = self._clock() + self._backoff
        self._failures += 1
        self._last_error = err.strerror or str(err)
        self._close_fd()
        self._trim()

    def _trim(self) -> None:
        """Drop the oldest pending lines beyond ``max_pending`` bytes, counting them."""
        while self._pending_bytes > self._max_pending and self._pending:
            line = self._pending.popleft()
            self._pending_bytes -= len(line)
            self._lines_dropped += 1
            self._bytes_dropped += len(line)

    def _close_fd(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            try:
                os.close(fd)
            except OSError as err:
                log.warning("export file %s: close failed: %s", self._path, err)


def _create_exclusive(path: str, perm: int) -> int:
    """Create ``path`` for writing, never through an existing file or link.

    One found there (a temporary file left by a crash, or one planted) is
    unlinked, which removes a link and not its target, and creation retried once.
    """
    try:
        return os.open(path, _TMP_FLAGS, perm)
    except FileExistsError:
        log.warning("removing a leftover %s", path)
        os.unlink(path)
        return os.open(path, _TMP_FLAGS, perm)


def _rename_if_exists(src: str, dst: str) -> None:
    """rename(2): moves a link itself, and replaces a link at ``dst``; never follows one."""
    try:
        os.rename(src, dst)
    except FileNotFoundError:
        pass


def _unlink_if_exists(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
