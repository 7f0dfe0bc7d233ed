"""Compact renderings match Tetragon's `tetra getevents -o compact` lines, byte for byte.

Events are the JSON shapes tetra exports: the process and tracepoint events of the
replay corpus (a live agent's output), varied one field at a time.
"""

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tetra.export.compact import render_compact
from tetra.kernel.syscall_abi import MACHINE_ABI
from tetra.kernel.syscall_table import ARM64, X64

POD = {"namespace": "default", "name": "xwing", "container": {"id": "containerd://abc"}}
TIME = "2026-11-26T10:00:00.123456789Z"
CORPUS = [json.loads(line) for line in (Path(__file__).parents[1] / "replay" / "corpus" / "corpus.json").open()]


def _process(binary: str = "/usr/bin/curl", arguments: str = "https://ebpf.io", **extra: Any) -> dict[str, Any]:
    return {"exec_id": "aG9zdDoxOjE=", "pid": 123, "binary": binary, "arguments": arguments, **extra}


def _event(kind: str, **body: Any) -> dict[str, Any]:
    return {kind: body, "node_name": "host", "time": TIME}


def _recorded(kind: str, **match: Any) -> dict[str, Any]:
    """A copy of the first event of ``kind`` in the replay corpus whose body has the ``match`` fields."""
    event = next(e for e in CORPUS if kind in e and all(e[kind].get(k) == v for k, v in match.items()))
    return copy.deepcopy(event)


def _kprobe(function: str, args: list[dict[str, Any]], **process: Any) -> dict[str, Any]:
    proc = _process(**process) if process else _process(pod=POD)
    return _event("process_kprobe", process=proc, parent=_process("/bin/bash", ""), function_name=function,
                  args=args, policy_name="p", action="KPROBE_ACTION_POST")


def test_exec_with_pod() -> None:
    event = _event("process_exec", process=_process(pod=POD), parent=_process("/bin/bash", ""))
    assert render_compact(event) == "🚀 process default/xwing /usr/bin/curl https://ebpf.io"


def test_exec_without_pod_prints_the_node_name() -> None:
    event = _event("process_exec", process=_process(arguments="https://example.org"))
    assert render_compact(event) == "🚀 process host /usr/bin/curl https://example.org"


def test_exec_without_arguments_keeps_tetragons_trailing_space() -> None:
    event = _event("process_exec", process=_process("/bin/ls", ""))
    assert render_compact(event) == "🚀 process host /bin/ls "


def test_exit_with_status() -> None:
    event = _event("process_exit", process=_process(pod=POD), status=60, time=TIME)
    assert render_compact(event) == "💥 exit    default/xwing /usr/bin/curl https://ebpf.io 60"


def test_exit_with_signal_prints_the_signal() -> None:
    event = _event("process_exit", process=_process(pod=POD), signal="SIGKILL", status=9)
    assert render_compact(event) == "💥 exit    default/xwing /usr/bin/curl https://ebpf.io SIGKILL"


def test_clean_exit_without_pod_prints_zero() -> None:
    event = _event("process_exit", process=_process(arguments="https://example.org"))
    assert render_compact(event) == "💥 exit    host /usr/bin/curl https://example.org 0"


def test_kprobe_connect() -> None:
    sock = {"family": "AF_INET", "type": "SOCK_STREAM", "protocol": "IPPROTO_TCP",
            "saddr": "10.0.0.1", "daddr": "1.2.3.4", "sport": 34965, "dport": 80}
    line = render_compact(_kprobe("tcp_connect", [{"sock_arg": sock}]))
    assert line == "🔌 connect default/xwing /usr/bin/curl tcp 10.0.0.1:34965 -> 1.2.3.4:80"


def test_kprobe_fd_install_is_an_open_of_the_file() -> None:
    args = [{"int_arg": 3}, {"file_arg": {"mount": "", "path": "/etc/passwd", "permission": "-rw-r--r--"}}]
    assert render_compact(_kprobe("fd_install", args)) == "📬 open    default/xwing /usr/bin/curl /etc/passwd"


def test_kprobe_openat_finds_the_string_argument() -> None:
    args = [{"int_arg": -100}, {"string_arg": "/etc/shadow"}, {"int_arg": 0}]
    assert render_compact(_kprobe("__x64_sys_openat", args)) == "📬️ openat  default/xwing /usr/bin/curl /etc/shadow"


def test_kprobe_write_cuts_the_arch_prefix() -> None:
    args = [{"file_arg": {"path": "/tmp/out"}}, {"bytes_arg": "aGk="}, {"size_arg": "4096"}]
    line = render_compact(_kprobe("__x64_sys_write", args))
    assert line == "📝 write   default/xwing /usr/bin/curl /tmp/out 4096 bytes"


@pytest.mark.parametrize(
    ("function", "args", "expected"),
    [
        # no size: an empty field after one space, as Tetragon's Sprintf leaves it
        ("__arm64_sys_read", [{"file_arg": {"path": "/a"}}], "📚 read    default/xwing /usr/bin/curl /a "),
        ("sys_close", [{"file_arg": {"path": "/a"}}], "📪 close   default/xwing /usr/bin/curl /a"),
        ("tcp_close", [{"sock_arg": {"saddr": "::1", "sport": 1, "daddr": "::1", "dport": 2}}],
         "🧹 close   default/xwing /usr/bin/curl tcp ::1:1 -> ::1:2"),
        ("__x64_sys_setuid", [{"int_arg": 0}], "🔑 setuid  default/xwing /usr/bin/curl 0"),
        ("__x64_sys_mount", [{"string_arg": "/dev/sda1"}, {"string_arg": "/mnt"}],
         "💾 mount   default/xwing /usr/bin/curl /dev/sda1 /mnt"),
        ("bpf_check", [{"bpf_attr_arg": {"ProgType": "BPF_PROG_TYPE_KPROBE", "InsnCnt": 42, "ProgName": "p"}}],
         "🐝 bpf_load default/xwing /usr/bin/curl BPF_PROG_TYPE_KPROBE p instruction count 42"),
        ("security_file_permission", [{"file_arg": {"path": "/etc/x"}}, {"int_arg": 2}],
         "📝 write   default/xwing /usr/bin/curl /etc/x"),
        ("security_mmap_file", [{"file_arg": {"path": "/lib/x.so"}}, {"uint_arg": 5}, {"uint_arg": 1}],
         "📝 mmap-rx default/xwing /usr/bin/curl /lib/x.so"),
        ("__x64_sys_setns", [{"int_arg": 3}, {"int_arg": 0x40000000}], "🔧 setns   default/xwing /usr/bin/curl net"),
        ("do_unlinkat", [{"int_arg": -100}], "❓ syscall default/xwing /usr/bin/curl do_unlinkat -100 (policy p)"),
    ],
)
def test_kprobe_renderings(function: str, args: list[dict[str, Any]], expected: str) -> None:
    assert render_compact(_kprobe(function, args)) == expected


def test_kprobe_without_captured_args_keeps_the_empty_field() -> None:
    assert render_compact(_kprobe("tcp_connect", [])) == "🔌 connect default/xwing /usr/bin/curl "


def test_tracepoint_and_lsm() -> None:
    tp = _event("process_tracepoint", process=_process(pod=POD), subsys="syscalls", event="sys_enter_kill", args=[])
    assert render_compact(tp) == "⁉️ tracepoint default/xwing /usr/bin/curl syscalls sys_enter_kill"  # no policy
    lsm = _event("process_lsm", process=_process(), function_name="bprm_check_security", args=[])
    assert render_compact(lsm) == "🔒 LSM     host /usr/bin/curl bprm_check_security"


def test_uprobe() -> None:
    up = _event("process_uprobe", process=_process("/bin/bash", ""), path="/bin/bash", symbol="readline")
    assert render_compact(up) == "🕵️ uprobe  host /bin/bash /bin/bash readline"


def test_unknown_event_type_is_none() -> None:
    assert render_compact({"process_dns": {"process": _process()}, "time": TIME}) is None
    assert render_compact({"node_name": "host"}) is None


def test_event_without_process_is_none() -> None:
    assert render_compact(_event("process_exec", parent=_process())) is None


def test_rate_limit_info_is_a_plain_line() -> None:
    event = _event("rate_limit_info", number_of_dropped_process_events="17")
    assert render_compact(event) == "🚦 rate_limit 17 events dropped"


def test_timestamps_prefix_nanosecond_time() -> None:
    event = _event("process_exec", process=_process())
    assert render_compact(event, timestamps=True) == f"{TIME} 🚀 process host /usr/bin/curl https://ebpf.io"
    event["time"] = "2026-11-26T10:00:00.5Z"  # protojson trims trailing zeros
    line = render_compact(event, timestamps=True)
    assert line is not None and line.startswith("2026-11-26T10:00:00.500000000Z 🚀")


def test_color_uses_tetragon_ansi_codes() -> None:
    event = _event("process_exit", process=_process(pod=POD), signal="SIGKILL")
    assert render_compact(event, color=True) == (
        "\x1b[34m💥 exit   \x1b[0m \x1b[32mdefault/xwing\x1b[0m \x1b[35m/usr/bin/curl\x1b[0m"
        " \x1b[36mhttps://ebpf.io\x1b[0m \x1b[31mSIGKILL\x1b[0m"
    )
    assert render_compact(event, color=False) == "💥 exit    default/xwing /usr/bin/curl https://ebpf.io SIGKILL"


def test_hostile_strings_cannot_forge_lines_or_escape_sequences() -> None:
    args = "-c 'x\nrm -rf /' \x1b[2J\u202edcba\x7f"
    line = render_compact(_event("process_exec", process=_process("/bin/sh", args)))
    assert line == "🚀 process host /bin/sh \"-c 'x\\nrm -rf /' \\x1b[2J\\u202edcba\\x7f\""
    assert "\n" not in line and "\x1b" not in line


def test_non_ascii_is_kept() -> None:
    line = render_compact(_event("process_exec", process=_process("/usr/bin/ünï", "日本語 🚀")))
    assert line == "🚀 process host /usr/bin/ünï 日本語 🚀"


def test_cap_sys_admin_trailer_is_right_aligned_like_tetragon() -> None:
    proc = _process(pod=POD, cap={"effective": ["CAP_CHOWN", "CAP_SYS_ADMIN"]})
    line = render_compact(_event("process_exec", process=proc))
    head = "🚀 process default/xwing /usr/bin/curl https://ebpf.io"
    # Go pads to column 120 counting the bytes of the line before the trailer.
    assert line == head + " " + "🛑 CAP_SYS_ADMIN".rjust(120 - len(head.encode()))


def test_generic_line_shows_the_first_arguments_and_the_policy() -> None:
    """Was "❓ syscall /usr/bin/curl __x64_sys_execve": which file, which address, which policy?"""
    execve = _kprobe("__x64_sys_execve", [{"string_arg": "/tmp/x/run"}, {"int_arg": 0}], binary="/bin/sh",
                     arguments="")
    assert render_compact(execve) == "❓ syscall host /bin/sh __x64_sys_execve /tmp/x/run 0 (policy p)"
    connect = _kprobe("__x64_sys_connect", [{"int_arg": 4},
                                            {"sockaddr_arg": {"family": "AF_INET", "addr": "1.2.3.4", "port": 443}}],
                      binary="/usr/bin/curl", arguments="")
    assert render_compact(connect) == "❓ syscall host /usr/bin/curl __x64_sys_connect 4 1.2.3.4:443 (policy p)"
    many = [{"file_arg": {"path": "/etc/shadow"}}, {"bytes_arg": "aGk="}, {"capability_arg": {"value": 21,
            "name": "CAP_SYS_ADMIN"}}, {"cred_arg": {"uid": 0}}, {"int_arg": 5}]
    line = render_compact(_kprobe("security_something", many, binary="/bin/x", arguments=""))
    assert line == "❓ syscall host /bin/x security_something /etc/shadow 2 bytes CAP_SYS_ADMIN (policy p)"
    lsm = _event("process_lsm", process=_process("/bin/x", ""), function_name="file_open",
                 args=[{"file_arg": {"path": "/etc/passwd"}}], policy_name="lsm-p", action="KPROBE_ACTION_POST")
    assert render_compact(lsm) == "🔒 LSM     host /bin/x file_open /etc/passwd (policy lsm-p)"


@pytest.mark.parametrize(("extra", "trailer"), [
    ({}, " [Sigkill]"),
    ({"policy_mode": "monitor"}, " [monitor: Sigkill not done]"),
    ({"protected_process": True}, " [Sigkill withheld: protected process]"),
])
def test_an_action_other_than_post_is_shown_with_its_mode(extra: dict[str, Any], trailer: str) -> None:
    event = _kprobe("__x64_sys_openat", [{"int_arg": -100}, {"string_arg": "/etc/shadow"}], binary="/bin/cat",
                    arguments="")
    event["process_kprobe"].update(action="KPROBE_ACTION_SIGKILL", **extra)
    line = render_compact(event)
    assert line == "📬️ openat  host /bin/cat /etc/shadow" + trailer
    generic = _kprobe("__x64_sys_execve", [{"string_arg": "/dev/shm/x"}], binary="/bin/sh", arguments="")
    generic["process_kprobe"].update(action="KPROBE_ACTION_SIGKILL", **extra)
    assert render_compact(generic) == "❓ syscall host /bin/sh __x64_sys_execve /dev/shm/x (policy p)" + trailer
