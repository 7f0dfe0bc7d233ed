"""Checks of the benchmark's own bookkeeping: counting, reconciling, ordering. No root, no BPF.

    .venv/bin/python -m pytest benchmarks/test_peers.py

The measurements themselves are not asserted on (they are measurements); what is
tested is that an event is attributed to the right storm, that an uncounted loss
fails the accounting, and that auditd can only ever run after everything else.
The auditd log parser is tested on records in auditd's RAW format, so it is
checked without starting auditd (which would slow this machine until reboot).
"""

import sys
from pathlib import Path

import orjson
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import auditd_peer  # noqa: E402
import peers  # noqa: E402
from plain_tracer import sockaddr_text  # noqa: E402

DRIVER = 4242
TARGET = "/tmp/peers-x/open-target"


def tetra_line(kind: str, pid: int, ppid: int, **body: object) -> bytes:
    event = {kind: {"process": {"exec_id": "eA==", "pid": pid, "binary": body.pop("binary", "/x")},
                    "parent": {"pid": ppid}, **body}, "node_name": "n"}
    return orjson.dumps(event) + b"\n"


def write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(lines))
    return path


def test_tetra_exec_storm_counts_only_the_drivers_children(tmp_path: Path) -> None:
    f = write(tmp_path / "t.json", [
        tetra_line("process_exec", DRIVER, 1, binary="/work/exec_storm"),
        tetra_line("process_exec", DRIVER + 1, DRIVER, binary="/bin/true"),
        tetra_line("process_exit", DRIVER + 1, DRIVER, binary="/bin/true"),
        tetra_line("process_exec", 99, 98, binary="/bin/true"),  # someone else's
        tetra_line("process_kprobe", DRIVER + 1, DRIVER, function_name="__x64_sys_openat",
                   args=[{"string_arg": "/etc/ld.so.cache"}]),
    ])
    c = peers.count_tetra(f, "exec", DRIVER, TARGET, (0, 10**9))
    assert (c.lines, c.storm_events, c.delivered) == (5, 4, 1)


def test_tetra_open_storm_needs_the_target_path(tmp_path: Path) -> None:
    lines = [tetra_line("process_kprobe", DRIVER, 1, function_name="__x64_sys_openat",
                        args=[{"int_arg": -100}, {"string_arg": TARGET}, {"int_arg": 0}])] * 3
    lines.append(tetra_line("process_kprobe", DRIVER, 1, function_name="__x64_sys_openat",
                            args=[{"string_arg": "/lib/libc.so.6"}]))
    f = write(tmp_path / "t.json", lines)
    first = len(lines[0])
    c = peers.count_tetra(f, "open", DRIVER, TARGET, (first, 2 * first))
    assert (c.delivered, c.storm_events, c.window_lines) == (3, 4, 1)


def test_tetra_connect_storm(tmp_path: Path) -> None:
    f = write(tmp_path / "t.json", [
        tetra_line("process_kprobe", DRIVER, 1, function_name="__x64_sys_connect", args=[]),
        tetra_line("process_kprobe", DRIVER + 7, 1, function_name="__x64_sys_connect", args=[]),
    ])
    assert peers.count_tetra(f, "connect", DRIVER, TARGET, (0, 0)).delivered == 1


def test_plain_counts_children_by_their_exec(tmp_path: Path) -> None:
    rows = [
        {"event": "exec", "pid": DRIVER, "path": "/work/exec_storm"},
        {"event": "exec", "pid": DRIVER + 1, "path": "/bin/true"},
        {"event": "openat", "pid": DRIVER + 1, "path": "/etc/ld.so.cache"},
        {"event": "exec", "pid": DRIVER - 5, "path": "/bin/true"},  # older than the driver: not a child
    ]
    f = write(tmp_path / "p.json", [orjson.dumps(r) + b"\n" for r in rows])
    c = peers.count_plain(f, "exec", DRIVER, TARGET, (0, 10**9))
    assert (c.delivered, c.storm_events, c.lines) == (1, 3, 4)


def tetra_summary(sent: int, lost: int, received: int, posted: int, lines: int) -> dict:
    return {"kernel": {"exec": {"sent": 0, "lost": 0}, "generic": {"sent": sent, "lost": lost}},
            "kernel_lost": lost, "received": received,
            "pipeline": {"records": received, "decode_errors": 0, "events": {"process_kprobe": lines}},
            "policies": [{"name": "bench-firehose", "hooks": [{"hook": "h", "seen": posted, "posted": posted}]}]}


def test_tetra_accounting_reconciles_and_catches_uncounted_loss() -> None:
    config = peers.CONFIGS["tetra-firehose"]
    ok = peers.account_tetra(tetra_summary(70, 30, 70, 100, 70), peers.EventCount(lines=70, delivered=70),
                             "open", config, 100)
    assert all(c.ok for c in ok)
    # 10 storm events neither delivered nor counted lost
    bad = peers.account_tetra(tetra_summary(70, 20, 70, 90, 70), peers.EventCount(lines=70, delivered=70),
                              "open", config, 100)
    assert [c.name for c in bad if not c.ok] == ["ops delivered or lost"]
    # a received record that never reached the file
    gap = peers.account_tetra(tetra_summary(70, 30, 70, 100, 70), peers.EventCount(lines=69, delivered=69),
                              "open", config, 99)
    assert [c.name for c in gap if not c.ok] == ["events=lines"]


def test_posted_mismatch_is_reported_but_not_fatal() -> None:
    checks = peers.account_tetra(tetra_summary(70, 30, 70, 101, 70), peers.EventCount(lines=70, delivered=70),
                                 "open", peers.CONFIGS["tetra-firehose"], 100)
    sample = peers.Sample("open", "tetra-firehose", 1, 1, 100, 1, 1, checks=checks)
    assert sample.accounting_ok
    assert [c.name for c in checks if not c.ok] == ["posted=sent+lost"]


def test_quiet_policy_must_post_nothing_for_the_storm(tmp_path: Path) -> None:
    summary = tetra_summary(2, 0, 2, 2, 2)
    summary["policies"][0]["name"] = "bench-selective"
    config = peers.CONFIGS["tetra-selective"]
    shadow = tetra_line("process_kprobe", 77, 1, binary="/usr/sbin/unix_chkpwd", function_name="__x64_sys_openat",
                        policy_name="bench-selective", args=[{"string_arg": "/etc/shadow"}])
    # another process read /etc/shadow twice: reported, not the storm's fault
    c = peers.count_tetra(write(tmp_path / "a.json", [shadow, shadow]), "open", DRIVER, TARGET, (0, 0))
    checks = peers.account_tetra(summary, c, "open", config, 100)
    assert c.quiet_posts_elsewhere == {"/usr/sbin/unix_chkpwd __x64_sys_openat": 2}
    assert [(x.name, x.strict) for x in checks if not x.ok] == [("posted=0", False)]
    # the storm itself posted: strict failure
    mine = tetra_line("process_kprobe", DRIVER, 1, function_name="__x64_sys_openat", policy_name="bench-selective",
                      args=[{"string_arg": TARGET}])
    c = peers.count_tetra(write(tmp_path / "b.json", [shadow, mine]), "open", DRIVER, TARGET, (0, 0))
    checks = peers.account_tetra(summary, c, "open", config, 100)
    assert [x.name for x in checks if not x.ok and x.strict] == ["storm posted 0"]


def test_auditd_runs_last_and_baseline_after_it() -> None:
    order = peers.plan(["exec", "open"], ["baseline", "auditd", "tetra-firehose", "baseline-after-auditd"], 3)
    kinds = [c for _, _, c in order]
    first_audit = kinds.index("auditd")
    assert set(kinds[:first_audit]) == {"baseline", "tetra-firehose"}
    assert set(kinds[first_audit:first_audit + 6]) == {"auditd"}
    assert set(kinds[first_audit + 6:]) == {"baseline-after-auditd"}
    assert len(order) == 3 * 2 * 4


def test_audit_rules() -> None:
    assert auditd_peer.audit_rules(True) == [["-a", "always,exit", "-F", "arch=b64", "-S", "execve", "-S", "openat",
                                              "-S", "connect", "-k", "tetra-bench"]]
    assert "uid=2147483646" in auditd_peer.audit_rules(False)[0]


AUDIT_LOG = f"""\
type=SYSCALL msg=audit(1764150000.100:10): arch=c000003e syscall=257 success=yes exit=3 a0=ffffff9c a1=7ffd items=1 ppid=1 pid={DRIVER} auid=0 uid=0 comm="open_storm" exe="/tmp/open_storm" key="tetra-bench"
type=CWD msg=audit(1764150000.100:10): cwd="/work"
type=PATH msg=audit(1764150000.100:10): item=0 name="/etc/ld.so.cache" inode=1 nametype=NORMAL
type=SYSCALL msg=audit(1764150000.200:11): arch=c000003e syscall=257 success=yes exit=3 a0=ffffff9c a1=7ffe items=1 ppid=1 pid={DRIVER} auid=0 uid=0 comm="open_storm" exe="/tmp/open_storm" key="tetra-bench"
type=PATH msg=audit(1764150000.200:11): item=0 name="{TARGET}" inode=2 nametype=NORMAL
type=SYSCALL msg=audit(1764150000.300:12): arch=c000003e syscall=257 success=yes exit=3 a0=ffffff9c a1=7ffe items=1 ppid=1 pid=77 auid=0 uid=0 comm="cat" exe="/bin/cat" key="tetra-bench"
type=PATH msg=audit(1764150000.300:12): item=0 name="{TARGET}" inode=2 nametype=NORMAL
type=SYSCALL msg=audit(1764150000.400:13): arch=c000003e syscall=59 success=yes exit=0 a0=1 items=2 ppid={DRIVER} pid={DRIVER + 1} auid=0 uid=0 comm="true" exe="/usr/bin/true" key="tetra-bench"
type=SYSCALL msg=audit(1764150000.500:14): arch=c000003e syscall=42 success=yes exit=0 a0=3 items=0 ppid=1 pid={DRIVER} auid=0 uid=0 comm="connect_storm" exe="/tmp/connect_storm" key="tetra-bench"
"""


@pytest.mark.parametrize(("storm", "delivered"), [("open", 1), ("exec", 1), ("connect", 1)])
def test_audit_log_attribution(tmp_path: Path, storm: str, delivered: int) -> None:
    log = tmp_path / "audit.log"
    log.write_text(AUDIT_LOG)
    c = auditd_peer.count_audit_log(log, storm, DRIVER, TARGET, 0, 10**9)
    assert c.delivered == delivered
    assert c.storm_events == 4  # three SYSCALLs by the driver, one by its child
    assert c.lines == len(AUDIT_LOG.splitlines())


def test_sockaddr_text() -> None:
    raw = (2).to_bytes(2, "little") + (8080).to_bytes(2, "big") + bytes([127, 0, 0, 1]) + bytes(20)
    assert sockaddr_text(raw, 16) == "127.0.0.1:8080"
    raw6 = (10).to_bytes(2, "little") + (443).to_bytes(2, "big") + bytes(4) + bytes(15) + b"\x01" + bytes(4)
    assert sockaddr_text(raw6, 28) == "[::1]:443"


def test_children_after_the_pids_wrapped_are_still_children() -> None:
    assert peers.forked_after(32_700, 32_650, 32_768)
    assert peers.forked_after(300, 32_650, 32_768)  # wrapped: forked after the driver
    assert not peers.forked_after(32_600, 32_650, 32_768)  # before it
    assert not peers.forked_after(32_650, 32_650, 32_768)  # the driver itself
