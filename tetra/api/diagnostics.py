"""The agent's GetDiagnostics answer: what `tetra bugtool` needs beyond the status.

Its effective settings (the AgentConfig its flags and config files made,
secret values redacted here, so they never cross the API), the newest records
of its log (tetra/agent/logring.py) and the YAML of each policy it holds.
"""

import dataclasses
from typing import Any

import orjson

from tetra.agent.config import AgentConfig
from tetra.agent.logring import LogRing
from tetra.policy.model import TracingPolicy
from tetra.status.secrets import redact_flags

Json = dict[str, Any]


def diagnostics_json(config: AgentConfig, ring: LogRing | None, policies: list[TracingPolicy]) -> Json:
    """The GetDiagnosticsResponse of an agent run with ``config``, logging into ``ring``, holding ``policies``."""
    lines, evicted = ring.snapshot() if ring is not None else ([], 0)
    return {
        "config_json": orjson.dumps(redact_flags(dataclasses.asdict(config))).decode(),
        "log": [dataclasses.asdict(line) for line in lines],
        "log_evicted": evicted,
        "policies": [{"name": p.name, "namespace": p.namespace or "", "yaml": p.text} for p in policies],
    }
