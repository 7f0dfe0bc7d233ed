"""The agent's GetDiagnostics answer: what `tetra bugtool` needs beyond the status.

Its effective settings (the AgentConfig its flags and config files made,
secret values redacted here, so they never cross the API), the newest records
of its log (tetra/agent/logring.py) and the YAML of each policy it holds, each
cut at ``POLICY_TEXT_CHARS``: with the log ring's bound, the answer stays far
below what a client accepts (tetra.api.client.MAX_MESSAGE_BYTES) even with
every policy the agent takes (MAX_POLICIES) as large as a file may be.
"""

import dataclasses
from typing import Any

import orjson

from tetra.agent.config import AgentConfig
from tetra.agent.logring import LogRing
from tetra.policy.model import TracingPolicy
from tetra.status.secrets import redact_flags

Json = dict[str, Any]
POLICY_TEXT_CHARS = 128 * 1024  # a policy's YAML in the answer at most: 128 policies, 16 MiB


def diagnostics_json(config: AgentConfig, ring: LogRing | None, policies: list[TracingPolicy]) -> Json:
    """The GetDiagnosticsResponse of an agent run with ``config``, logging into ``ring``, holding ``policies``."""
    lines, evicted = ring.snapshot() if ring is not None else ([], 0)
    return {
        "config_json": orjson.dumps(redact_flags(dataclasses.asdict(config))).decode(),
        "log": [dataclasses.asdict(line) for line in lines],
        "log_evicted": evicted,
        "policies": [{"name": p.name, "namespace": p.namespace or "", "yaml": _cut(p.text)} for p in policies],
    }


def _cut(text: str) -> str:
    if len(text) <= POLICY_TEXT_CHARS:
        return text
    return text[:POLICY_TEXT_CHARS] + f"\n# ... cut by the agent: {len(text) - POLICY_TEXT_CHARS} more characters\n"
