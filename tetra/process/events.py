"""process_exec and process_exit events in Tetragon's JSON shape."""

import signal
from typing import Any

from tetra.process.model import Process
from tetra.wire.events import PROCESS_EXEC, PROCESS_EXIT

Event = dict[str, Any]


def _with_parent(body: Event, parent: Process | None) -> Event:
    if parent is not None:
        body["parent"] = parent.to_json()
    return body


def exec_event(proc: Process, parent: Process | None, node: str, time: str) -> Event:
    body = _with_parent({"process": proc.to_json()}, parent)
    return {PROCESS_EXEC.key: body, "node_name": node, "time": time}


def signal_name(number: int) -> str:
    """"SIGKILL" for 9; numbers without a name stay numeric (e.g. "SIG64")."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"SIG{number}"


def exit_event(proc: Process, parent: Process | None, exit_code: int, node: str, time: str) -> Event:
    """exit_code is the kernel's wait status: signal in the low 7 bits, status above.

    As in Tetragon, ``status`` appears only when non-zero and ``signal`` only on a
    death by signal.
    """
    body = _with_parent({"process": proc.to_json()}, parent)
    sig = exit_code & 0x7F
    if sig:
        body["signal"] = signal_name(sig)
    status = (exit_code >> 8) & 0xFF
    if status:
        body["status"] = status
    body["time"] = time
    return {PROCESS_EXIT.key: body, "node_name": node, "time": time}
