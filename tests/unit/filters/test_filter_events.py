"""--export-allowlist / --export-denylist: every key, how keys and lines combine, every message."""

from typing import Any

import pytest
from filter_samples import event, exec_of, kprobe, pod, process

from tetra.errors import TetraError
from tetra.filters import ExportFilter, FilterError, parse_filter_list

Event = dict[str, Any]


def matches(line: str, ev: Event, **kwargs: Any) -> bool:
    (f,) = parse_filter_list(line, "allow", **kwargs)
    return f.matches(ev)


def error(text: str, **kwargs: Any) -> str:
    with pytest.raises(FilterError) as caught:
        parse_filter_list(text, "allow", **kwargs)
    return str(caught.value)


HOST = exec_of(process("/usr/bin/curl"))
IN_POD = exec_of(process("/usr/bin/curl", pod=pod()))
RATE_LIMIT_INFO = event("rate_limit_info", number_of_dropped_process_events=3)


# -- one key at a time -----------------------------------------------------------------------------

@pytest.mark.parametrize("line, ev, expected", [
    ('{"event_set": ["PROCESS_EXEC"]}', HOST, True),
    ('{"event_set": ["PROCESS_EXIT", "PROCESS_KPROBE"]}', HOST, False),
    ('{"event_set": ["PROCESS_EXIT", "PROCESS_KPROBE"]}', kprobe(), True),
    ('{"event_set": [9]}', kprobe(), True),  # protojson takes enum numbers too
    ('{"event_set": ["RATE_LIMIT_INFO"]}', RATE_LIMIT_INFO, True),
    ('{"event_set": []}', kprobe(), True),  # empty is unset, as in protojson
])
def test_event_set(line: str, ev: Event, expected: bool) -> None:
    assert matches(line, ev) is expected


@pytest.mark.parametrize("line, ev, expected", [
    ('{"binary_regex": ["curl"]}', HOST, True),  # searched, not anchored, like Go's MatchString
    ('{"binary_regex": ["^curl$"]}', HOST, False),
    ('{"binary_regex": ["^/usr/bin/wget$", "^/usr/bin/curl$"]}', HOST, True),  # values OR
    ('{"binary_regex": [".*"]}', RATE_LIMIT_INFO, False),  # no process: no match
    ('{"parent_binary_regex": ["^/bin/bash$"]}', HOST, True),
    ('{"parent_binary_regex": ["curl"]}', HOST, False),
    ('{"parent_binary_regex": [".*"]}', event("process_exec", process=process()), False),
    ('{"arguments_regex": ["ebpf\\\\.io$"]}', HOST, True),
    ('{"arguments_regex": ["^-v"]}', HOST, False),
    ('{"parent_arguments_regex": ["^$"]}', HOST, True),  # bash ran with no arguments
    ('{"container_id": ["^abc"]}', exec_of(process(docker="abc123")), True),
    ('{"container_id": ["^abc"]}', HOST, False),
])
def test_process_regexes(line: str, ev: Event, expected: bool) -> None:
    assert matches(line, ev) is expected


def test_ancestor_binary_regex() -> None:
    with_ancestors = exec_of(ancestors=[process("/usr/bin/sshd", pid=7), process("/sbin/init", pid=1)])
    assert matches('{"ancestor_binary_regex": ["sshd$"]}', with_ancestors)
    assert not matches('{"ancestor_binary_regex": ["cron$"]}', with_ancestors)
    assert not matches('{"ancestor_binary_regex": [".*"]}', HOST)  # no ancestors exported


@pytest.mark.parametrize("line, ev, expected", [
    ('{"namespace": ["default"]}', IN_POD, True),
    ('{"namespace": ["kube-system"]}', IN_POD, False),
    ('{"namespace": ["kube-system", "default"]}', IN_POD, True),
    ('{"namespace": ["default"]}', HOST, False),
    ('{"namespace": [""]}', HOST, True),  # "" stands for host processes, as in Tetragon
    ('{"namespace": [""]}', IN_POD, False),
    ('{"namespace_regex": ["^def"]}', IN_POD, True),
    ('{"namespace_regex": [".*"]}', HOST, False),
    ('{"pod_regex": ["^xw"]}', IN_POD, True),
    ('{"pod_regex": ["^tie"]}', IN_POD, False),
    ('{"pod_regex": [".*"]}', HOST, False),
])
def test_pod_keys(line: str, ev: Event, expected: bool) -> None:
    assert matches(line, ev) is expected


@pytest.mark.parametrize("selector, expected", [
    ("app=xwing", True),
    ("app==xwing", True),
    ("app=tie", False),
    ("app!=tie", True),
    ("missing!=x", True),  # != holds when the label is absent, as in Kubernetes
    ("app in (tie, xwing)", True),
    ("app notin (tie, xwing)", False),
    ("missing notin (x)", True),
    ("class", True),
    ("!class", False),
    ("!missing", True),
    ("app=xwing,class=fighter", True),  # commas AND
    ("app=xwing,class=bomber", False),
    ("", True),  # the empty selector selects every pod
])
def test_labels(selector: str, expected: bool) -> None:
    line = '{"labels": ["%s"]}' % selector
    assert matches(line, IN_POD) is expected


def test_labels_values_or_and_never_match_host_processes() -> None:
    assert matches('{"labels": ["app=tie", "class=fighter"]}', IN_POD)
    assert not matches('{"labels": [""]}', HOST)


def test_pid() -> None:
    assert matches('{"pid": [5, 100]}', HOST)
    assert matches('{"pid": ["100"]}', HOST)  # protojson takes uint32 as a decimal string
    assert not matches('{"pid": [1]}', HOST)


def test_policy_names() -> None:
    assert matches('{"policy_names": ["files", "net"]}', kprobe("files"))
    assert not matches('{"policy_names": ["net"]}', kprobe("files"))
    assert not matches('{"policy_names": ["files"]}', HOST)  # exec events have no policy


def test_health_check() -> None:
    probe = exec_of(process("/bin/grpc_health_probe", pod=pod(maybe_exec_probe=True)))
    child_of_probe = exec_of(process("/bin/sh"), parent=process("/bin/grpc_health_probe", pod=pod(maybe_exec_probe=True)))
    assert matches('{"health_check": true}', probe)
    assert matches('{"health_check": true}', child_of_probe)  # the parent counts too
    assert not matches('{"health_check": true}', IN_POD)
    assert matches('{"health_check": false}', IN_POD)
    assert not matches('{"health_check": false}', probe)


def test_in_init_tree() -> None:
    assert matches('{"in_init_tree": true}', exec_of(process(in_init_tree=True)))
    assert matches('{"in_init_tree": false}', HOST)  # missing reads as false
    assert not matches('{"in_init_tree": true}', HOST)


@pytest.mark.parametrize("spec, expected", [
    ('{"effective": {"any": ["CAP_SYS_ADMIN", "CAP_BPF"]}}', True),
    ('{"effective": {"any": ["CAP_BPF"]}}', False),
    ('{"effective": {"all": ["CAP_SYS_ADMIN", "CAP_NET_RAW"]}}', True),
    ('{"effective": {"all": ["CAP_SYS_ADMIN", "CAP_BPF"]}}', False),
    ('{"effective": {"exactly": ["CAP_SYS_ADMIN", "CAP_NET_RAW"]}}', True),
    ('{"effective": {"exactly": ["CAP_SYS_ADMIN"]}}', False),
    ('{"effective": {"none": ["CAP_BPF"]}}', True),
    ('{"effective": {"none": ["CAP_NET_RAW"]}}', False),
    ('{"effective": {"any": ["CAP_NET_RAW"]}, "permitted": {"any": ["CAP_BPF"]}}', False),  # sets AND
])
def test_capabilities(spec: str, expected: bool) -> None:
    caps = {"effective": ["CAP_SYS_ADMIN", "CAP_NET_RAW"], "permitted": ["CAP_SYS_ADMIN", "CAP_NET_RAW"]}
    ev = exec_of(process(cap=caps))
    assert matches('{"capabilities": %s}' % spec, ev) is expected
    assert not matches('{"capabilities": %s}' % spec, HOST)  # no process.cap (--enable-process-cred off)


def test_camel_case_keys_are_accepted_as_in_protojson() -> None:
    assert matches('{"binaryRegex": ["curl"], "eventSet": ["PROCESS_EXEC"]}', HOST)


def test_null_is_unset() -> None:
    assert matches('{"binary_regex": null}', HOST)


# -- pid_set ---------------------------------------------------------------------------------------

def test_pid_set_follows_descendants_and_forgets_them_after_exit() -> None:
    (f,) = parse_filter_list('{"pid_set": [10]}', "allow", enable_pid_set=True)
    shell = exec_of(process("/bin/sh", pid=10), parent=process("/sbin/init", pid=1))
    child = exec_of(process("/bin/ls", pid=11), parent=process("/bin/sh", pid=10))
    grandchild = exec_of(process("/bin/cat", pid=12), parent=process("/bin/ls", pid=11))
    stranger = exec_of(process("/bin/cat", pid=13), parent=process("/sbin/init", pid=1))
    assert [f.matches(e) for e in (shell, child, grandchild, stranger)] == [True, True, True, False]
    child_exit = event("process_exit", process=process("/bin/ls", pid=11), parent=process("/bin/sh", pid=10))
    later_kprobe = kprobe(proc=process("/bin/ls", pid=11))
    assert f.matches(child_exit)  # the exit itself still matches
    assert not f.matches(later_kprobe)  # pid 11 is forgotten: it may be reused
    assert f.matches(kprobe(proc=process("/bin/sh", pid=10)))  # listed pids are never forgotten


def test_pid_set_tracks_events_that_other_filters_decide() -> None:
    """Tetragon records a child only when its pid_set filter evaluates the child's exec; here the
    exec is decided by the first filter, yet the grandchild's kprobe still matches the second."""
    text = '{"event_set": ["PROCESS_EXEC"]}\n{"pid_set": [10], "event_set": ["PROCESS_KPROBE"]}'
    export = ExportFilter(parse_filter_list(text, "allow", enable_pid_set=True), [])
    assert export.accepts(exec_of(process("/bin/ls", pid=11), parent=process("/bin/sh", pid=10)))
    assert export.accepts(kprobe(proc=process("/bin/ls", pid=11)))
    assert not export.accepts(kprobe(proc=process("/bin/ls", pid=99)))


def test_pid_set_needs_enabling() -> None:
    assert error('{"pid_set": [1]}') == (
        "allow:1: pid_set: refused: it tracks processes on a best-effort basis (pids are reused) and is meant "
        "for testing, not production; pass --enable-pid-set-filter to use it anyway")


# -- combinations ----------------------------------------------------------------------------------

def test_keys_in_one_object_and() -> None:
    line = '{"event_set": ["PROCESS_EXEC"], "namespace": ["default"], "binary_regex": ["curl$"]}'
    assert matches(line, IN_POD)
    assert not matches(line, HOST)  # namespace fails
    assert not matches(line, exec_of(process("/usr/bin/wget", pod=pod())))  # binary fails
    assert not matches(line, kprobe(proc=process(pod=pod())))  # type fails


def test_lines_or() -> None:
    text = '{"event_set": ["PROCESS_EXEC", "PROCESS_EXIT"], "namespace": ["foo"]}\n{"event_set": ["PROCESS_KPROBE"]}'
    export = ExportFilter(parse_filter_list(text, "allow"), [])
    assert export.accepts(exec_of(process(pod=pod("foo"))))
    assert export.accepts(kprobe())
    assert not export.accepts(IN_POD)  # exec in namespace default: neither line


def test_no_allowlist_allows_everything_and_deny_wins() -> None:
    assert ExportFilter([], []).accepts(HOST)
    deny = parse_filter_list('{"binary_regex": ["curl"]}', "deny")
    assert not ExportFilter([], deny).accepts(HOST)
    allow = parse_filter_list('{"event_set": ["PROCESS_EXEC"]}', "allow")
    assert not ExportFilter(allow, deny).accepts(HOST)  # allowed and denied: denied
    assert ExportFilter(allow, deny).accepts(exec_of(process("/usr/bin/wget")))
    assert not ExportFilter(allow, deny).accepts(kprobe(proc=process("/usr/bin/wget")))  # not allowed


def test_empty_object_matches_everything() -> None:
    everything = parse_filter_list("{}", "list")
    assert ExportFilter(everything, []).accepts(RATE_LIMIT_INFO)
    assert not ExportFilter([], everything).accepts(RATE_LIMIT_INFO)  # a denylist {} denies all


def test_event_without_known_type_only_meets_untyped_filters() -> None:
    odd = {"something_new": {"process": process()}, "node_name": "n"}
    allow = parse_filter_list('{"event_set": ["PROCESS_EXEC"]}\n{"pid": [100]}', "allow")
    assert not ExportFilter(allow, []).accepts(odd)  # the untyped filter sees no process body
    assert ExportFilter(parse_filter_list('{}', "allow"), []).accepts(odd)


def test_blank_lines_and_multiline_objects() -> None:
    text = '\n{"pid": [1]}\n\n   \n{"pid":\n  [2]} {"pid": [3]}\n'
    assert len(parse_filter_list(text, "allow")) == 3
    assert parse_filter_list("", "allow") == []


# -- messages --------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ('{"binary_regex": ["a"]}\n{"binary_regex" ["a"]}', "allow:2: invalid JSON: Expecting ':' delimiter (column 17)"),
    ('{"pid": [1]', "allow:1: invalid JSON: Expecting ',' delimiter (column 12)"),
    ("[1, 2]", "allow:1: expected a JSON object, got [1, 2]"),
    ('{"binary_regexp": ["x"]}', "allow:1: unknown key 'binary_regexp' (did you mean 'binary_regex'?)"),
    ('{"zzz": 1}', "allow:1: unknown key 'zzz'"),
    ('{"pid": [1], "pid": [2]}', "allow:1: key 'pid' is given more than once"),
    ('{"binary_regex": ["a"], "binaryRegex": ["b"]}',
     "allow:1: key 'binary_regex' is given more than once (also as 'binaryRegex')"),
    ('{"binary_regex": ["("]}',
     "allow:1: binary_regex: '(' is not a valid regular expression (RE2 syntax): missing )"),
    ('{"binary_regex": "curl"}', 'allow:1: binary_regex: expected a list of strings, got "curl"'),
    ('{"namespace": [1]}', "allow:1: namespace: expected a list of strings, got [1]"),
    ('{"health_check": "yes"}', 'allow:1: health_check: expected true or false, got "yes"'),
    ('{"namespace": "%s"}' % ("x" * 50), 'allow:1: namespace: expected a list of strings, got "%s...' % ("x" * 36)),
    ('{"pid": [-1]}', "allow:1: pid: expected a list of process ids, got [-1]"),
    ('{"pid": [4294967296]}', "allow:1: pid: expected a list of process ids, got [4294967296]"),
    ('{"event_set": "PROCESS_EXEC"}', 'allow:1: event_set: expected a list of event types, got "PROCESS_EXEC"'),
    ('{"event_set": ["process_exec"]}', "allow:1: event_set: unknown event type 'process_exec' (did you mean 'PROCESS_EXEC'?)"),
    ('{"event_set": [2]}', "allow:1: event_set: unknown event type 2"),
    ('{"labels": ["app in ()"]}', "allow:1: labels: invalid selector 'app in ()': the values of 'app in' must not be empty"),
    ('{"labels": ["app=a b"]}', "allow:1: labels: invalid selector 'app=a b': expected ',' between requirements, found 'b'"),
    ('{"labels": ["Bad_/x=1"]}', "allow:1: labels: invalid selector 'Bad_/x=1': invalid label key 'Bad_/x': the prefix "
                                 "must be a DNS subdomain (lowercase, at most 253)"),
    ('{"labels": ["app=-x"]}', "allow:1: labels: invalid selector 'app=-x': invalid label value '-x': at most 63 "
                               "letters, digits, '-', '_' or '.', starting and ending with a letter or digit"),
    ('{"labels": ["n>x"]}', "allow:1: labels: invalid selector 'n>x': expected an integer after 'n >', found 'x'"),
    ('{"labels": ["app in (a"]}',
     "allow:1: labels: invalid selector 'app in (a': expected ',' or ')' in the values of 'app', found the end"),
    ('{"labels": ["app,"]}', "allow:1: labels: invalid selector 'app,': expected a label key after ',', found the end"),
    ('{"labels": ["app ~ x"]}', "allow:1: labels: invalid selector 'app ~ x': expected an operator after 'app' "
                                "(=, ==, !=, in, notin, >, <), found '~'"),
    # the caller gives the event types an expression reads (tests/unit/filters/test_filter_cel.py)
    ('{"cel_expression": ["process_exec.process.pid > 1u"]}',
     "allow:1: cel_expression: CEL expressions are not evaluated here"),
    ('{"capabilities": {"effectiv": {"any": ["CAP_BPF"]}}}',
     "allow:1: capabilities: unknown key 'effectiv' (did you mean 'effective'?)"),
    ('{"capabilities": {"effective": {"any": ["CAP_BPF"], "none": ["CAP_KILL"]}}}',
     "allow:1: capabilities.effective: give exactly one of any, all, exactly, none, got 2"),
    ('{"capabilities": {"effective": {"any": ["CAP_SYS_ADMN"]}}}',
     "allow:1: capabilities.effective.any: unknown capability 'CAP_SYS_ADMN' (did you mean 'CAP_SYS_ADMIN'?)"),
    ('{"capabilities": ["CAP_BPF"]}',
     'allow:1: capabilities: expected an object with permitted, effective, inheritable, got ["CAP_BPF"]'),
])
def test_messages(text: str, message: str) -> None:
    assert error(text) == message


def test_every_problem_is_reported_in_order() -> None:
    text = '{"pid": [1]}\n{"binary_regex": ["("], "nope": 1}\n"x"\n{"health_check": 1}'
    with pytest.raises(FilterError) as caught:
        parse_filter_list(text, "--export-denylist")
    assert caught.value.issues == [
        "--export-denylist:2: unknown key 'nope'",
        "--export-denylist:2: binary_regex: '(' is not a valid regular expression (RE2 syntax): missing )",
        '--export-denylist:3: expected a JSON object, got "x"',
        "--export-denylist:4: health_check: expected true or false, got 1",
    ]
    assert isinstance(caught.value, TetraError)
