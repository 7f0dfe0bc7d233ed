"""Where the API listens: ``unix:///path`` or ``host:port``, and the checks a socket path needs.

A unix socket is the default and the only address bound unless the user names
another: local clients are authorized by the file system. So the socket is
created mode 0600 in a directory of its own (created 0700), and the agent
refuses a path it cannot trust: something there that is not a socket, a
socket or directory owned by another user, a directory others may write
without the sticky bit, or a socket another agent is still serving. A socket
left behind by an agent that died is ours and stale: it is replaced.

Every address is also bound once, and let go, when the agent starts
(``check_bindable``): an address nobody can serve at (a path under a file, a
read-only directory, a host that does not resolve or is not this machine's, a
port in use) is refused in one line before any BPF program loads, not by gRPC
after all of them did.
"""

import errno
import ipaddress
import os
import socket
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tetra.errors import TetraError

MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes with the terminating NUL


class AddressError(TetraError):
    """A server address that is malformed, or a socket path the agent refuses."""


@dataclass(frozen=True)
class Address:
    """One API address, as the user wrote it and as gRPC takes it."""

    text: str
    unix_path: Path | None = None  # set for unix:// addresses
    host: str = ""
    port: int = 0

    @property
    def target(self) -> str:
        """The gRPC target: ``unix:/abs/path``, ``host:port`` or ``[v6]:port``."""
        if self.unix_path is not None:
            return f"unix:{self.unix_path}"
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return self.text


def parse_address(text: str) -> Address:
    """``unix:///abs/path`` (or ``unix:/abs/path``), ``host:port``, ``[v6]:port``."""
    if text.startswith("unix:"):
        path = text[len("unix:"):]
        if path.startswith("//"):
            path = path[2:]
        if not path.startswith("/") or path.endswith("/") or "\0" in path:
            raise AddressError(f"{text!r}: a unix socket address is unix:///absolute/path/to/socket")
        if len(path.encode()) > MAX_SOCKET_PATH:
            raise AddressError(f"{text!r}: a unix socket path is at most {MAX_SOCKET_PATH} bytes")
        return Address(text, unix_path=Path(path))
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if not _is_ipv6(host):
            host = ""
    elif any(c in ":[] " for c in host) or not host.isprintable():  # "::1:80" is ambiguous: [::1]:80
        host = ""
    if not sep or not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise AddressError(f"{text!r}: expected unix:///path/to/socket or host:port (e.g. localhost:54321)")
    return Address(text, host=host, port=int(port))


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
        return True
    except ValueError:
        return False


def prepare_socket_path(path: Path) -> None:
    """Make ``path`` ready to bind, or refuse with the reason (see the module docstring)."""
    parent = path.parent
    try:
        if not parent.exists():
            parent.mkdir(mode=0o700, parents=True)
            os.chmod(parent, 0o700)  # mkdir's mode is cut by the umask; this is exact
        st = parent.stat()
    except OSError as err:  # a file on the way (ENOTDIR), a read-only or virtual file system
        raise AddressError(f"cannot serve at {path}: cannot create {parent}: {err.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise AddressError(f"cannot serve at {path}: {parent} is not a directory")
    if st.st_uid not in (0, os.geteuid()):
        raise AddressError(f"cannot serve at {path}: {parent} belongs to uid {st.st_uid}, not to this user")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not st.st_mode & stat.S_ISVTX:
        raise AddressError(f"cannot serve at {path}: {parent} is writable by others (mode "
                           f"{stat.S_IMODE(st.st_mode):04o}) without the sticky bit")
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise AddressError(f"cannot serve at {path}: it exists and is not a socket (remove it, or choose "
                           "another --server-address)")
    if st.st_uid != os.geteuid():
        raise AddressError(f"cannot serve at {path}: the socket there belongs to uid {st.st_uid}, not to this "
                           "user (remove it, or choose another --server-address)")
    if _listening(path):
        raise AddressError(f"cannot serve at {path}: another agent is serving there")
    path.unlink()  # stale: left by an agent that did not stop cleanly


def check_bindable(address: Address) -> None:
    """Bind a socket at ``address`` and let it go, or refuse with the system's reason.

    For a unix address, call after ``prepare_socket_path`` (nothing is there
    then): the probe's socket file is removed again.
    """
    if address.unix_path is not None:
        _probe(address, socket.AF_UNIX, str(address.unix_path))
        address.unix_path.unlink()
        return
    try:
        candidates = socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise AddressError(f"cannot serve at {address}: {address.host}: {err.strerror}") from None
    failure: AddressError | None = None
    for family, _type, _proto, _name, sockaddr in candidates:
        try:
            _probe(address, family, sockaddr)
            return  # gRPC serves if any of the host's addresses binds (localhost: 127.0.0.1 and ::1)
        except AddressError as err:
            failure = failure or err
    assert failure is not None  # getaddrinfo answers at least one address or raises
    raise failure


def _probe(address: Address, family: int, sockaddr: str | tuple[Any, ...]) -> None:
    """Bind (never listen) and close; a unix socket is born 0600 like the agent's, and left for the caller."""
    probe = socket.socket(family, socket.SOCK_STREAM)
    old_umask = os.umask(0o177) if family == socket.AF_UNIX else None
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC does: TIME_WAIT is no conflict
        probe.bind(sockaddr)
    except OSError as err:
        raise AddressError(f"cannot serve at {address.unix_path or address}: {err.strerror}") from None
    finally:
        if old_umask is not None:
            os.umask(old_umask)
        probe.close()


def _listening(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1)
        probe.connect(str(path))
        return True
    except OSError as err:
        return err.errno not in (errno.ECONNREFUSED, errno.ENOENT)
    finally:
        probe.close()
