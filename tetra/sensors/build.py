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

Policies that share their head (the defines and the generic code, which is
most of what clang parses: about 1.1 s of a 1.4 s compile) and flags are
built together, in one module: each policy's hook functions are renamed apart
(``tetra_hook_0`` becomes ``tetra_hook_0__b3``), and the object of each is its
own functions, under their own names, with the module's maps. Loaded, every
policy creates its own copies of those maps, so nothing is shared between them
but the compile. A batch that fails (one policy clang refuses) is built again
one policy at a time, so the others are not held back by it.
"""

import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import IO, Any

import orjson

from tetra.errors import SensorError
from tetra.sensors.bpfobj import ObjectSpec, ProgramSpec, Sentinels, extract

OWNER_FLAG = "-DTETRA_EVENTS_OWNER"
BUILD_TIMEOUT_S = 300.0
# What a policy's hook section defines at file scope (tetra/compiler/codegen.py): renamed apart in a batch.
_HOOK_NAMES = re.compile(r"\b(tetra_(?:hook|ret|net)_\d+(?:_v6)?|tetra_usdt_\d+_\d+)\b")
_BATCH_SUFFIX = re.compile(r"^(.*)__b(\d+)$")


@dataclass(frozen=True)
class BuildRequest:
    """What to compile: the C text and flags with sentinels in place of the load-time values.
    ``head``: the defines and the generic code; ``body``: the policy's hook functions."""

    head: str
    body: str
    cflags: tuple[str, ...]
    shared: tuple[str, ...]
    sentinels: dict[str, int]

    @property
    def text(self) -> str:
        return self.head + self.body

    @property
    def batch_key(self) -> tuple[object, ...]:
        """Requests with the same key can be compiled in one module."""
        return self.head, self.cflags, self.shared, tuple(sorted(self.sentinels.items()))


def batch_text(requests: list[BuildRequest]) -> str:
    """One module's C for ``requests`` (of one batch_key): the head once, each body renamed apart."""
    if len(requests) == 1:
        return requests[0].text
    return requests[0].head + "".join(_renamed(r.body, i) for i, r in enumerate(requests))


def _renamed(body: str, index: int) -> str:
    return _HOOK_NAMES.sub(lambda m: f"{m[1]}__b{index}", body)


def split_object(spec: ObjectSpec, count: int) -> list[ObjectSpec]:
    """The object of each request of a batch: its own functions, under their own names, and every map.
    A function that is no request's (a name the renaming missed) fails the batch: SensorError."""
    if count == 1:
        return [spec]
    programs: list[dict[str, ProgramSpec]] = [{} for _ in range(count)]
    for name, program in spec.programs.items():
        found = _BATCH_SUFFIX.match(name)
        if not found or int(found[2]) >= count:
            raise SensorError(f"function {name} of a batch belongs to no policy")
        programs[int(found[2])][found[1]] = program
    return [ObjectSpec(spec.license, spec.kern_version, spec.maps, own, spec.shared) for own in programs]


class Build:
    """One running build of one batch of requests; ``poll`` answers without waiting, ``wait`` waits."""

    def __init__(self, requests: list[BuildRequest]) -> None:
        self.started = time.monotonic()
        self.count = len(requests)
        first = requests[0]
        self._files: list[IO[bytes]] = [tempfile.TemporaryFile() for _ in range(3)]
        stdin, self._out, self._err = self._files
        stdin.write(orjson.dumps({"text": batch_text(requests), "cflags": list(first.cflags),
                                  "shared": list(first.shared), "sentinels": first.sentinels}))
        stdin.seek(0)
        self._proc = subprocess.Popen([sys.executable, "-m", "tetra.sensors.build"], stdin=stdin,
                                      stdout=self._out, stderr=self._err, close_fds=True)

    def poll(self) -> list[ObjectSpec] | None:
        """The objects once built, in the order of the requests (None while building); SensorError if
        the build failed."""
        if self._proc.poll() is None:
            if time.monotonic() - self.started > BUILD_TIMEOUT_S:
                self.cancel()
                raise SensorError(f"the build took over {BUILD_TIMEOUT_S:.0f}s")
            return None
        return self._result()

    def wait(self) -> list[ObjectSpec]:
        try:
            self._proc.wait(BUILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.cancel()
            raise SensorError(f"the build took over {BUILD_TIMEOUT_S:.0f}s") from None
        return self._result()

    def _result(self) -> list[ObjectSpec]:
        try:
            self._err.seek(0)
            self._out.seek(0)
            if self._proc.returncode != 0:
                raise SensorError(self._err.read().decode(errors="replace").strip()
                                  or f"the build exited with {self._proc.returncode}")
            return split_object(ObjectSpec.from_json(orjson.loads(self._out.read())), self.count)
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
