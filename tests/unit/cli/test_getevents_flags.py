"""``tetra getevents`` flags over a real file on standard input: --namespace-regex, --stack-traces,
-t/--tty-encode, --reconnect-wait. The command runs as a process, as a user runs it."""

import base64
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[3]


def _process(binary: str, namespace: str | None = None) -> dict[str, Any]:
    proc: dict[str, Any] = {"exec_id": "aG9zdDox", "pid": 7, "binary": binary, "arguments": ""}
    if namespace is not None:
        proc["pod"] = {"namespace": namespace, "name": "web-1", "container": {"id": "containerd://abc"}}
    return proc


def _exec(binary: str, namespace: str | None = None) -> dict[str, Any]:
    return {"process_exec": {"process": _process(binary, namespace)}, "node_name": "n",
            "time": "2026-11-26T10:00:00Z"}


def _write(path: str, data: bytes, **body: Any) -> dict[str, Any]:
    args = [{"file_arg": {"path": path}}, {"bytes_arg": base64.b64encode(data).decode()}, {"size_arg": len(data)}]
    return {"process_kprobe": {"process": _process("/bin/bash"), "function_name": "__x64_sys_write",
                               "args": args, "policy_name": "tty", **body}, "node_name": "n"}


def _getevents(tmp_path: Path, events: list[dict[str, Any]], *args: str) -> subprocess.CompletedProcess[bytes]:
    log = tmp_path / "events.log"
    log.write_bytes(b"".join(orjson.dumps(event) + b"\n" for event in events))
    with log.open("rb") as stdin:
        return subprocess.run([sys.executable, "-m", "tetra", "getevents", *args], stdin=stdin,
                              capture_output=True, timeout=60, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_namespace_regex_selects_pods_by_namespace(tmp_path: Path) -> None:
    events = [_exec("/a", "kube-system"), _exec("/b", "prod-eu"), _exec("/c", "prod-us"), _exec("/d")]
    done = _getevents(tmp_path, events, "--namespace-regex", "^prod-", "-f", "process.binary")
    assert done.returncode == 0, done.stderr
    assert [orjson.loads(line)["process_exec"]["process"]["binary"] for line in done.stdout.splitlines()] \
        == ["/b", "/c"]
    bad = _getevents(tmp_path, events, "--namespace-regex", "(")
    assert bad.returncode != 0 and b"--namespace-regex" in bad.stderr


def test_stack_traces_under_the_compact_line(tmp_path: Path) -> None:
    traced = _write("/dev/pts/1", b"ls\n", kernel_stack_trace=[
        {"address": "18446744071562067968", "offset": "16", "symbol": "ksys_write"}],
        user_stack_trace=[{"address": "4198400", "offset": "32", "symbol": "main", "module": "/bin/bash"},
                          {"address": "4198500", "offset": "4", "module": "/lib/libc.so.6"}])
    done = _getevents(tmp_path, [traced], "-o", "compact", "--stack-traces")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().splitlines()
    assert lines[1:] == ["Kernel:", "   0xffffffff80000000: ksys_write+0x10",
                         "User:", "   0x401000: main (/bin/bash+0x20)", "   0x401064: (/lib/libc.so.6+0x4)"]
    plain = _getevents(tmp_path, [traced], "-o", "compact")
    assert len(plain.stdout.splitlines()) == 1


def test_tty_encode_replays_the_terminal_bytes(tmp_path: Path) -> None:
    events = [_exec("/bin/ls"), _write("/dev/pts/1", b"\x1b[1mls\r\n"), _write("/dev/pts/2", b"other"),
              _write("/dev/pts/1", b"a b\n")]
    for flag in ("-t", "--tty-encode"):
        done = _getevents(tmp_path, events, flag, "/dev/pts/1")
        assert done.returncode == 0, done.stderr
        assert done.stdout == b"\x1b[1mls\r\na b\n"


def _attempts(tmp_path: Path, wait: str, window: float = 4.0) -> int:
    """How many times getevents --reconnect connects, in ``window`` seconds from its first attempt, to a
    socket that hangs up at once (an agent going away at every connection)."""
    path = tmp_path / f"{wait}.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(64)
    server.settimeout(0.1)
    client = subprocess.Popen([sys.executable, "-m", "tetra", "getevents", "--server-address", f"unix://{path}",
                               "--retries", "0", "--reconnect", "--reconnect-wait", wait],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    attempts, end = 0, time.monotonic() + 30
    try:
        while time.monotonic() < end:
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            connection.close()
            if not attempts:
                end = time.monotonic() + window
            attempts += 1
    finally:
        client.kill()
        client.wait()
        server.close()
    return attempts


def test_reconnect_wait_paces_the_attempts(tmp_path: Path) -> None:
    assert _attempts(tmp_path, "100ms") >= 8
    assert 1 <= _attempts(tmp_path, "3s") <= 3


def test_reconnect_wait_is_a_duration(tmp_path: Path) -> None:
    bad = _getevents(tmp_path, [], "--reconnect", "--reconnect-wait", "soon")
    assert bad.returncode == 2 and b"'soon' is not a duration" in bad.stderr
    help_text = subprocess.run([sys.executable, "-m", "tetra", "getevents", "--help"], capture_output=True,
                               cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True).stdout
    for flag in (b"--namespace-regex", b"--stack-traces", b"--tty-encode", b"--reconnect-wait"):
        assert flag in help_text
