"""cel_expression: what matches (Tetragon's proto types), what is refused (bounds), what is counted."""

import json
import time
from typing import Any

import pytest
from filter_samples import event, exec_of, kprobe, pod, process

from tetra.api import tetragon_events
from tetra.api.broadcast import Broadcaster
from tetra.export.event import Event as Envelope
from tetra.filters import ClientFilter, ExportChain, ExportFilter, FilterError, parse_filter_list
from tetra.filters.cel import MAX_CHARS, MAX_COMPREHENSIONS, MAX_DEPTH, compile_cel
from tetra.status.model import StreamStatus

Event = dict[str, Any]

USER = exec_of(process("/usr/bin/curl", pid=2000))
ROOT = exec_of(process("/usr/sbin/sshd", pid=7))
EXIT = event("process_exit", process=process("/usr/bin/curl", pid=2000), status=1)
OPEN = kprobe(args=[{"file_arg": {"path": "/etc/passwd"}}, {"int_arg": -4}, {"size_arg": "18446744073709551615"}])


def allow(*expressions: str, **keys: Any) -> ExportFilter:
    spec = {"cel_expression": list(expressions), **keys}
    return ExportFilter(parse_filter_list(json.dumps(spec), "allow", cel_schema=tetragon_events), [])


def passed(export: ExportFilter, *events: Event) -> list[Event]:
    return [ev for ev in events if export.accepts(ev)]


def refusal(expression: str) -> str:
    with pytest.raises(FilterError) as caught:
        allow(expression)
    return str(caught.value)


# -- matching, with the .proto's types ---------------------------------------------------------------

def test_uint32_pid_compares_with_uint_literals_as_in_tetragon() -> None:
    assert passed(allow("process_exec.process.pid > 1000u"), USER, ROOT) == [USER]
    assert passed(allow("process_exec.process.pid == 2000u"), USER, ROOT) == [USER]


def test_uint_against_an_int_literal_is_refused_as_tetragons_checker_refuses_it() -> None:
    """CEL has no ``uint == int`` (nor ``>``): cel-go's type checker refuses it before any event."""
    assert "no matching overload for '_==_' applied to '(uint, int)': write unsigned literals with a u" \
        in refusal("process_exec.process.pid == 2000")
    assert "'(uint, int)'" in refusal("process_kprobe.args[2].size_arg > 1")
    assert "'(int, uint)'" in refusal("process_kprobe.args[1].int_arg > 1u")  # int32: an int


def test_an_unset_wrapper_is_null() -> None:
    """pid is a UInt32Value: null where the event type has no process_exec; ordering it is an error."""
    assert passed(allow("process_exec.process.pid == null"), USER, EXIT) == [EXIT]
    ordered = allow("process_exec.process.pid > 1000u")
    assert passed(ordered, USER, EXIT) == [USER]
    assert ordered.cel_errors == 1


def test_an_evaluation_error_is_counted_as_no_match() -> None:
    """A missing map key: the host process has no pod, so no label ``app``."""
    export = allow('process_exec.process.pod.pod_labels["app"] == "web"')
    assert passed(export, USER, ROOT) == []
    assert export.cel_errors == 2
    assert "app" in export.cel_last_error


def test_64_bit_and_signed_kprobe_arguments_keep_their_types() -> None:
    """size_arg is uint64 (a string in the JSON event), int_arg int32."""
    export = allow("process_kprobe.args[2].size_arg == 18446744073709551615u && process_kprobe.args[1].int_arg == -4")
    assert passed(export, OPEN) == [OPEN]
    assert export.cel_errors == 0


def test_other_event_types_are_empty_messages_not_errors() -> None:
    """Every event type is a variable; the event's own is filled, the others read their defaults."""
    export = allow('process_exec.process.binary == "/usr/bin/curl"')
    assert passed(export, USER, EXIT, OPEN) == [USER]
    assert export.cel_errors == 0
    exits = allow("process_exit.status == 1u")
    assert passed(exits, USER, EXIT) == [EXIT]


def test_unset_fields_read_as_protobuf_defaults_and_has_tells_them_apart() -> None:
    in_pod = exec_of(process("/usr/bin/curl", pod=pod(labels={"app": "web"})))
    assert passed(allow('process_exec.process.pod.name == ""'), USER, in_pod) == [USER]
    assert passed(allow("has(process_exec.process.pod)"), USER, in_pod) == [in_pod]
    assert passed(allow('process_exec.process.pod.pod_labels["app"] == "web"'), in_pod) == [in_pod]
    assert passed(allow('has(process_exec.process.pod.pod_labels.app)'), USER, in_pod) == [in_pod]


def test_strings_regexes_enums_and_comprehensions() -> None:
    assert passed(allow('process_exec.process.binary.endsWith("curl")'), USER, ROOT) == [USER]
    assert passed(allow('process_exec.process.binary.matches("^/usr/s?bin/ss")'), USER, ROOT) == [ROOT]
    assert passed(allow('process_kprobe.args.exists(a, a.file_arg.path.startsWith("/etc/"))'), OPEN, USER) == [OPEN]
    assert passed(allow("process_kprobe.action == 1"), OPEN) == [OPEN]  # KPROBE_ACTION_POST, an int in CEL
    assert passed(allow("size(process_kprobe.args) == 3"), OPEN) == [OPEN]


def test_expressions_or_and_the_other_keys_and() -> None:
    export = allow("process_exec.process.pid == 7u", "process_exec.process.pid == 2000u")
    assert passed(export, USER, ROOT) == [USER, ROOT]
    assert passed(allow("process_exec.process.pid > 1u", binary_regex=["sshd"]), USER, ROOT) == [ROOT]


def test_errors_are_absorbed_by_logical_operators_as_in_cel() -> None:
    export = allow("process_exec.process.pid / 0u == 1u || true")
    assert passed(export, USER) == [USER]
    assert export.cel_errors == 0


def test_a_result_that_is_not_a_bool_is_refused_or_an_error() -> None:
    assert "the expression gives a uint, not a bool" in refusal("process_exec.process.pid")
    assert "an operand of && must be a bool, not a string" in refusal("process_exec.process.binary && true")
    in_pod = exec_of(process("/usr/bin/curl", pod=pod(labels={"app": "web"})))
    export = allow('process_exec.process.pod.pod_labels["app"]')  # a map's values: known when it runs
    assert passed(export, in_pod) == []
    assert export.cel_errors == 1 and "not a bool" in export.cel_last_error


def test_an_error_in_a_deny_list_holds_nothing_back_and_is_counted() -> None:
    deny = parse_filter_list('{"cel_expression": ["process_exec.process.pod.pod_labels[\\"app\\"] == \\"x\\""]}', "deny",
                             cel_schema=tetragon_events)
    export = ExportFilter([], deny)
    assert passed(export, USER, ROOT) == [USER, ROOT]
    assert export.cel_errors == 2


# -- refused before any event ---------------------------------------------------------------------------

@pytest.mark.parametrize(("expression", "message"), [
    ("process_exec.process.bad_field_name == 'curl'",
     "undefined field 'bad_field_name' of tetragon.Process"),
    ("proc.pid > 1u", "undeclared reference to 'proc'"),
    ("process_exec.process.pid >", "syntax error"),
    ("process_exec.process.binary.matches(process_exec.process.cwd)", "matches() takes one pattern, a string literal"),
    ("process_exec.process.binary.matches('(a')", "not a valid regular expression"),
    (r"process_exec.process.binary.matches('\\C')", "matches()"),
    ("process_exec.process.binary.matches('(?=a)')", "not a valid regular expression"),
    ("process_kprobe.args.all(a, process_kprobe.args.exists(b, a == b))", "inside another comprehension"),
    ("process_kprobe.args.reduce(a, b, a)", "unknown function 'reduce'"),
    ("tetragon.Process{pid: 1u}.pid == 1u", "message construction is not supported"),
])
def test_refused_with_the_reason(expression: str, message: str) -> None:
    text = refusal(expression)
    assert text.startswith("allow:1: cel_expression: ") and message in text, text


def test_size_depth_and_comprehension_bounds() -> None:
    assert f"at most {MAX_CHARS}" in refusal("true || " * (MAX_CHARS // 8) + "true")
    assert f"deeper than {MAX_DEPTH}" in refusal("(" * 200 + "true" + ")" * 200)
    many = " && ".join(["process_kprobe.args.exists(a, true)"] * (MAX_COMPREHENSIONS + 1))
    assert f"more than {MAX_COMPREHENSIONS} comprehensions" in refusal(many)
    # within the bounds: compiled
    compile_cel(" && ".join(["process_kprobe.args.exists(a, true)"] * MAX_COMPREHENSIONS), tetragon_events())


def test_every_refused_expression_is_reported_at_once() -> None:
    with pytest.raises(FilterError) as caught:
        parse_filter_list('{"cel_expression": ["nope == 1", "process_exec.process.x"]}\n'
                          '{"cel_expression": ["1 +"]}', "allow", cel_schema=tetragon_events)
    text, refusal_of_two = str(caught.value), caught.value.issues
    assert len(refusal_of_two) == 3, text
    assert refusal_of_two[2].startswith("allow:2: cel_expression: ")


def test_a_hostile_pattern_costs_linear_time() -> None:
    """``matches`` is RE2 (tetra.regex): ``(a+)+$`` on 100k characters is no catastrophe."""
    export = allow('process_exec.process.arguments.matches("(a+)+$")')
    victim = exec_of(process("/bin/true", arguments="a" * 100_000 + "!"))
    start = time.monotonic()
    assert passed(export, victim) == []
    assert time.monotonic() - start < 1.0


# -- counted where the status and metrics read it ----------------------------------------------------

def _exec(binary: str, pid: int) -> Event:
    return exec_of(process(binary, pid=pid))


def test_a_subscribers_errors_are_in_the_stream_status_after_it_closes() -> None:
    broadcaster = Broadcaster()
    sub = broadcaster.subscribe("cel", events=allow('process_exec.process.pod.pod_labels["app"] == "x"'))  # no pod
    for pid in (1, 2, 3):
        broadcaster.emit(Envelope(_exec("/bin/true", pid)))
    assert sub.queue.qsize() == 0 and sub.cel_errors == 3
    streams = broadcaster.streams()
    assert (streams.cel_errors, streams.subscribers[0].cel_errors) == (3, 3)
    broadcaster.unsubscribe(sub)
    assert broadcaster.streams() == StreamStatus(0, 0, (), 3)


def test_the_export_chain_counts_and_redacts_first() -> None:
    """An expression may read arguments: it sees them redacted, as Tetragon's filters do."""
    chain = ExportChain.from_flags(node_name="n", allowlist='{"cel_expression": '
                                   '["process_exec.process.arguments.contains(\\"hunter2\\")", '
                                   '"process_exec.process.pod.pod_labels[\\"app\\"] == \\"x\\""]}',
                                   redaction_filters='{"redact": ["(hunter2)"]}', cel_schema=tetragon_events)
    secret = exec_of(process("/usr/bin/mysql", arguments="--password hunter2", pid=5))
    assert chain.process(secret) is None
    assert chain.cel_errors == 1  # the second expression: no pod, no label


def test_getevents_options_evaluate_cel_on_standard_input() -> None:
    selection = ClientFilter(cel_expressions=["process_exec.process.pid > 1000u"], cel_schema=tetragon_events)
    lines = [b'{"process_exec": {"process": {"pid": 2000, "binary": "/a"}}}',
             b'{"process_exec": {"process": {"pid": 5, "binary": "/b"}}}',
             b'{"process_exit": {"process": {"pid": 2000}}}']
    assert [ev["process_exec"]["process"]["binary"] for ev in selection.stream(lines)] == ["/a"]
    assert selection.cel_errors == 1  # the exit event: process_exec.process.pid is null there
    with pytest.raises(FilterError, match="--cel-expression: .*undeclared reference to 'pid'"):
        ClientFilter(cel_expressions=["pid > 1u"], cel_schema=tetragon_events)
