"""process_loader: the loader sensor's records as probes/process/loader.c writes them, decoded and
made into Tetragon's event by the pipeline, with the mapped file's build id read from the file."""

import base64
import os
import shutil
from pathlib import Path

import pytest

from tests.unit.test_buildid import readelf_build_id
from tests.unit.test_pipeline import ListSink, _exec, _pipeline
from tetra.decode import loader  # noqa: F401  (registers the decoder)
from tetra.decode.loader import LoaderRecord
from tetra.decode.registry import decode
from tetra.errors import DecodeError
from tetra.wire import layouts
from tetra.wire.constants import LOADER_TRUNC_PATH, Op


def loader_record(path: bytes, pid: int = 42, ino: int = 7, flags: int = 0) -> bytes:
    size = layouts.LOADER.size + len(path)
    return layouts.LOADER.codec.pack(Op.LOADER, 0, 0, size, 5_000, pid, pid + 1, ino, len(path), flags) + path


def test_decode() -> None:
    rec = decode(loader_record(b"/usr/lib/libz.so.1.2.13"))
    assert rec == LoaderRecord(5_000, 42, 43, 7, "/usr/lib/libz.so.1.2.13", False)
    assert decode(loader_record(b"/deep/part", flags=LOADER_TRUNC_PATH)).truncated
    with pytest.raises(DecodeError):
        decode(loader_record(b"/usr/lib/libz.so")[:-2])
    with pytest.raises(DecodeError):
        decode(loader_record(b"")[:20])


def test_pipeline_makes_tetragons_event_with_the_build_id(tmp_path: Path) -> None:
    lib = Path("/usr/lib/x86_64-linux-gnu/libz.so.1").resolve()
    if not lib.exists() or shutil.which("readelf") is None:
        pytest.skip("needs libz.so.1 and readelf")
    copy = tmp_path / "libz.so"
    shutil.copy(lib, copy)
    sink = ListSink()
    pipeline, _ = _pipeline(sink)
    pipeline.handle(_exec(42, 0, "/usr/bin/python3"))
    pipeline.handle_raw(loader_record(str(copy).encode(), ino=os.stat(copy).st_ino))
    pipeline.handle_raw(loader_record(str(copy).encode(), ino=os.stat(copy).st_ino, flags=LOADER_TRUNC_PATH))
    full, partial = sink.events[1:]
    body = full["process_loader"]
    assert body["process"]["binary"] == "/usr/bin/python3" and body["process"]["tid"] == 43
    assert "parent" not in body  # Tetragon's ProcessLoader has none
    assert body["path"] == str(copy)
    assert base64.b64decode(body["buildid"]) == readelf_build_id(copy)
    assert partial["process_loader"] == {"process": body["process"], "path": str(copy)}  # no file to read
    assert pipeline.stats.events["process_loader"] == 2


def test_a_process_gone_from_proc_is_counted_and_shown_by_pid() -> None:
    sink = ListSink()
    pipeline, asked = _pipeline(sink)
    pipeline.handle_raw(loader_record(b"/nonexistent/lib.so", pid=77))
    assert asked == [77]
    assert pipeline.stats.process_unknown == 1
    assert sink.events[0]["process_loader"] == {"process": {"pid": 77, "tid": 78}, "path": "/nonexistent/lib.so"}
