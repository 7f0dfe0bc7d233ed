"""``--pid-file``: the agent's pid, for ``kill -HUP`` from logrotate's postrotate.

The file holds the pid and stays open and ``flock``-ed while the agent runs, so
``pkill -HUP -L -F PATH`` signals only a live agent: a stale file (the agent
was killed) is not locked, and its pid, perhaps reused by another process, is
not signalled. A second agent with the same pid file is refused at start.
"""

import errno
import fcntl
import os
from types import TracebackType

from tetra.errors import TetraError


class PidFileError(TetraError):
    """The pid file cannot be written, or another agent holds it."""


class PidFile:
    """Write and lock the pid file for the ``with`` block; remove it after."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self._fd = -1

    def __enter__(self) -> "PidFile":
        try:
            os.makedirs(os.path.dirname(self.path), mode=0o755, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as err:
            why = "a symbolic link" if err.errno == errno.ELOOP else err.strerror
            raise PidFileError(f"pid file {self.path}: {why}") from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise PidFileError(f"pid file {self.path} is held by another agent (pid {other})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Remove the file if it is still ours (not replaced meanwhile), then unlock."""
        try:
            ours = os.fstat(self._fd)
            at_path = os.stat(self.path, follow_symlinks=False)
            if (ours.st_dev, ours.st_ino) == (at_path.st_dev, at_path.st_ino):
                os.unlink(self.path)
        except OSError:
            pass  # already gone: nothing to clean up
        os.close(self._fd)
        self._fd = -1
