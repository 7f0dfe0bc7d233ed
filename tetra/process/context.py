"""The process context Tetragon shows with --enable-process-cred, --enable-process-ns and
--username-metadata.

    ExecRecord.cred (kernel at exec, or /proc) ──> process.cap, process_credentials, binary_properties
    ExecRecord.ns (+ the parent's context)     ──> process.ns (is_host: PID 1's namespace), in_init_tree
    ExecRecord.uid, in the host's mount ns     ──> process.user.name (--username-metadata unix)

A ProcessContext turns a record into those Process members once, when the process
enters the cache; the Process keeps them (Process.context), so every event of the
process, and of its children that name it as parent, reuses the same object.
With the flags off the agent makes none, and the JSON is what it was without them.
"""

import logging
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tetra.decode.credentials import SECUREBITS, bit_names, capabilities_json
from tetra.decode.process import ExecRecord
from tetra.process.model import Process
from tetra.process.procfs import namespaces
from tetra.process.users import UserNames
from tetra.wire.layouts import NS_NAMES

Json = dict[str, Any]
log = logging.getLogger(__name__)
_MNT = NS_NAMES.index("mnt")
_PID = NS_NAMES.index("pid")
_MISSING: Any = object()
RENDERED_MAX = 4096  # distinct contexts kept rendered; past it the table starts over


def host_namespaces(proc: Path = Path("/proc")) -> dict[str, int]:
    """The inode of each namespace of the host: PID 1's, as Tetragon takes them. Where PID 1's
    cannot be read (a sandbox may deny even root that), the agent's own, which must run in
    the host's namespaces to see every process; 0 where the kernel has no such namespace."""
    pid_dir = proc / "1"
    try:
        os.stat(pid_dir / "ns" / "user")
    except PermissionError:
        log.warning("cannot read /proc/1/ns: taking the agent's own namespaces as the host's")
        pid_dir = proc / "self"
    except OSError:
        pass
    return dict(zip(NS_NAMES, namespaces(pid_dir)))


def binary_properties(cred: tuple[Any, ...]) -> Json:
    """Tetragon's BinaryProperties of an exec (ExecRecord.cred): the ids a setuid/setgid file
    gave, the privileges it raised (to root by setuid/setgid; file capabilities when the
    kernel ran the image in secure mode for neither), and, for a file with no links left
    (deleted, or a memfd), its inode. Empty when the exec changed nothing of that."""
    uid, gid, _, _, euid, egid = cred[:6]
    permitted = cred[10]
    nlink, ino, file_uid, file_gid, mode, secure = cred[16:22]
    out: Json = {}
    raised: list[str] = []
    if mode is not None and mode & stat.S_ISUID and euid == file_uid and euid != uid:
        out["setuid"] = euid
        if euid == 0:
            raised.append("PRIVILEGES_RAISED_EXEC_FILE_SETUID")
    setgid_file = mode is not None and mode & (stat.S_ISGID | stat.S_IXGRP) == stat.S_ISGID | stat.S_IXGRP
    if setgid_file and egid == file_gid and egid != gid:  # S_ISGID without group x: locking, not set-id
        out["setgid"] = egid
        if egid == 0:
            raised.append("PRIVILEGES_RAISED_EXEC_FILE_SETGID")
    if secure and not out and permitted and uid != 0 and euid != 0:
        raised.append("PRIVILEGES_RAISED_EXEC_FILE_CAP")
    if raised:
        out["privileges_changed"] = raised
    if nlink == 0 and ino:
        out["file"] = {"inode": {"number": str(ino), "links": 0}}  # uint64: a string in protojson
    return out


class ProcessContext:
    """Makes the Process members the agent's flags ask for from an ExecRecord."""

    def __init__(self, cred: bool, ns: bool, host_ns: Mapping[str, int], users: UserNames | None = None) -> None:
        """``users``: name uids (needs ExecRecord.ns: only processes in the host's mount
        namespace are named, a container's uids mean other users)."""
        self.cred = cred
        self.ns = ns
        self.host_ns = dict(host_ns)
        self.users = users
        self._host_mnt = self.host_ns.get("mnt", 0)
        self._rendered: dict[tuple[Any, ...], Json | None] = {}

    def __call__(self, rec: ExecRecord, parent: Process | None = None) -> Json | None:
        """``cap``, ``process_credentials``, ``binary_properties``, ``ns``, ``in_init_tree`` and
        ``user`` of the process whose parent is ``parent``, or None if none applies. Processes
        with the same context share one object (read-only, as events are): an exec storm
        renders it once, not once per process."""
        users = self.users
        ns = rec.ns[:len(NS_NAMES)] if rec.ns is not None else None
        tree = self._in_init_tree(rec.ns, parent) if self.ns and rec.ns is not None else None
        key = (rec.cred, ns, tree, rec.uid, users.refresh() if users is not None else 0)
        fields = self._rendered.get(key, _MISSING)
        if fields is _MISSING:
            if len(self._rendered) >= RENDERED_MAX:
                self._rendered.clear()
            fields = self._rendered[key] = self._render(rec, tree)
        return fields

    def _in_init_tree(self, ns: tuple[int, ...], parent: Process | None) -> bool:
        """Whether the process descends, inside its pid namespace, from that namespace's init: a
        container's first process and what it started, not what entered later (kubectl exec,
        nsenter: their parents live outside). The host's own tree is not a container's."""
        pid_ns = ns[_PID]
        if len(ns) > len(NS_NAMES) and ns[-1] == 1:
            return pid_ns != self.host_ns.get("pid")
        context = parent.context if parent is not None else None
        return bool(context and context.get("in_init_tree")
                    and context["ns"]["pid"].get("inum") == pid_ns)

    def _render(self, rec: ExecRecord, in_init_tree: bool | None) -> Json | None:
        out: Json = {}
        if self.cred and rec.cred is not None:
            self._credentials(out, rec.cred)
        if self.ns and rec.ns is not None:
            out["ns"] = {name: self._namespace(name, inum) for name, inum in zip(NS_NAMES, rec.ns)}
            out["in_init_tree"] = in_init_tree
        if self.users is not None and rec.ns is not None and rec.ns[_MNT] == self._host_mnt != 0:
            name = self.users.name(rec.uid)
            if name is not None:
                out["user"] = {"name": name}
        return out or None

    def _namespace(self, name: str, inum: int | None) -> Json:
        """Tetragon's Namespace message: zero and false left out, as protojson does."""
        if not inum:
            return {}
        return {"inum": inum, "is_host": True} if inum == self.host_ns.get(name) else {"inum": inum}

    def _credentials(self, out: Json, cred: tuple[int | None, ...]) -> None:
        (uid, gid, suid, sgid, euid, egid, fsuid, fsgid, securebits, user_ns,
         permitted, effective, inheritable, level, owner, group) = cred[:16]
        binary = binary_properties(cred)
        if binary:
            out["binary_properties"] = binary
        caps = capabilities_json(permitted or 0, effective or 0, inheritable or 0)
        if caps:
            out["cap"] = caps
        creds: Json = {"uid": uid, "gid": gid, "euid": euid, "egid": egid, "suid": suid, "sgid": sgid,
                       "fsuid": fsuid, "fsgid": fsgid}
        if securebits:
            creds["securebits"] = bit_names(securebits, SECUREBITS)
        if caps:
            creds["caps"] = caps
        userns: Json = {key: value for key, value in (("level", level), ("uid", owner), ("gid", group))
                        if value is not None}
        namespace = self._namespace("user", user_ns)
        if namespace:
            userns["ns"] = namespace
        creds["user_ns"] = userns
        out["process_credentials"] = creds
