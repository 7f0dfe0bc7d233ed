"""process_loader events: an executable file a process mapped, as Tetragon shows it.

    {"process_loader": {"process": {...}, "path": "/usr/lib/x86_64-linux-gnu/libz.so.1.2.13",
                        "buildid": "<base64>"}, "node_name": ..., "time": ...}

Tetragon's ProcessLoader has no parent. ``buildid`` is the file's ELF build id
(tetra/process/buildid.py), left out when the file has none or could not be
read as the file the kernel mapped, as protojson leaves out empty bytes.
"""

from binascii import b2a_base64

from tetra.decode.loader import LoaderRecord
from tetra.process.events import ProcessEvent
from tetra.process.model import Process
from tetra.wire.events import PROCESS_LOADER


def loader_event(proc: Process | None, rec: LoaderRecord, build_id: bytes | None, node: str,
                 time: str) -> ProcessEvent:
    tail: dict[str, str] = {"path": rec.path}
    if build_id:
        tail["buildid"] = b2a_base64(build_id, newline=False).decode()
    return ProcessEvent(PROCESS_LOADER.key, proc, rec.pid, rec.tid, None, tail, node, time)
