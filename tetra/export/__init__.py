"""The export stage: filtered events leave tetra here.

::

    filtered event dicts ──> encode (one JSON line) ──> sinks
    (Tetragon's JSON shape)  encode.encode()            ├── jsonfile.RotatingFile  (--export-filename)
                                                        └── stdout / gRPC ...
                          └─> compact.render_compact() ──> terminal (tetra getevents -o compact)

Every sink consumes the same already-filtered stream, as in Tetragon, where the
JSON file exporter is one more listener next to gRPC. Events are plain dicts in
the protobuf JSON mapping, so encoding is a single ``orjson.dumps``: no
per-event-type code on the hot path. A sink never raises on an I/O failure
(a full disk must not stop the agent); it counts the failure instead.
"""
