"""User regular expressions are RE2: linear-time on hostile text, bad patterns refused in one located line.

Before tetra.regex, filters used Python's backtracking ``re``: ``^(a+)+$`` against
an argument of 30 'a's and a '!' ran for minutes on the agent thread, and
``"(a" * 3000`` raised RecursionError with a traceback.
"""

import json
import time
from collections.abc import Callable
from typing import TypeVar

import pytest
from filter_samples import exec_of, process

from tetra.filters import ClientFilter, FilterError, parse_filter_list, parse_redaction_filters
from tetra.policy.errors import PolicyErrors
from tetra.policy.loader import load_policies_text
from tetra.regex import MAX_PATTERN_CHARS, RegexError, compile_regex

EVIL = "^(a+)+$"
T = TypeVar("T")
HOSTILE = ["a" * 30 + "!", "a" * 100_000 + "!"]


def quickly(call: Callable[[], T]) -> T:
    """``call()``, which must return within a generous 2 s: linear matching takes milliseconds
    here, backtracking would take minutes to ages (pytest-timeout ends the test then)."""
    started = time.monotonic()
    result = call()
    assert time.monotonic() - started < 2
    return result


@pytest.mark.timeout(60)
@pytest.mark.parametrize("arguments", HOSTILE, ids=["30", "100000"])
def test_pathological_pattern_on_hostile_arguments_is_linear(arguments: str) -> None:
    (allow,) = parse_filter_list(json.dumps({"arguments_regex": [EVIL]}), "--export-allowlist")
    assert not quickly(lambda: allow.matches(exec_of(process("/bin/true", arguments))))
    assert allow.matches(exec_of(process("/bin/true", "a" * 100_000)))  # still a real regex


@pytest.mark.timeout(60)
@pytest.mark.parametrize("arguments", HOSTILE, ids=["30", "100000"])
def test_pathological_redaction_and_client_filters_are_linear(arguments: str) -> None:
    redactor = parse_redaction_filters(json.dumps({"binary_regex": ["^(/+a+)+$"], "redact": ["(a+)+$"]}), "rf")
    hostile_binary = exec_of(process("/" + arguments, "x"))
    assert quickly(lambda: redactor.apply(hostile_binary)) is hostile_binary  # binary_regex does not match
    hostile_arguments = exec_of(process("/aa", arguments))
    assert quickly(lambda: redactor.apply(hostile_arguments)) is hostile_arguments  # nor does redact
    assert redactor.apply(exec_of(process("/aa", "x aaa")))["process_exec"]["process"]["arguments"] == "x *****"
    client = ClientFilter(processes=[EVIL])
    assert quickly(lambda: client.apply(exec_of(process(arguments)))) is None


BAD = [
    ("(a" * 3000, "'(a(a(a(a(a(a(a(a(a(a(a(a(a(a(a(a(a(a(a(a...' (6000 characters) is not a valid regular expression "
                  "(RE2 syntax): missing )"),
    ("(a)\\1", "'(a)\\1' is not a valid regular expression (RE2 syntax): invalid escape sequence '\\1' "
               "(RE2, like Go, has no lookaround or backreferences)"),
    ("foo(?=bar)", "'foo(?=bar)' is not a valid regular expression (RE2 syntax): invalid perl operator '(?=' "
                   "(RE2, like Go, has no lookaround or backreferences)"),
    ("(?<!x)y", "'(?<!x)y' is not a valid regular expression (RE2 syntax): invalid perl operator '(?<!' "
                "(RE2, like Go, has no lookaround or backreferences)"),
    ("a\\Z", "'a\\Z' is not a valid regular expression (RE2 syntax): invalid escape sequence '\\Z'"),
    ("a{1001}", "'a{1001}' is not a valid regular expression (RE2 syntax): invalid repetition size '{1001}'"),
    ("x\\C", "'x\\C' is not a valid regular expression (RE2 syntax): \\C (any byte) is not supported, as in Go"),
    ("(\\pL{100}){10}", "'(\\pL{100}){10}' is not a valid regular expression (RE2 syntax): too large: compiled, "
                        "it would take more than RE2's 4 MiB"),
    ("a" * (MAX_PATTERN_CHARS + 1), f"'{'a' * 40}...' ({MAX_PATTERN_CHARS + 1} characters) is not a valid regular "
                                    f"expression (RE2 syntax): longer than {MAX_PATTERN_CHARS} characters"),
    ("a\ud800", "'a\\ud800' is not a valid regular expression (RE2 syntax): not valid Unicode (a lone surrogate "
                "at character 1)"),
    ("[\n", "'[\\n' is not a valid regular expression (RE2 syntax): missing ]"),
]


@pytest.mark.parametrize("pattern, message", BAD, ids=[m.split(": ")[-1][:30] for _, m in BAD])
def test_bad_patterns_are_one_located_line(pattern: str, message: str) -> None:
    with pytest.raises(RegexError) as direct:
        compile_regex(pattern)
    assert str(direct.value) == message
    with pytest.raises(FilterError) as caught:
        parse_filter_list('{"pid": [1]}\n' + json.dumps({"arguments_regex": ["ok", pattern]}), "--export-allowlist")
    assert caught.value.issues == [f"--export-allowlist:2: arguments_regex: {message}"]
    assert "\n" not in str(caught.value)


def test_every_user_pattern_site_uses_re2() -> None:
    """Redaction, client options and TracingPolicy list patterns refuse what RE2 refuses, located."""
    nested = "(a" * 3000
    with pytest.raises(FilterError) as redact:
        parse_redaction_filters(json.dumps({"redact": ["(x)"], "binary_regex": [nested]}), "--redaction-filters")
    assert str(redact.value).startswith("--redaction-filters:1: binary_regex: '(a(a(a")
    with pytest.raises(FilterError) as client:
        ClientFilter(processes=["(?=x)"], pods=[nested])
    assert [issue.split(" is ")[0] for issue in client.value.issues] == ["--process: '(?=x)'",
                                                                         "--pod: '" + "(a" * 20 + "...' (6000 characters)"]
    policy = f"""apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: lists
spec:
  lists:
  - name: ftrace
    type: generated_ftrace
    pattern: '{nested}'
"""
    with pytest.raises(PolicyErrors) as bad_policy:
        load_policies_text(policy, "p.yaml")
    assert str(bad_policy.value).splitlines() == [
        "p.yaml:9:14: spec.lists[0].pattern: '" + "(a" * 20 + "...' (6000 characters) is not a valid regular "
        "expression (RE2 syntax): missing )"]


@pytest.mark.parametrize("pattern, text, found", [
    ("curl", "/usr/bin/curl", True),  # unanchored, as Go's MatchString
    ("^curl", "/usr/bin/curl", False),
    ("sh$", "/bin/bash\n", False),  # $ is the end of the text (Python's re matches before a final newline)
    ("^\\d+$", "٣", False),  # \d is ASCII (Python's re takes any Unicode digit)
    ("(?i)CURL", "/usr/bin/curl", True),
    ("é", "/tmp/café", True),
    ("caf.", "/tmp/caf\udcff", True),  # a lone surrogate reads as U+FFFD, not an exception
])
def test_go_semantics(pattern: str, text: str, found: bool) -> None:
    assert (compile_regex(pattern).search(text) is not None) == found
