"""examples/siem/rsyslog.conf, run for real: a private rsyslogd tails a file that
tetra's own RotatingFile writes and rotates, and forwards over TCP to a receiver
in this test. Every line must arrive exactly once, in order, across rotations,
compression and a restart of rsyslogd.

The example runs unchanged except for its paths and target, so a setting
removed from it (maxMessageSize, the state directory ...) fails here.
"""

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tetra.export.jsonfile import MIB, RotatingFile

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "siem" / "rsyslog.conf"
RSYSLOGD = shutil.which("rsyslogd", path=f"/usr/sbin:/sbin:{os.environ.get('PATH', '')}")
FILE_BYTES = 32 * 1024  # small files: a rotation every 30 to 100 lines
# Lines go out in bursts with a pause between. A burst (20 lines, at most one of
# them long) is smaller than a file, so it holds at most one rotation and every
# file lives at least one pause. A file rotated away again before rsyslogd
# opened it would never be read (README: "How fast may files rotate"); at
# tetra's default 10 MB per file that needs gigabytes per minute.
BURST, PAUSE_S = 20, 0.04

pytestmark = pytest.mark.skipif(RSYSLOGD is None, reason="needs rsyslogd (scripts/setup.sh installs rsyslog)")


class LineReceiver:
    """A TCP server on 127.0.0.1 that keeps every newline-terminated line it gets."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._lines: list[bytes] = []
        self._lock = threading.Lock()
        self._stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def lines(self) -> list[bytes]:
        with self._lock:
            return list(self._lines)

    def wait_for(self, count: int, timeout: float) -> list[bytes]:
        """Lines once ``count`` arrived (or at the timeout), after a quiet second for stragglers."""
        deadline = time.monotonic() + timeout
        while len(self.lines) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # a duplicate would arrive now
        return self.lines

    def close(self) -> None:
        self._stopping = True
        self._server.close()

    def _accept(self) -> None:
        while not self._stopping:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        buffered = b""
        with conn:
            while data := conn.recv(65536):
                buffered += data
                *complete, buffered = buffered.split(b"\n")
                with self._lock:
                    self._lines.extend(complete)


class Rsyslogd:
    """A private rsyslogd: its own config, pid file and work directory, no systemd."""

    def __init__(self, config: Path) -> None:
        self._config = config
        self._log = config.with_suffix(".stderr")
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert RSYSLOGD is not None
        with open(self._log, "ab") as err:
            self._proc = subprocess.Popen(
                [RSYSLOGD, "-n", "-f", str(self._config), "-i", str(self._config.with_suffix(".pid"))],
                stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        time.sleep(0.3)
        if self._proc.poll() is not None:
            pytest.fail(f"rsyslogd exited with {self._proc.returncode}: {self._log.read_text()[-2000:]}")

    def stop(self) -> None:
        """A clean stop (SIGTERM): rsyslogd saves its read positions and queue."""
        if self._proc is None:
            return
        proc, self._proc = self._proc, None
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail("rsyslogd did not stop within 10 s of SIGTERM")


@pytest.fixture
def receiver() -> Iterator[LineReceiver]:
    rec = LineReceiver()
    yield rec
    rec.close()


@pytest.fixture
def rsyslogd(tmp_path: Path, receiver: LineReceiver) -> Iterator[Rsyslogd]:
    workdir = tmp_path / "rsyslog-work"
    workdir.mkdir()
    replacements = {
        "/var/log/tetra/tetra.log": str(tmp_path / "log" / "tetra.log"),
        "/var/lib/rsyslog-tetra": str(workdir),
        'target="siem.example.org" port="5140"': f'target="127.0.0.1" port="{receiver.port}"',
    }
    text = EXAMPLE.read_text()
    for old, new in replacements.items():
        assert old in text, f"{EXAMPLE.name} no longer contains {old!r}"
        text = text.replace(old, new)
    config = tmp_path / "rsyslog.conf"
    config.write_text(text)
    daemon = Rsyslogd(config)
    yield daemon
    daemon.stop()


def _event(i: int) -> bytes:
    """A Tetragon-like JSON line; every 97th carries 20 KiB of arguments (over rsyslog's 8k default)."""
    args = "x" * 20_000 if i % 97 == 0 else f"--flag=é{'a' * (i % 300)}"
    return (b'{"process_exec":{"process":{"exec_id":"bm9kZToxOjE=","pid":%d,"binary":"/usr/bin/curl",'
            b'"arguments":"%s"}},"node_name":"node","time":"2026-11-26T10:35:19.%09dZ"}'
            % (i, args.encode(), i))


def _write(out: RotatingFile, first: int, last: int) -> list[bytes]:
    """Lines first..last-1, in bursts with pauses, as an agent under load writes them."""
    lines = [_event(i) for i in range(first, last)]
    for n, line in enumerate(lines, 1):
        out.write(line)
        if n % BURST == 0:
            out.flush()
            time.sleep(PAUSE_S)
    out.flush()
    return lines


def _export_file(tmp_path: Path, compress: bool) -> RotatingFile:
    return RotatingFile(str(tmp_path / "log" / "tetra.log"), max_size_mb=FILE_BYTES / MIB,
                        max_backups=5, compress=compress)


def _assert_exactly_once(received: list[bytes], written: list[bytes]) -> None:
    duplicates = [line[:60] for line, n in Counter(received).items() if n > 1]
    missing = len(set(written) - set(received))
    assert not duplicates and not missing, f"{missing} lines lost, duplicated: {duplicates[:5]}"
    assert received == written  # and in order


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_every_line_arrives_once_across_rotations(tmp_path: Path, receiver: LineReceiver,
                                                  rsyslogd: Rsyslogd, compress: bool) -> None:
    started = time.monotonic()
    out = _export_file(tmp_path, compress)
    written = _write(out, 0, 1)  # the file exists before rsyslogd starts: read from its start
    rsyslogd.start()
    assert receiver.wait_for(1, timeout=10) == written, "rsyslogd forwarded nothing"
    written += _write(out, 1, 1500)
    out.close()

    received = receiver.wait_for(len(written), timeout=30)
    assert out.rotations >= 3
    _assert_exactly_once(received, written)
    print(f"rsyslog: {len(written)} lines across {out.rotations} rotations "
          f"({'gzip' if compress else 'plain'}) in {time.monotonic() - started:.1f}s")


def test_restart_of_rsyslogd_neither_loses_nor_repeats(tmp_path: Path, receiver: LineReceiver,
                                                       rsyslogd: Rsyslogd) -> None:
    out = _export_file(tmp_path, compress=False)
    rsyslogd.start()
    written = _write(out, 0, 600)
    rsyslogd.stop()  # possibly with lines still unread or queued
    rotations = out.rotations
    written += [_event(600), _event(601)]  # written while it is down, into the same file
    out.write(written[-2])
    out.write(written[-1])
    out.flush()
    assert out.rotations == rotations, "a rotation while rsyslogd is down loses lines (see README)"
    rsyslogd.start()
    written += _write(out, 602, 1200)
    out.close()

    received = receiver.wait_for(len(written), timeout=30)
    assert out.rotations >= rotations + 3
    _assert_exactly_once(received, written)
