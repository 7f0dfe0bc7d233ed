"""The export stage: filtered events leave tetra here.

::

    event.Event ──.line (one JSON line)──> jsonfile.RotatingFile (--export-filename), stdout, otlp
                └─.data (a dict)─────────> compact.render_compact() ──> terminal; gRPC; the filters

Every sink consumes the same already-filtered stream, as in Tetragon, where the
JSON file exporter is one more listener next to gRPC. An event offers both
forms and makes each only when a sink asks (event.py): the pipeline's events
put their line together from each process's JSON, encoded once, so when only
line sinks listen no dict is built; a dict (a filter's output) is encoded with
one ``orjson.dumps`` (encode.py). A sink never raises on an I/O failure (a full
disk must not stop the agent); it counts the failure instead.
"""
