"""The process context (--enable-process-cred, --enable-process-ns, --username-metadata):
decoded from the exec record, read from the real /proc and passwd files, rendered as
Tetragon's Process members."""

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import orjson
import pytest

from tetra.decode import process  # noqa: F401  (registers the decoders)
from tetra.decode.process import CloneRecord, ExecRecord
from tetra.decode.registry import decode
from tetra.api.convert import to_dict, to_message
from tetra.node import BootClock
from tetra.observer.recording import process_from_json, process_to_json
from tetra.process.events import exec_event
from tetra.process import procfs, users
from tetra.process.cache import ProcessCache
from tetra.decode.credentials import TETRAGON_CAPABILITIES, capabilities_json
from tetra.process.context import ProcessContext, binary_properties
from tetra.process.users import UserNames, parse_passwd
from tetra.wire import layouts
from tetra.wire.constants import ExecFlags, Op

HOST = {name: 4026531830 + i for i, name in enumerate(layouts.NS_NAMES)}
HOST_NS = (*HOST.values(), 4242)  # struct tetra_ns: the inodes, then the pid in its own namespace
# uid gid suid sgid euid egid fsuid fsgid securebits user_ns permitted effective inheritable level owner group,
# then the executable: links inode uid gid mode, and AT_SECURE
SETUID_CRED = (1000, 1000, 0, 1000, 0, 1000, 0, 1000, 0b10001, HOST["user"], 1 << 21 | 1 << 1, 1 << 21, 0, 0, 0, 0,
               1, 777, 0, 0, 0o104755, 1)


def wait_for_exec(pid: int, binary: str, timeout: float = 30) -> None:
    """Until the child runs ``binary`` (slow on a loaded machine)."""
    deadline = time.monotonic() + timeout
    while os.readlink(f"/proc/{pid}/exe") != binary:
        assert time.monotonic() < deadline, f"{pid} did not exec {binary} in {timeout}s"
        time.sleep(0.02)


def exec_with_context(cred: tuple[int, ...] | None, ns: tuple[int, ...] | None) -> bytes:
    """An exec record with the context blocks the probe writes under TETRA_PROCESS_CRED/_NS."""
    fname, cwd, args, cg = b"/usr/bin/su\0", b"/tmp", b"su\0", b"\0"
    flags, context = 0, b""
    if cred is not None:
        flags |= ExecFlags.CRED
        context += layouts.EXEC_CRED.codec.pack(*cred)
    if ns is not None:
        flags |= ExecFlags.NS
        context += layouts.NS.codec.pack(*ns)
    size = layouts.EXEC.size + len(context) + len(fname) + len(cwd) + len(args) + len(cg)
    head = layouts.EXEC.codec.pack(Op.EXEC, 0, 0, size, 5, 42, 42, 7, 1000, 1000, 1000, 99,
                                   len(fname), len(cwd), len(args), len(cg), flags, 0)
    return head + context + fname + cwd + args + cg


def test_decode_reads_the_context_between_header_and_filename() -> None:
    ns = HOST_NS
    rec = decode(exec_with_context(SETUID_CRED, ns))
    assert isinstance(rec, ExecRecord)
    assert rec.cred == SETUID_CRED and rec.ns == ns
    assert (rec.filename, rec.cwd, rec.argv, rec.flags) == ("/usr/bin/su", "/tmp", ["su"], ["execve"])
    only_ns = decode(exec_with_context(None, ns))
    assert only_ns.cred is None and only_ns.ns == ns and only_ns.filename == "/usr/bin/su"
    plain = decode(exec_with_context(None, None))
    assert plain.cred is None and plain.ns is None


def test_credentials_and_caps_in_tetragons_shape() -> None:
    rec = decode(exec_with_context(SETUID_CRED, None))
    fields = ProcessContext(cred=True, ns=False, host_ns=HOST)(rec)
    assert fields == {
        "binary_properties": {"setuid": 0, "privileges_changed": ["PRIVILEGES_RAISED_EXEC_FILE_SETUID"]},
        "cap": {"permitted": ["DAC_OVERRIDE", "CAP_SYS_ADMIN"], "effective": ["CAP_SYS_ADMIN"]},
        "process_credentials": {
            "uid": 1000, "gid": 1000, "euid": 0, "egid": 1000, "suid": 0, "sgid": 1000, "fsuid": 0, "fsgid": 1000,
            "securebits": ["SecBitNoRoot", "SecBitKeepCaps"],
            "caps": {"permitted": ["DAC_OVERRIDE", "CAP_SYS_ADMIN"], "effective": ["CAP_SYS_ADMIN"]},
            "user_ns": {"level": 0, "uid": 0, "gid": 0, "ns": {"inum": HOST["user"], "is_host": True}},
        },
    }


def test_namespaces_host_and_not() -> None:
    ns = (*tuple(HOST.values())[:-1], 4026532999, 4242)  # a new user namespace
    fields = ProcessContext(cred=False, ns=True, host_ns=HOST)(decode(exec_with_context(None, ns)))
    assert fields is not None and list(fields) == ["ns", "in_init_tree"]
    assert fields["ns"]["uts"] == {"inum": HOST["uts"], "is_host": True}
    assert fields["ns"]["user"] == {"inum": 4026532999}  # false is left out, as protojson does
    assert list(fields["ns"]) == list(layouts.NS_NAMES)


def test_capability_names_are_tetragons() -> None:
    assert TETRAGON_CAPABILITIES[:3] == ("CAP_CHOWN", "DAC_OVERRIDE", "CAP_DAC_READ_SEARCH")
    assert TETRAGON_CAPABILITIES[40] == "CAP_CHECKPOINT_RESTORE"
    assert capabilities_json(0, 0, 0) == {}


def test_flags_off_leave_the_process_json_unchanged() -> None:
    rec = decode(exec_with_context(SETUID_CRED, HOST_NS))
    plain = ProcessCache("n", BootClock()).add_exec(rec)
    assert plain.context is None
    assert set(orjson.loads(plain.json_bytes())) == {"exec_id", "pid", "uid", "cwd", "binary", "flags",
                                                    "start_time", "auid", "tid", "refcnt"}


def test_cache_shows_context_and_a_fork_inherits_it() -> None:
    cache = ProcessCache("n", BootClock())
    cache.process_context = ProcessContext(cred=True, ns=True, host_ns=HOST)
    proc = cache.add_exec(decode(exec_with_context(SETUID_CRED, HOST_NS)))
    shown = orjson.loads(proc.json_bytes())
    assert shown["process_credentials"]["euid"] == 0 and shown["ns"]["pid"]["is_host"] is True
    assert shown["in_init_tree"] is False  # the host's processes are no container's init tree
    assert shown == proc.to_json()
    child = cache.add_clone(CloneRecord(6, 43, 43, 42, 99))
    assert child is not None and child.context == proc.context


def test_procfs_reads_credentials_and_namespaces_of_a_real_process() -> None:
    rec = procfs.read_process(os.getpid())
    assert rec is not None and rec.cred is not None and rec.ns is not None
    (uid, gid, suid, sgid, euid, egid, fsuid, fsgid, securebits, user_ns,
     _, effective, _, level, owner, group) = rec.cred[:16]
    assert (uid, euid, suid) == os.getresuid() and (gid, egid, sgid) == os.getresgid()
    assert (fsuid, fsgid) == (euid, egid)
    assert securebits is None and group is None  # /proc does not show them
    assert user_ns == os.stat("/proc/self/ns/user").st_ino and level == 0
    if os.geteuid() == 0:
        assert effective >> 21 & 1  # CAP_SYS_ADMIN
    assert rec.ns == (*(os.stat(f"/proc/self/ns/{name}").st_ino for name in layouts.NS_NAMES), os.getpid())
    exe = os.stat("/proc/self/exe")
    assert rec.cred[16:21] == (exe.st_nlink, exe.st_ino, exe.st_uid, exe.st_gid, exe.st_mode)


def test_procfs_user_namespace_level_and_owner() -> None:
    child = subprocess.Popen(["unshare", "--user", "/bin/sleep", "30"])
    try:
        wait_for_exec(child.pid, "/usr/bin/sleep")
        rec = procfs.read_process(child.pid)
        assert rec is not None and rec.cred is not None and rec.ns is not None
        assert rec.cred[13] == 1 and rec.cred[14] == os.geteuid()  # level, owner
        assert rec.ns[layouts.NS_NAMES.index("user")] == rec.cred[9] != os.stat("/proc/self/ns/user").st_ino
        fields = ProcessContext(cred=True, ns=True, host_ns={"user": os.stat("/proc/self/ns/user").st_ino})(rec)
        assert fields is not None
        assert fields["process_credentials"]["user_ns"] == {"level": 1, "uid": os.geteuid(),
                                                            "ns": {"inum": rec.cred[9]}}
    finally:
        child.kill()
        child.wait()


def test_passwd_parsing_first_name_of_a_uid_wins() -> None:
    text = "root:x:0:0:root:/root:/bin/bash\n#comment:x:5:5\nbroken\ntoor:x:0:0::/:/bin/sh\nnobody:x:65534:65534::/:\n"
    assert parse_passwd(text) == {0: "root", 65534: "nobody"}


def test_user_names_follow_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    passwd = tmp_path / "passwd"
    passwd.write_text("alice:x:1000:1000::/home/alice:/bin/sh\n")
    names = UserNames(passwd)
    assert names.name(1000) == "alice" and names.name(1001) is None
    passwd.write_text("alice:x:1000:1000::/home/alice:/bin/sh\nbob:x:1001:1001::/home/bob:/bin/sh\n")
    assert names.name(1001) is None  # looked at no more than once a second
    monkeypatch.setattr(users, "RECHECK_S", 0.0)
    assert names.name(1001) == "bob"
    passwd.unlink()
    assert names.name(1000) is None


def test_only_processes_in_the_host_mount_namespace_are_named(tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    passwd.write_text("alice:x:1000:1000::/home/alice:/bin/sh\n")
    context = ProcessContext(cred=False, ns=False, host_ns=HOST, users=UserNames(passwd))
    host = decode(exec_with_context(None, HOST_NS))  # uid 1000
    assert context(host) == {"user": {"name": "alice"}}  # ns collected for the check, not shown
    container_ns = list(HOST_NS)
    container_ns[layouts.NS_NAMES.index("mnt")] = 4026532777
    assert context(decode(exec_with_context(None, tuple(container_ns)))) is None
    assert context(decode(exec_with_context(None, None))) is None  # cannot tell: not named


def test_same_context_is_rendered_once_and_renamed_when_passwd_changes(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    passwd = tmp_path / "passwd"
    passwd.write_text("alice:x:1000:1000::/:/bin/sh\n")
    context = ProcessContext(cred=True, ns=True, host_ns=HOST, users=UserNames(passwd))
    first = context(decode(exec_with_context(SETUID_CRED, HOST_NS)))
    again = context(decode(exec_with_context(SETUID_CRED, HOST_NS)))
    assert first is again and first is not None and first["user"] == {"name": "alice"}
    monkeypatch.setattr(users, "RECHECK_S", 0.0)
    passwd.write_text("alicia:x:1000:1000::/:/bin/sh\n")
    renamed = context(decode(exec_with_context(SETUID_CRED, HOST_NS)))
    assert renamed is not None and renamed["user"] == {"name": "alicia"}


def cred_with(**changes: int) -> tuple[int, ...]:
    names = [name for name, _ in layouts.EXEC_CRED.fields]
    values = dict(zip(names, SETUID_CRED))
    values.update(changes)
    return tuple(values[name] for name in names)


def test_binary_properties_of_setgid_file_caps_and_deleted_files() -> None:
    setgid = cred_with(uid=1000, euid=1000, suid=1000, fsuid=1000, egid=0, exe_gid=0, exe_mode=0o102755)
    assert binary_properties(setgid) == {"setgid": 0, "privileges_changed": ["PRIVILEGES_RAISED_EXEC_FILE_SETGID"]}
    file_caps = cred_with(euid=1000, suid=1000, fsuid=1000, exe_mode=0o100755)  # secure mode, caps permitted
    assert binary_properties(file_caps) == {"privileges_changed": ["PRIVILEGES_RAISED_EXEC_FILE_CAP"]}
    plain = cred_with(euid=1000, suid=1000, fsuid=1000, exe_mode=0o100755, secureexec=0)
    assert binary_properties(plain) == {}
    root_runs_setuid_root = cred_with(uid=0)  # nothing changed: root stays root
    assert binary_properties(root_runs_setuid_root) == {}
    deleted = cred_with(euid=1000, suid=1000, fsuid=1000, exe_mode=0o100755, secureexec=0, exe_nlink=0)
    assert binary_properties(deleted) == {"file": {"inode": {"number": "777", "links": 0}}}


def test_procfs_sees_a_deleted_executable() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "sleeper"
        shutil.copy("/bin/sleep", copy)
        child = subprocess.Popen([str(copy), "30"])
        try:
            wait_for_exec(child.pid, str(copy))
            copy.unlink()
            deadline = time.monotonic() + 30
            while (rec := procfs.read_process(child.pid)) is not None and rec.cred is not None and rec.cred[21] is None:
                assert time.monotonic() < deadline, "no AT_SECURE: the exec never finished setting up auxv"
                time.sleep(0.02)  # exe is set early in exec, the auxiliary vector later
            assert rec is not None and rec.cred is not None
            assert rec.filename == f"{copy} (deleted)"
            props = binary_properties(rec.cred)
            assert props["file"]["inode"] == {"number": str(rec.cred[17]), "links": 0} and rec.cred[17] > 0
            assert rec.cred[21] == 0  # AT_SECURE: an ordinary exec
        finally:
            child.kill()
            child.wait()


def test_in_init_tree_follows_a_containers_init_and_not_what_enters_later() -> None:
    cache = ProcessCache("n", BootClock())
    cache.process_context = ProcessContext(cred=False, ns=True, host_ns=HOST)
    container = list(HOST_NS)
    container[layouts.NS_NAMES.index("pid")] = 4026532500

    def start(pid: int, ppid: int, pid_ns: tuple[int, ...], ns_pid: int) -> object:
        raw = exec_with_context(None, (*pid_ns[:-1], ns_pid))
        rec = decode(raw)
        rec.pid = rec.tid = pid
        rec.ppid = ppid
        return cache.add_exec(rec).to_json()["in_init_tree"]

    assert start(100, 1, HOST_NS, 100) is False  # runc, containerd-shim, ... on the host
    assert start(101, 100, tuple(container), 1) is True  # the container's init
    assert start(102, 101, tuple(container), 2) is True  # what it starts
    assert start(103, 100, tuple(container), 3) is False  # nsenter / kubectl exec: parent on the host
    assert start(104, 103, tuple(container), 4) is False  # and its children


def test_the_json_is_protojsons_mapping_of_tetragons_messages() -> None:
    """Every member the context adds parses as Tetragon's Process and prints back the same."""
    cache = ProcessCache("n", BootClock())
    cache.process_context = ProcessContext(cred=True, ns=True, host_ns=HOST)
    deleted_setuid = cred_with(exe_nlink=0)
    proc = cache.add_exec(decode(exec_with_context(deleted_setuid, HOST_NS)))
    line = orjson.loads(exec_event(proc, None, "n", "2026-01-01T00:00:00Z").line)
    assert to_dict(to_message(line)) == line
    assert line["process_exec"]["process"]["binary_properties"]["file"]["inode"]["number"] == "777"


def test_a_recorded_process_keeps_its_context() -> None:
    """tetra replay: an ExecRecord read from /proc goes through JSON and comes back the same."""
    rec = procfs.read_process(os.getpid())
    assert rec is not None
    back = process_from_json(orjson.loads(orjson.dumps(process_to_json(rec))))
    assert back == rec and isinstance(back.cred, tuple) and isinstance(back.ns, tuple)
    old = {k: v for k, v in process_to_json(rec).items() if k not in ("cred", "ns")}  # made before the context
    assert process_from_json(old).cred is None
