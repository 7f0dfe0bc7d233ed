"""--redaction-filters: capture groups become *****, in the arguments of every process of an event."""

import copy
from typing import Any

import pytest
from filter_samples import event, exec_of, kprobe, process

from tetra.filters import FilterError, parse_redaction_filters
from tetra.filters.redact import redact_text
from tetra.regex import compile_regex

Event = dict[str, Any]
PASSWORD = r'{"redact": ["(?:--password|-p)[\\s=]+(\\S+)"]}'


def redact(text: str, ev: Event) -> Event:
    original = copy.deepcopy(ev)
    out = parse_redaction_filters(text, "rf").apply(ev)
    assert ev == original  # never modified in place: sinks share events
    return out


def args(ev: Event, role: str = "process") -> str:
    (body,) = (v for k, v in ev.items() if k not in ("node_name", "time"))
    return str(body[role]["arguments"])


@pytest.mark.parametrize("pattern, text, expected", [
    (r"--password[\s=]+(\S+)", "-u me --password=hunter2 -h db", "-u me --password=***** -h db"),
    (r"--password[\s=]+(\S+)", "--password a --password b", "--password ***** --password *****"),  # every match
    (r"(\w+):(\w+)@", "https://user:secret@host/", "https://*****:*****@host/"),  # every group
    (r"((\w+)-(\w+))=", "api-key=1", "*****=1"),  # nested groups are covered by the outer one
    (r"(?:-p(\S+)|--pass=(\S+))", "-pX --pass=Y", "-p***** --pass=*****"),  # a group that took no part stays
    (r"--password=(\S*)", "--password= x", "--password=***** x"),  # an empty group is marked too
    (r"token=(\w+)", "no secrets here", "no secrets here"),
    (r"(x*)", "axxb", "*****a*****b*****"),  # Go's ReplaceAll: no empty match right after "xx" (Python's re has one)
    (r"^-p(\S+)$", "-psecret\n", "-psecret\n"),  # Go's $ is the end of the text, not before a final newline
    (r"pass=(\S+)", "pass=\udcff sécret", "pass=***** sécret"),  # a lone surrogate is matched as U+FFFD
])
def test_redact_text(pattern: str, text: str, expected: str) -> None:
    assert redact_text(compile_regex(pattern), text) == expected


def test_process_parent_and_ancestors_are_redacted() -> None:
    secret = "-u root --password=hunter2"
    ev = exec_of(process("/usr/bin/mysql", secret), parent=process("/bin/sh", "-c 'mysql -p hunter2'", pid=1),
                 ancestors=[process("/bin/bash", "-c x -p s3cr3t", pid=2), process("/sbin/init", "", pid=3)])
    out = redact(PASSWORD, ev)
    assert args(out) == "-u root --password=*****"
    assert args(out, "parent") == "-c 'mysql -p *****"
    assert [a["arguments"] for a in out["process_exec"]["ancestors"]] == ["-c x -p *****", ""]
    assert out["process_exec"]["ancestors"][1] is ev["process_exec"]["ancestors"][1]  # unchanged: shared


def test_kprobe_events_redact_their_processes_but_not_their_arguments() -> None:
    ev = kprobe(proc=process("/usr/bin/mysql", "--password=x"), args=[{"string_arg": "--password=x"}])
    out = redact(PASSWORD, ev)
    assert args(out) == "--password=*****"
    assert out["process_kprobe"]["args"] == [{"string_arg": "--password=x"}]  # as in Tetragon


def test_binary_regex_is_matched_per_process() -> None:
    text = r'{"binary_regex": ["(?:^|/)mysql$"], "redact": ["-p(\\S+)"]}'
    ev = exec_of(process("/usr/bin/mysql", "-psecret"), parent=process("/bin/sh", "-psecret", pid=1))
    out = redact(text, ev)
    assert args(out) == "-p*****"
    assert args(out, "parent") == "-psecret"  # sh does not match binary_regex


def test_filters_apply_in_order_each_on_the_previous_result() -> None:
    text = r'{"redact": ["key=(\\w+)"]}' + "\n" + r'{"redact": ["(\\*+)"]}'
    assert args(redact(text, exec_of(process(arguments="key=abc")))) == "key=*****"


def test_match_limits_a_filter_to_the_events_it_selects() -> None:
    text = r'{"match": [{"event_set": ["PROCESS_KPROBE"]}], "redact": ["--password=(\\S+)"]}'
    on_exec = exec_of(process(arguments="--password=x"))
    assert redact(text, on_exec) is on_exec
    assert args(redact(text, kprobe(proc=process(arguments="--password=x")))) == "--password=*****"
    single = r'{"match": {"binary_regex": ["curl"]}, "redact": ["--password=(\\S+)"]}'  # Tetragon 1.1's form
    assert args(redact(single, on_exec)) == "--password=*****"


def test_environment_variables_are_redacted_as_name_equals_value() -> None:
    env = [{"Key": "HOME", "Value": "/root"}, {"Key": "AWS_SECRET_ACCESS_KEY", "Value": "wJalr/K7"}]
    ev = exec_of(process(arguments="--password=x", environment_variables=env),
                 parent=process("/bin/sh", "", pid=1, environment_variables=env[:1]))
    text = PASSWORD + "\n" + r'{"redact": ["^AWS_SECRET_ACCESS_KEY=(.*)$"]}'
    out = redact(text, ev)
    assert args(out) == "--password=*****"
    assert out["process_exec"]["process"]["environment_variables"] == [
        {"Key": "HOME", "Value": "/root"}, {"Key": "AWS_SECRET_ACCESS_KEY", "Value": "*****"}]
    assert out["process_exec"]["parent"] is ev["process_exec"]["parent"]  # nothing to redact: shared
    only_env = exec_of(process(arguments="", environment_variables=env))
    assert redact(text, only_env)["process_exec"]["process"]["environment_variables"][1]["Value"] == "*****"


def test_events_without_secrets_are_returned_as_they_are() -> None:
    ev = exec_of()
    assert redact(PASSWORD, ev) is ev
    info = event("rate_limit_info", number_of_dropped_process_events=1)
    assert redact(PASSWORD, info) is info
    assert parse_redaction_filters("", "rf").apply(ev) is ev


@pytest.mark.parametrize("text, message", [
    ('{"binary_regex": ["x"]}', "rf:1: a redaction filter needs 'redact' (regular expressions whose groups are redacted)"),
    ('{"redact": []}', "rf:1: a redaction filter needs 'redact' (regular expressions whose groups are redacted)"),
    ('{"redact": ["--password=\\\\S+"]}', "rf:1: redact: '--password=\\S+' has no capture group, so it would redact nothing"),
    ('{"redact": ["(a"]}', "rf:1: redact: '(a' is not a valid regular expression (RE2 syntax): missing )"),
    ('{"redact": "(a)"}', 'rf:1: redact: expected a list of strings, got "(a)"'),
    ('{"redact": ["(a)"], "binary_regex": ["["]}',
     "rf:1: binary_regex: '[' is not a valid regular expression (RE2 syntax): missing ]"),
    ('{"redact": ["(a)"], "redactt": 1}', "rf:1: unknown key 'redactt' (did you mean 'redact'?)"),
    ('{"redact": ["(a)"], "match": [{"binary_regexx": ["x"]}]}',
     "rf:1: match[0]: unknown key 'binary_regexx' (did you mean 'binary_regex'?)"),
    ('{"redact": ["(a)"], "match": "x"}', 'rf:1: match: expected a list of filter objects, got "x"'),
])
def test_messages(text: str, message: str) -> None:
    with pytest.raises(FilterError) as caught:
        parse_redaction_filters(text, "rf")
    assert str(caught.value) == message
