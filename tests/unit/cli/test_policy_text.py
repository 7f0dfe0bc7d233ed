"""`tracingpolicy add -m`: the mode set in the YAML the agent receives, the file's lines kept, the agent's
`api:LINE:COL` told as the file's."""

import pytest

from tetra.cli.policy_text import PolicyTextError, with_mode
from tetra.policy.loader import load_policies_text_report

HEAD = "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: {name}\nspec:\n"
HOOK = "  tracepoints:\n  - subsystem: syscalls\n    event: sys_enter_openat\n"


def _modes(text: str) -> dict[str, str]:
    policies, _ = load_policies_text_report(text, "sent")
    return {p.name: p.policy_mode for p in policies}


def test_no_options_gets_them_after_the_last_line_of_spec() -> None:
    text = HEAD.format(name="a") + HOOK
    sent = with_mode("a.yaml", text, "monitor")
    assert _modes(sent.text) == {"a": "monitor"}
    assert sent.text.startswith(text), "every line the user wrote keeps its number"
    assert sent.located("policy a not loaded: api:7:5: spec.tracepoints[0]: no") == \
        "policy a not loaded: a.yaml:7:5: spec.tracepoints[0]: no"


def test_an_existing_mode_is_replaced_on_its_line() -> None:
    text = HEAD.format(name="a") + "  options:\n  - name: policy-mode\n    value: enforce\n" + HOOK
    sent = with_mode("a.yaml", text, "monitor")
    assert _modes(sent.text) == {"a": "monitor"}
    assert sent.text.count("\n") == text.count("\n") and not sent.inserted


def test_options_without_a_mode_get_one_more_entry() -> None:
    text = HEAD.format(name="a") + "  options:\n  - name: observe-agent\n    value: \"true\"\n" + HOOK
    sent = with_mode("a.yaml", text, "enforce")
    assert _modes(sent.text) == {"a": "enforce"}
    assert sent.inserted == [(9, 2)]  # after the options list, before tracepoints (lines 9 and 10)
    assert sent.located("api:11:5: x") == "a.yaml:9:5: x"  # tracepoints was line 9 of the file
    assert sent.located("api:6:3: x") == "a.yaml:6:3: x"


def test_every_document_of_a_file_and_their_lines() -> None:
    text = HEAD.format(name="a") + HOOK + "---\n" + HEAD.format(name="b") + HOOK
    sent = with_mode("two.yaml", text, "monitor")
    assert _modes(sent.text) == {"a": "monitor", "b": "monitor"}
    assert sent.located("api:17:5: x") == "two.yaml:14:5: x"  # b's tracepoints: line 14 of the file
    assert sent.located("api:9:1: x") == "two.yaml:9:1: x"  # an added line: where it was added


def test_unchanged_without_a_mode_and_flow_style_refused() -> None:
    text = HEAD.format(name="a") + HOOK
    assert with_mode("a.yaml", text, None).text == text
    flow = HEAD.format(name="a").replace("spec:\n", "spec: {tracepoints: []}\n")
    with pytest.raises(PolicyTextError, match="no block `spec:` mapping"):
        with_mode("a.yaml", flow, "monitor")
