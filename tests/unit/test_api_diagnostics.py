"""GetDiagnostics's answer (tetra/api/diagnostics.py): what `tetra bugtool` reads of the agent."""

import dataclasses
import logging

import orjson
from google.protobuf import json_format

from tetra.agent.config import AgentConfig
from tetra.agent.logring import LogRing
from tetra.api import pb
from tetra.api.diagnostics import POLICY_TEXT_CHARS, diagnostics_json
from tetra.policy.loader import load_policies_text

POLICY = """apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: diag
spec:
  kprobes:
  - call: sys_openat
    syscall: true
{comment}"""


def test_settings_log_and_policies_fit_the_message() -> None:
    config = AgentConfig(tracing_policies=("/etc/tetra/p.yaml",), server_tls_key_file="/etc/tetra/tls.key")
    ring = LogRing(capacity=2)
    logger = logging.getLogger("tetra.test.diagnostics")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    ring.attach(logger)
    for n in range(3):
        logger.info("line %d", n)
    big = load_policies_text(POLICY.format(comment="# " + "x" * POLICY_TEXT_CHARS + "\n"))
    small = load_policies_text(POLICY.format(comment="").replace("name: diag", "name: small"))
    answer = json_format.ParseDict(diagnostics_json(config, ring, big + small), pb.GetDiagnosticsResponse())

    assert orjson.loads(answer.config_json) == orjson.loads(orjson.dumps(dataclasses.asdict(config)))
    assert [r.message for r in answer.log] == ["line 1", "line 2"] and answer.log_evicted == 1
    assert answer.log[0].level == "info" and answer.log[0].logger == "tetra.test.diagnostics"
    cut, kept = answer.policies
    assert cut.name == "diag" and len(cut.yaml) < POLICY_TEXT_CHARS + 100 and "cut by the agent" in cut.yaml
    assert kept.name == "small" and kept.yaml == small[0].text and "call: sys_openat" in kept.yaml


def test_an_agent_without_a_ring_answers_with_no_log() -> None:
    answer = diagnostics_json(AgentConfig(), None, [])
    assert (answer["log"], answer["log_evicted"], answer["policies"]) == ([], 0, [])
