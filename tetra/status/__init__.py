"""What the agent reports about itself, as numbers: one model that every reader shares.

::

    Agent.status()  (agent thread: BPF maps are read there)
        │
        └─> AgentStatus ──┬─> api/status.py  StatusResponse for GetStatus (`tetra status`)
                          ├─> export/metrics.py  Prometheus, rendered on the scraper's thread
                          └─> agent/runner.py  Summary, printed as JSON when the agent stops

It sits below ``agent``, ``api`` and ``export`` so that each of them can read
it without importing the others: counters are ints here, and each reader
formats them its own way (protobuf's uint64 strings, Prometheus floats, JSON
numbers), so none of them parses numbers back out of another's text.

``secrets`` says what of a report must not leave the node (`tetra bugtool`):
the agent redacts its flags by name, the archive every piece by shape.
"""
