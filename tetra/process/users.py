"""--username-metadata unix: ``process.user.name`` from the node's /etc/passwd.

The file is parsed by hand, not through getpwuid(3): NSS may ask LDAP or sssd,
and the agent thread must never wait on the network. The table is read again
when the file changes (its mtime and size, looked at no more than once a
second), so a user added while the agent runs is named within a second.
"""

import os
import time
from pathlib import Path

PASSWD = Path("/etc/passwd")
RECHECK_S = 1.0


def parse_passwd(text: str) -> dict[int, str]:
    """uid -> name of every well-formed line (the first name of a uid wins, as getpwuid's)."""
    names: dict[int, str] = {}
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[0] and not line.startswith("#"):
            try:
                names.setdefault(int(fields[2]), fields[0])
            except ValueError:
                continue
    return names


class UserNames:
    """Names of uids from a passwd file, kept current."""

    def __init__(self, path: Path = PASSWD) -> None:
        self.path = path
        self._names: dict[int, str] = {}
        self._stamp: tuple[int, int] | None = None
        self._checked = float("-inf")
        self.generation = 0  # changes when the table does: names made before are stale

    def refresh(self) -> int:
        """Read the file again if it changed (looked at no more than once a second); the generation."""
        now = time.monotonic()
        if now - self._checked >= RECHECK_S:
            self._checked = now
            self._reload()
        return self.generation

    def name(self, uid: int) -> str | None:
        self.refresh()
        return self._names.get(uid)

    def _reload(self) -> None:
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp != self._stamp:
                self._names = parse_passwd(self.path.read_text(errors="replace"))
                self._stamp = stamp
                self.generation += 1
        except OSError:
            if self._stamp is not None or self._names:
                self.generation += 1
            self._names, self._stamp = {}, None
