"""Compiling a policy's C into an object (tetra/sensors/bpfobj.py) in a process of its own.

The agent never runs clang for a policy it can build this way: a build runs
``python -m tetra.sensors.build`` with the request in a file, so

- builds run on every core at once, and the agent's loop goes on meanwhile
  (events, API calls), checking on them between polls;
- clang's memory (~100 MB) is the build's, given back when it exits;
- a build that crashes takes nothing else down.

The child compiles the module as its own owner of the tables the process
sensor shares (TETRA_EVENTS_OWNER): the instructions are the same, and the
agent writes the process sensor's descriptors into them at load.
"""

import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import IO, Any

import orjson

from tetra.errors import SensorError
from tetra.sensors.bpfobj import ObjectSpec, Sentinels, extract

log = logging.getLogger(__name__)
OWNER_FLAG = "-DTETRA_EVENTS_OWNER"
BUILD_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class BuildRequest:
    """What to compile: the C text and flags with sentinels in place of the load-time values."""

    text: str
    cflags: tuple[str, ...]
    shared: tuple[str, ...]
    sentinels: dict[str, int]

    def as_json(self) -> bytes:
        return orjson.dumps({"text": self.text, "cflags": list(self.cflags), "shared": list(self.shared),
                             "sentinels": self.sentinels})


class Build:
    """One running build; ``poll`` answers without waiting, ``wait`` waits."""

    def __init__(self, request: BuildRequest) -> None:
        self.started = time.monotonic()
        self._files: list[IO[bytes]] = [tempfile.TemporaryFile() for _ in range(3)]
        stdin, self._out, self._err = self._files
        stdin.write(request.as_json())
        stdin.seek(0)
        self._proc = subprocess.Popen([sys.executable, "-m", "tetra.sensors.build"], stdin=stdin,
                                      stdout=self._out, stderr=self._err, close_fds=True)

    def poll(self) -> ObjectSpec | None:
        """The object once built (None while building); SensorError if the build failed."""
        if self._proc.poll() is None:
            if time.monotonic() - self.started > BUILD_TIMEOUT_S:
                self.cancel()
                raise SensorError(f"the build took over {BUILD_TIMEOUT_S:.0f}s")
            return None
        return self._result()

    def wait(self) -> ObjectSpec:
        try:
            self._proc.wait(BUILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.cancel()
            raise SensorError(f"the build took over {BUILD_TIMEOUT_S:.0f}s") from None
        return self._result()

    def _result(self) -> ObjectSpec:
        try:
            self._err.seek(0)
            self._out.seek(0)
            if self._proc.returncode != 0:
                raise SensorError(self._err.read().decode(errors="replace").strip()
                                  or f"the build exited with {self._proc.returncode}")
            return ObjectSpec.from_json(orjson.loads(self._out.read()))
        except (orjson.JSONDecodeError, ValueError) as err:
            raise SensorError(f"the build's object is unreadable: {err}") from err
        finally:
            self._close()

    def cancel(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._close()

    def _close(self) -> None:
        for f in self._files:
            f.close()


def build(request: dict[str, Any]) -> ObjectSpec:
    """The child's work: compile with bcc, read the object back."""
    from bcc import BPF

    bpf = BPF(text=request["text"].encode(), cflags=[*request["cflags"], OWNER_FLAG])
    try:
        return extract(bpf, frozenset(request["shared"]), Sentinels(request["sentinels"]))
    finally:
        bpf.cleanup()


def main() -> int:
    try:
        spec = build(orjson.loads(sys.stdin.buffer.read()))
    except Exception as err:  # bcc raises bare Exception on compile errors: its text is the message
        print(str(err) or repr(err), file=sys.stderr)
        return 1
    sys.stdout.buffer.write(orjson.dumps(spec.to_json()))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("LC_ALL", "C")
    sys.exit(main())
