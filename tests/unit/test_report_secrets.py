"""The redaction rules of `tetra bugtool`'s archive (tetra/status/secrets.py).

By name: flags whose names say they hold a secret lose their values, flags
that hold a path to one (TLS key files, kubeconfig) keep theirs. By shape:
credentials written into any text lose the secret and keep the context, and
the text a report is made of (status, bpftool's lists, the log) comes out
unchanged.
"""

import dataclasses

import orjson
import pytest

from tetra.agent.config import AgentConfig
from tetra.status.secrets import REDACTED, is_secret_flag, redact_flags, scrub

JWT = "eyJhbGciOiJSUzI1NiIsImtpZCI6IngifQ.eyJzdWIiOiJzeXN0ZW06c2EifQ.c2lnbmF0dXJlLWJ5dGVz"


@pytest.mark.parametrize("name", ["token", "otlp_token", "--export-otlp-token", "api-key", "apikey",
                                  "db_password", "client-secret", "registry.credentials", "auth", "private_key",
                                  "bearer_token"])
def test_secret_names(name: str) -> None:
    assert is_secret_flag(name)


@pytest.mark.parametrize("name", ["server_tls_key_file", "--server-tls-key-file", "tls_key_file", "k8s_kubeconfig_path",
                                  "token_file", "secrets_dir", "export_filename", "policy_cache_dir", "keep_going",
                                  "monkey", "tokenizer", "redaction_filters", "enable_pod_annotations", ""])
def test_names_that_are_not_secrets(name: str) -> None:
    assert not is_secret_flag(name)


def test_the_agents_own_flags_hold_no_secret_by_name() -> None:
    """Every AgentConfig field passes as it is: its key and TLS flags are paths, kept for the report."""
    config = dataclasses.asdict(AgentConfig(server_tls_key_file="/etc/tetra/tls.key",
                                            k8s_kubeconfig_path="/root/.kube/config"))
    assert redact_flags(config) == config


def test_redact_flags_replaces_only_set_secret_values() -> None:
    flags = {"otlp_token": "s3cr3t-value", "db_password": None, "api_key": "", "server_tls_key_file": "/k.pem",
             "node_name": "n1"}
    assert redact_flags(flags) == {"otlp_token": REDACTED, "db_password": None, "api_key": "",
                                   "server_tls_key_file": "/k.pem", "node_name": "n1"}


@pytest.mark.parametrize("text, kept", [
    (f"Authorization: Bearer {JWT}", "Authorization: Bearer"),
    ("curl -H 'Authorization: Bearer abcdef0123456789'", "Authorization: Bearer"),
    ("Basic dXNlcjpwYXNzd29yZA==", "Basic"),
    (f"token: {JWT}", "token:"),
    ("mysql --password=hunter2-secret -u root", "mysql --password="),
    ("db_password: hunter2-secret", "db_password:"),
    ('{"client_secret": "hunter2-secret", "name": "x"}', '"name": "x"'),
    ("API_KEY=hunter2-secret ./run", "./run"),
    ("https://admin:hunter2-secret@registry.example:5000/v2", "https://admin:"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEhunter2-secret\n-----END RSA PRIVATE KEY-----\nafter", "after"),
    ("-----BEGIN PRIVATE KEY-----\nMIIEhunter2-secret (cut short)", ""),
])
def test_scrub_removes_the_secret_and_keeps_its_context(text: str, kept: str) -> None:
    clean = scrub(text)
    assert "hunter2" not in clean and "abcdef0123456789" not in clean and "dXNlcjpw" not in clean
    assert JWT.split(".")[2] not in clean
    assert kept in clean and REDACTED in clean


def test_scrub_is_idempotent() -> None:
    once = scrub(f"token={JWT} password: x1 Bearer abcdefgh https://u:p@h/")
    assert scrub(once) == once


@pytest.mark.parametrize("text", [
    '{"id": 42, "name": "tracepoint__sched__sched_process_exec", "tag": "87c05294f06f5801", "map_ids": [1, 2]}',
    '{"losses": {"kernel_lost": 0, "pipeline": {"parent_unknown": 3}}, "secret_count": 2, "tokens_total": 5}',
    "2026-12-02T05:07:10.900Z INFO tetra.agent.policies: policy open loaded in 2.11s (kprobe)",
    '{"server_tls_key_file": "/etc/tetra/tls.key", "k8s_kubeconfig_path": "/root/.kube/config"}',
    "matchArgs:\n- index: 0\n  operator: Equal\n  values: ['/etc/shadow']\n",
    "unix:///var/run/tetra/tetra.sock and http://collector:4317/v1/logs",
])
def test_scrub_leaves_report_text_alone(text: str) -> None:
    assert scrub(text) == text


def test_the_archive_config_of_a_flag_value_with_a_token() -> None:
    """A token inside a flag's value (a filter hunting a leaked token) is gone from the JSON a report holds."""
    config = AgentConfig(export_allowlist=orjson.dumps({"arguments_regex": [f"Bearer {JWT}"]}).decode())
    text = scrub(orjson.dumps(redact_flags(dataclasses.asdict(config))).decode())
    assert JWT not in text and JWT.split(".")[2] not in text
    assert orjson.loads(text)["export_allowlist"]  # still JSON, still there
