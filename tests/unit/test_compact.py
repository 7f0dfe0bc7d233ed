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


# -- the node name where there is no pod, on every event type with a process ---------------------

NUMBERS = {name: number for number, name in {"x64": X64, "arm64": ARM64}[MACHINE_ABI].items()}


@pytest.mark.parametrize(("event", "line"), [
    (_recorded("process_exec"),
     '🚀 process vm /usr/bin/dash -c "read go < /tmp/tetra-replay/go; exec /bin/sh /tmp/tetra-replay/workload.sh"'),
    (_recorded("process_exit", signal="SIGTERM"), '💥 exit    vm /usr/bin/dash -c "kill -TERM $$" SIGTERM'),
    (_recorded("process_kprobe", policy_name="open-prefix"),
     "📬️ openat  vm /usr/bin/cat /tmp/tetra-replay/prefix/a.txt"),
    (_recorded("process_tracepoint", event="sys_enter_unlinkat"),
     "⁉️ tracepoint vm /usr/bin/rm syscalls sys_enter_unlinkat /tmp/tetra-replay/unlink/x (policy unlink-tracepoint)"),
    (_recorded("process_uprobe"),
     "🕵️ uprobe  vm /tmp/tetra-replay/marker /tmp/tetra-replay/marker tetra_marker 42 hello-uprobe (policy uprobe)"),
])
def test_recorded_events_name_the_node(event: dict[str, Any], line: str) -> None:
    assert render_compact(event) == line


@pytest.mark.parametrize(("kind", "body", "tail"), [
    ("process_tracepoint", {"subsys": "raw_syscalls", "event": "sys_enter", "args": [{"long_arg": "39"}]}, ""),
    ("process_lsm", {"function_name": "file_open"}, "file_open"),
    ("process_usdt", {"path": "/usr/lib/libc.so.6", "provider": "libc", "name": "setjmp"},
     "/usr/lib/libc.so.6 libc setjmp"),
    ("process_loader", {"path": "/usr/lib/libc.so.6", "buildid": "3q2+7w=="}, "deadbeef /usr/lib/libc.so.6"),
])
def test_every_event_with_a_process_names_the_node_without_a_pod(kind: str, body: dict[str, Any],
                                                                  tail: str) -> None:
    line = render_compact(_event(kind, process=_process("/bin/x", ""), **body))
    assert line is not None and line.split(" /bin/x")[0].endswith(" host")
    with_pod = render_compact(_event(kind, process=_process("/bin/x", "", pod=POD), **body))
    assert with_pod == line.replace(" host /bin/x", " default/xwing /bin/x")
    if tail:
        assert line.endswith(f"/bin/x {tail}")


# -- quoting: a field its owner chooses, as Tetragon's strconv.Quote ------------------------------


@pytest.mark.parametrize(("event", "line"), [
    (_event("process_exec", process=_process("/tmp/my dir/run", "x")), '🚀 process host "/tmp/my dir/run" x'),
    (_event("process_exec", process=_process("/usr/bin/\x1b[31mmalicious\x1b[0m", "normal-args", pod=POD)),
     '🚀 process default/xwing "/usr/bin/\\x1b[31mmalicious\\x1b[0m" normal-args'),
    # the arguments are a list: spaces separate them, an argument with spaces is already quoted in it
    (_event("process_exec", process=_process("/bin/sh", '-c "echo hi" plain')),
     '🚀 process host /bin/sh -c "echo hi" plain'),
    (_event("process_exec", process=_process("/bin/sh", "echo \x00null\rbyte", pod=POD)),
     '🚀 process default/xwing /bin/sh "echo \\x00null\\rbyte"'),
    ({"process_exec": {"process": _process("/usr/bin/test", "args")}, "node_name": "host\nwith\nnewlines"},
     '🚀 process "host\\nwith\\nnewlines" /usr/bin/test args'),
    (_kprobe("fd_install", [{"int_arg": 3}, {"file_arg": {"path": "/tmp/file\nwith\nnewlines"}}]),
     '📬 open    default/xwing /usr/bin/curl "/tmp/file\\nwith\\nnewlines"'),
    (_kprobe("sys_openat", [{"int_arg": -100}, {"string_arg": '/etc/a "b"\\c'}]),
     '📬️ openat  default/xwing /usr/bin/curl "/etc/a \\"b\\"\\\\c"'),
    (_kprobe("security_path_truncate", [{"path_arg": {"path": "/data/bad\nfile"}}]),
     '📝 truncate default/xwing /usr/bin/curl "/data/bad\\nfile"'),
    (_kprobe("__x64_sys_mount", [{"string_arg": "my disk"}, {"string_arg": "/mnt"}]),
     '💾 mount   default/xwing /usr/bin/curl "my disk" /mnt'),
    (_event("process_uprobe", process=_process("/usr/bin/test", "", pod=POD), path="/lib/\x1b[31mevil.so",
            symbol="func\nname"), '🕵️ uprobe  default/xwing /usr/bin/test "/lib/\\x1b[31mevil.so" "func\\nname"'),
    (_event("process_usdt", process=_process("/usr/bin/test", "", pod=POD), path="/usr/lib/bad\x00path",
            provider="prov\nider", name="probe\tname"),
     '🕵️ usdt    default/xwing /usr/bin/test "/usr/lib/bad\\x00path" "prov\\nider" "probe\\tname"'),
    (_event("process_loader", process=_process("/usr/bin/loader", "", pod=POD), path="/lib/evil\x1b[31m.so"),
     '🧬 loader  default/xwing /usr/bin/loader "/lib/evil\\x1b[31m.so"'),
    (_event("process_throttle", type="THROTTLE_START", cgroup="/sys/fs/cgroup\nmalicious"),
     '🧬 throttle START "/sys/fs/cgroup\\nmalicious"'),
    (_event("process_exec", process=_process("/bin/echo", "\u202eevil \U000e0001 \x85")),
     '🚀 process host /bin/echo "\\u202eevil \\U000e0001 \\u0085"'),
])
def test_user_fields_are_quoted_as_go_quotes_them(event: dict[str, Any], line: str) -> None:
    assert render_compact(event) == line


def test_kernel_and_kubernetes_fields_are_never_quoted() -> None:
    line = render_compact(_kprobe("tcp_connect", [{"sock_arg": {"saddr": "10.0.0.1", "sport": 1, "daddr": "1.2.3.4",
                                                                "dport": 80}}]))
    assert line == "🔌 connect default/xwing /usr/bin/curl tcp 10.0.0.1:1 -> 1.2.3.4:80"
    generic = render_compact(_kprobe("my func", [{"int_arg": 1}]))
    assert generic == "❓ syscall default/xwing /usr/bin/curl my func 1 (policy p)"


# -- Tetragon's spacing: one space before every field, empty or not -------------------------------


@pytest.mark.parametrize(("function", "line"), [
    ("__x64_sys_write", "📝 write   default/xwing /usr/bin/curl  "),
    ("fd_install", "📬 open    default/xwing /usr/bin/curl "),
    ("bpf_check", "🐝 bpf_load default/xwing /usr/bin/curl "),
    ("security_perf_event_alloc", "🐝 perf_event_alloc default/xwing /usr/bin/curl "),
    ("security_bpf_map_alloc", "🗺 bpf_map_create default/xwing /usr/bin/curl "),
    ("security_bpf_map_create", "🗺 bpf_map_create default/xwing /usr/bin/curl "),
    ("security_file_permission", "❓ security_file_permission default/xwing /usr/bin/curl "),
    ("security_mmap_file", "❓ security_mmap_file default/xwing /usr/bin/curl "),
    ("security_path_truncate", "❓ security_path_truncate default/xwing /usr/bin/curl "),
    ("security_file_truncate", "❓ security_file_truncate default/xwing /usr/bin/curl "),
    ("__x64_sys_clock_settime", "⏰ clock_settime default/xwing /usr/bin/curl"),
    ("proc_exec_connector", "🔧 proc_exec_connector default/xwing /usr/bin/curl"),
])
def test_renderings_without_captured_args_keep_tetragons_spaces(function: str, line: str) -> None:
    assert render_compact(_kprobe(function, [])) == line


def test_exit_without_arguments_has_two_spaces_before_the_status() -> None:
    assert render_compact(_event("process_exit", process=_process("/bin/true", ""), status=0)) == \
        "💥 exit    host /bin/true  0"


def test_loader_prints_the_build_id_only_when_there_is_one() -> None:
    event = _event("process_loader", process=_process("/bin/x", ""), path="/lib/x.so", buildid="3q2+7w==")
    assert render_compact(event) == "🧬 loader  host /bin/x deadbeef /lib/x.so"
    del event["process_loader"]["buildid"]
    assert render_compact(event) == "🧬 loader  host /bin/x /lib/x.so"


# -- truncate and BPF map renderings --------------------------------------------------------------


def test_security_file_truncate_is_a_truncate_of_the_file() -> None:
    args = [{"file_arg": {"path": "/etc/shadow", "permission": "-rw-------"}}]
    assert render_compact(_kprobe("security_file_truncate", args)) == \
        "📝 truncate default/xwing /usr/bin/curl /etc/shadow"


@pytest.mark.parametrize("function", ["security_bpf_map_alloc", "security_bpf_map_create"])
def test_bpf_map_create_under_both_hook_names(function: str) -> None:
    args = [{"bpf_map_arg": {"MapType": "BPF_MAP_TYPE_HASH", "KeySize": 8, "ValueSize": 8, "MaxEntries": 1024,
                             "MapName": "amazing-map"}}]
    assert render_compact(_kprobe(function, args, binary="/usr/bin/bpftool", pod=POD)) == (
        "🗺 bpf_map_create default/xwing /usr/bin/bpftool BPF_MAP_TYPE_HASH amazing-map key size 8 value size 8"
        " max entries 1024")


# -- raw_syscalls/sys_enter: the id as the call it names ------------------------------------------


def _raw(*args: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return _event("process_tracepoint", process=_process("/usr/bin/cat", "/etc/hostname"), subsys="raw_syscalls",
                  event="sys_enter", args=list(args), policy_name="raw", action="KPROBE_ACTION_POST", **extra)


OPENAT = "openat(int dfd=?, const char * filename=?, int flags=?, umode_t mode=?)"


@pytest.mark.parametrize(("args", "call"), [
    ([{"long_arg": str(NUMBERS["openat"])}], OPENAT),  # int64
    ([{"size_arg": str(NUMBERS["openat"])}], OPENAT),  # uint64: named too, where Tetragon says "unknown"
    ([{"syscall_id": {"id": NUMBERS["openat"], "abi": MACHINE_ABI}}], OPENAT),  # syscall64
    ([{"syscall_id": {"abi": MACHINE_ABI}}], "read(unsigned int fd=?, char * buf=?, size_t count=?)"),  # id 0: left out
    ([{"syscall_id": {"id": NUMBERS["getpid"], "abi": MACHINE_ABI}}], "getpid()"),
    ([{"long_arg": str(NUMBERS["fstat"])}], "fstat"),  # its arguments are under the entry function's name, newfstat
    ([{"long_arg": str(NUMBERS["openat"])}, {"size_arg": "18446744073709551516"}, {"size_arg": "140733193388032"}],
     "openat(int dfd=18446744073709551516, const char *filename=0x7fff00000000, int flags=?, umode_t mode=?)"),
    ([{"long_arg": "100000"}], "unknown"),
    ([{"int_arg": 1}], "unknown"),
    ([], "unknown"),
])
def test_raw_syscall_enter_names_the_call(args: list[dict[str, Any]], call: str) -> None:
    assert render_compact(_raw(*args)) == f"☎  syscall host /usr/bin/cat {call}"


def test_raw_syscall_of_another_abi_is_prefixed_with_it() -> None:
    other = "arm64" if MACHINE_ABI == "x64" else "x64"
    number = {name: nr for nr, name in {"x64": X64, "arm64": ARM64}[other].items()}["openat"]
    assert render_compact(_raw({"syscall_id": {"id": number, "abi": other}})) == \
        f"☎  syscall host /usr/bin/cat {other}/openat"
    assert render_compact(_raw({"syscall_id": {"id": 5, "abi": "i386"}})) == "☎  syscall host /usr/bin/cat unknown"


def test_raw_syscall_says_what_its_action_did() -> None:
    event = _raw({"long_arg": str(NUMBERS["getpid"])}, policy_mode="monitor")
    event["process_tracepoint"]["action"] = "KPROBE_ACTION_SIGKILL"
    assert render_compact(event) == "☎  syscall host /usr/bin/cat getpid() [monitor: Sigkill not done]"
    assert render_compact(event, color=True) == (
        "\x1b[34m☎  syscall\x1b[0m \x1b[32mhost\x1b[0m \x1b[35m/usr/bin/cat\x1b[0m \x1b[36mgetpid()\x1b[0m"
        " \x1b[33m[monitor: Sigkill not done]\x1b[0m")


def test_tables_agree_with_the_architectures_known_numbers() -> None:
    assert (X64[0], X64[2], X64[59], X64[257], X64[435]) == ("read", "open", "execve", "openat", "clone3")
    assert (ARM64[56], ARM64[63], ARM64[80], ARM64[221], ARM64[435]) == ("openat", "read", "fstat", "execve", "clone3")
