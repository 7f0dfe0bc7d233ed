"""Network hooks placed as cgroup sock_addr programs: deny without kprobes or BPF LSM.

Tetragon users deny a connection with ``Override`` on ``security_socket_connect``
(a kprobe with bpf_override_return) or on the ``socket_connect`` LSM hook. A
kernel with neither still runs cgroup sock_addr programs, which see every
``connect``, ``bind`` and unconnected UDP ``sendmsg`` of the processes in a
cgroup before the kernel acts on it, and may refuse it with an error. The
planner places these hooks there when their own mechanism cannot enforce:

=============================================  ============  ===================
policy hook                                    operation     attach types
=============================================  ============  ===================
kprobe ``security_socket_connect``,            connect       cgroup/connect4, 6
lsmhook ``socket_connect``, syscall ``connect``
... ``_bind``, ``bind``                        bind          cgroup/bind4, 6
... ``_sendmsg``, syscalls ``sendto``,         sendmsg       cgroup/sendmsg4, 6
``sendmsg``                                                  (UDP, unconnected)
=============================================  ============  ===================

Such a program knows the address (family, IP, port) and the socket (family,
type, protocol), nothing else: a hook argument that is neither is left out of
the event, and a filter on one is refused with its location. The programs
attach to the cgroup named by the policy's ``cgroup-path`` option, else to the
cgroup v2 root (every process); they stay attached only while the agent's
link descriptors are open, so a crashed agent leaves no rule behind.
"""

import os
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from tetra.errors import KernelError
from tetra.kernel.mounts import cgroup2_mount

CGROUP_OPTION = "cgroup-path"


class NetOp(str, Enum):
    CONNECT = "connect"
    BIND = "bind"
    SENDMSG = "sendmsg"


@dataclass(frozen=True)
class NetHook:
    """Which arguments of a hook a sock_addr program can supply."""

    op: NetOp
    sockaddr: int | None  # index of the struct sockaddr argument
    sock: int | None  # index of the struct socket / sock argument


KERNEL_FUNCTIONS = {
    "security_socket_connect": NetHook(NetOp.CONNECT, 1, 0),
    "security_socket_bind": NetHook(NetOp.BIND, 1, 0),
    "security_socket_sendmsg": NetHook(NetOp.SENDMSG, None, 0),
}
LSM_HOOKS = {
    "socket_connect": NetHook(NetOp.CONNECT, 1, 0),
    "socket_bind": NetHook(NetOp.BIND, 1, 0),
    "socket_sendmsg": NetHook(NetOp.SENDMSG, None, 0),
}
SYSCALLS = {
    "connect": NetHook(NetOp.CONNECT, 1, None),
    "bind": NetHook(NetOp.BIND, 1, None),
    "sendto": NetHook(NetOp.SENDMSG, 4, None),
    "sendmsg": NetHook(NetOp.SENDMSG, None, None),
}

# bcc's BPFAttachType names of the IPv4 and IPv6 programs of each operation.
ATTACH_TYPES = {
    NetOp.CONNECT: ("CGROUP_INET4_CONNECT", "CGROUP_INET6_CONNECT"),
    NetOp.BIND: ("CGROUP_INET4_BIND", "CGROUP_INET6_BIND"),
    NetOp.SENDMSG: ("CGROUP_UDP4_SENDMSG", "CGROUP_UDP6_SENDMSG"),
}


def cgroup_dir(option: str | None) -> str:
    """The cgroup v2 directory the programs attach to: the option's, else the root.

    A relative option is taken from the cgroup2 mount; either way the directory
    must exist inside that mount (KernelError otherwise).
    """
    root = Path(cgroup2_mount())
    if not option:
        return str(root)
    path = Path(os.path.normpath(root / option))
    if path != root and root not in path.parents:
        raise KernelError(f"{CGROUP_OPTION} {option!r} is not inside the cgroup v2 mount {root}")
    if not path.is_dir():
        raise KernelError(f"{CGROUP_OPTION} {option!r}: no cgroup directory {path}")
    return str(path)
