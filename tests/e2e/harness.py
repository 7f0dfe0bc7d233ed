"""Running ``tetra agent`` as a user would, and reading what it exported."""

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

TETRA = [sys.executable, "-m", "tetra"]
Event = dict[str, Any]


class RunningAgent:
    """A ``tetra agent`` subprocess exporting JSON lines to ``export``.

    Its API listens on a socket of its own under ``workdir`` (``address``), so
    agents of different tests never meet at the default socket; pass
    ``--server-address`` in ``args`` to choose another.
    """

    def __init__(self, workdir: Path, *args: str) -> None:
        self.export = workdir / "events.log"
        self.socket = workdir / "api" / "tetra.sock"
        self.address = f"unix://{self.socket}"
        server = ["--server-address", self.address]
        if "--server-address" in args:
            server, self.address = [], args[args.index("--server-address") + 1]
            self.socket = Path(self.address.removeprefix("unix://"))
        self.cmd = [*TETRA, "agent", "-o", "none", "--export-filename", str(self.export), *server, *args]
        self.stderr_lines: list[str] = []
        self._ready = threading.Event()
        self.proc: subprocess.Popen[bytes] | None = None
        self.summary: dict[str, Any] | None = None

    def start(self, timeout: float = 90) -> "RunningAgent":
        return self.start_with(subprocess.DEVNULL, timeout)

    def start_with(self, stdout: Any, timeout: float = 90) -> "RunningAgent":
        """``start`` with the agent's standard output going to ``stdout`` (a file, for ``-o compact``)."""
        self.proc = subprocess.Popen(self.cmd, stdout=stdout, stderr=subprocess.PIPE)
        threading.Thread(target=self._read_stderr, daemon=True).start()
        if not self._ready.wait(timeout) or self.proc.poll() is not None:
            self.proc.kill()
            raise AssertionError("agent did not become ready:\n" + "\n".join(self.stderr_lines))
        return self

    def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip("\n")
            self.stderr_lines.append(line)
            if "policies settled in" in line:  # after "ready in": the start-up policies are in too
                self._ready.set()
        self._ready.set()

    def stop(self, timeout: float = 60) -> dict[str, Any]:
        """SIGTERM, wait, and return the summary the agent printed."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        deadline = time.monotonic() + 5
        while self.summary is None and time.monotonic() < deadline:
            for line in self.stderr_lines:
                if line.startswith('{"summary"'):
                    self.summary = orjson.loads(line)["summary"]
            time.sleep(0.05)
        assert code == 0, f"agent exited with {code}:\n" + "\n".join(self.stderr_lines)
        assert self.summary is not None, "no summary:\n" + "\n".join(self.stderr_lines)
        return self.summary

    def files(self) -> list[Path]:
        """The export file and its rotated backups, oldest first."""
        backups = sorted(self.export.parent.glob(self.export.name + ".*"),
                         key=lambda p: int(p.name[len(self.export.name) + 1:].split(".")[0]), reverse=True)
        return [*backups, self.export] if self.export.exists() else backups

    def events(self) -> list[Event]:
        out: list[Event] = []
        for path in self.files():
            data = path.read_bytes()
            if path.suffix == ".gz":
                import gzip
                data = gzip.decompress(data)
            complete = data.split(b"\n")[:-1]  # a last line without its newline is still being written
            out.extend(orjson.loads(line) for line in complete if line)
        return out

    def wait_for(self, predicate: Callable[[list[Event]], bool], timeout: float = 15) -> list[Event]:
        """Poll the export until predicate(events) holds (the agent flushes every second)."""
        deadline = time.monotonic() + timeout
        while True:
            events = self.events() if self.export.exists() else []
            if predicate(events):
                return events
            if time.monotonic() > deadline:
                log = "\n".join(self.stderr_lines[-30:])
                raise AssertionError(f"timed out waiting for events; have {len(events)}; agent said:\n{log}")
            time.sleep(0.2)


def of_pid(events: list[Event], kind: str, pid: int) -> list[Event]:
    """Events of one type whose process has this pid."""
    return [e[kind] for e in events if kind in e and e[kind]["process"].get("pid") == pid]


def exec_ids(events: list[Event]) -> Iterator[str]:
    for e in events:
        if "process_exec" in e:
            yield e["process_exec"]["process"]["exec_id"]


def tetra(agent: RunningAgent, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    """Run a ``tetra`` client command against ``agent`` (stdin /dev/null: never reads events from it)."""
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    kwargs.setdefault("timeout", 120)
    return subprocess.run([*TETRA, *args, "--server-address", agent.address], capture_output=True, **kwargs)


def run(argv: list[str | bytes], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(argv, capture_output=True, env={**os.environ, "LC_ALL": "C"}, **kwargs)


def attachments(pid: int) -> dict[int, str]:
    """prog id -> what it is attached to, for each perf event / raw tracepoint ``pid`` holds
    (``bpftool perf list``): the programs of one agent, whatever else runs on the machine."""
    listed = orjson.loads(subprocess.run(["bpftool", "perf", "list", "-j"], check=True,
                                         capture_output=True).stdout or b"[]")
    return {entry["prog_id"]: entry.get("tracepoint", entry.get("func", entry.get("filename", "?")))
            for entry in listed if entry["pid"] == pid}


def loaded_programs() -> set[int]:
    """Ids of every BPF program in the kernel (ids are never reused)."""
    listed = orjson.loads(subprocess.run(["bpftool", "prog", "list", "-j"], check=True,
                                         capture_output=True).stdout or b"[]")
    return {entry["id"] for entry in listed}
