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

Every sink is here (sinks.py: JSON lines, compact lines, the export filters in
front of them; otlp.py), except the gRPC one, which is the API's
(tetra/api/broadcast.py). Each that writes or sends does it on a thread of its
own behind one bounded hand-off that counts what it drops (handoff.py).
"""
