"""What a Sigkill or Signal taken at a syscall's entry prevents, and what it does not.

docs/enforcement.md makes these claims; each test here proves one with real
processes on this kernel. The action is ``bpf_send_signal`` from the
``syscalls:sys_enter_*`` tracepoint: the signal is queued before the call's
body runs, the body still runs, and the process dies on its way back to user
space. So what is prevented is whatever the kernel does not do once a fatal
signal is pending (it checks before copying file data), plus everything the
process would have done afterwards; what already happened, what the kernel
does without checking, and what other syscalls do, is not.

Every policy is enforced, and scoped to this run's directory. pytest never
makes a call a policy targets (that would kill pytest): target files are
staged under another name and renamed into place, and every targeted write or
read happens in a child process.
"""

import base64
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import Event, RunningAgent

pytestmark = pytest.mark.usefixtures("root")

ORIGINAL = b"original contents\n"
SECRET = b"TOP SECRET 42\n"

POLICIES = {
    # Entry hooks: the signal is sent before the call's body runs.
    "sigkill-at-entry": """
        kprobes:
        - call: "sys_write"
          syscall: true
          args:
          - index: 0
            type: "fd"
          - index: 1
            type: "char_buf"
            sizeArgIndex: 3
          - index: 2
            type: "size_t"
          selectors:
          - matchArgs:
            - index: 0
              operator: "Prefix"
              values: ["{root}/guarded/"]
            matchActions:
            - action: Sigkill
          - matchArgs:
            - index: 0
              operator: "Prefix"
              values: ["{root}/content/"]
            - index: 1
              operator: "Prefix"
              values: ["FORBIDDEN"]
            matchActions:
            - action: Sigkill
        - call: "sys_read"
          syscall: true
          args:
          - index: 0
            type: "fd"
          selectors:
          - matchArgs:
            - index: 0
              operator: "Equal"
              values: ["{root}/secret"]
            matchActions:
            - action: Sigkill
        - call: "sys_unlinkat"
          syscall: true
          args:
          - index: 1
            type: "string"
          selectors:
          - matchArgs:
            - index: 1
              operator: "Prefix"
              values: ["{root}/guarded/"]
            matchActions:
            - action: Sigkill
        """,
    # The same write filter at the call's return (the sys_exit_write tracepoint).
    "sigkill-at-return": """
        kprobes:
        - call: "sys_write"
          syscall: true
          return: true
          args:
          - index: 0
            type: "fd"
          returnArg:
            index: 0
            type: "int"
          selectors:
          - matchArgs:
            - index: 0
              operator: "Prefix"
              values: ["{root}/late/"]
            matchReturnArgs:
            - index: 0
              operator: "GT"
              values: ["0"]
            matchActions:
            - action: Sigkill
        """,
    "signal-usr1": """
        kprobes:
        - call: "sys_write"
          syscall: true
          args:
          - index: 0
            type: "fd"
          selectors:
          - matchArgs:
            - index: 0
              operator: "Prefix"
              values: ["{root}/signalled/"]
            matchActions:
            - action: Signal
              argSig: 10
        """,
}
SUBDIRS = ("guarded", "content", "late", "signalled", "staging", "scripts")


@pytest.fixture(scope="module")
def root_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sigkill-root")
    for sub in SUBDIRS:
        (root / sub).mkdir()
    return root


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, root: None, root_dir: Path) -> Iterator[RunningAgent]:
    policy_dir = tmp_path_factory.mktemp("sigkill-policies")
    for name, spec in POLICIES.items():
        body = textwrap.dedent(spec).format(root=root_dir)
        (policy_dir / f"{name}.yaml").write_text(
            f"apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: {name}\nspec:\n"
            + textwrap.indent(body, "  "))
    running = RunningAgent(tmp_path_factory.mktemp("sigkill-agent"), "--tracing-policy-dir", str(policy_dir))
    running.start(180)
    yield running
    if running.proc and running.proc.poll() is None:
        running.stop()


@pytest.fixture(scope="module")
def secret(root_dir: Path) -> Path:
    """The file the read policy guards; pytest never reads it."""
    return stage(root_dir, root_dir / "secret", SECRET)


def stage(root_dir: Path, target: Path, data: bytes = ORIGINAL) -> Path:
    """Put ``data`` at ``target`` without pytest ever writing to ``target`` itself."""
    staged = root_dir / "staging" / target.name
    staged.write_bytes(data)
    staged.rename(target)
    return target


def child(root_dir: Path, code: str, *, via_shell: bool = False) -> subprocess.CompletedProcess[bytes]:
    """Run ``code`` in a fresh Python; ``via_shell`` runs it under /bin/sh, which then prints its status."""
    script = root_dir / "scripts" / f"child-{os.urandom(4).hex()}.py"
    script.write_text("import os, signal, sys, threading\n" + textwrap.dedent(code))
    argv = [sys.executable, str(script)]
    if via_shell:
        argv = ["/bin/sh", "-c", '"$0" "$1"; echo "shell continues, status $?"', *argv]
    return subprocess.run(argv, capture_output=True, timeout=60)


def policy_events(agent: RunningAgent, policy: str, path: Path) -> list[Event]:
    """The events of ``policy`` whose first argument is ``path``, once there is one."""
    def matching(events: list[Event]) -> list[Event]:
        return [e["process_kprobe"] for e in events if "process_kprobe" in e
                and e["process_kprobe"]["policy_name"] == policy
                and _first_path(e["process_kprobe"]) == str(path)]

    return matching(agent.wait_for(lambda events: bool(matching(events))))


def _first_path(event: Event) -> str | None:
    first = event["args"][0] if event["args"] else {}
    return first.get("file_arg", {}).get("path") or first.get("string_arg")


# --- what Sigkill at entry prevents ------------------------------------------------------------------------


def test_sigkill_at_entry_the_write_never_lands(agent: RunningAgent, root_dir: Path) -> None:
    target = stage(root_dir, root_dir / "guarded" / "config")
    done = child(root_dir, f"""
        fd = os.open({str(target)!r}, os.O_WRONLY | os.O_APPEND)
        os.write(fd, b"INJECTED\\n")
        print("survived the write", flush=True)
        """)
    assert done.returncode == -signal.SIGKILL
    assert done.stdout == b""  # not one more instruction of the process ran
    assert target.read_bytes() == ORIGINAL  # byte for byte: the kernel saw the fatal signal before copying
    [event] = policy_events(agent, "sigkill-at-entry", target)
    assert event["action"] == "KPROBE_ACTION_SIGKILL"
    assert base64.b64decode(event["args"][1]["bytes_arg"]) == b"INJECTED\n"  # the event says what was attempted


def test_sigkill_on_the_written_bytes_stops_only_that_write(agent: RunningAgent, root_dir: Path) -> None:
    target = stage(root_dir, root_dir / "content" / "log", b"")
    done = child(root_dir, f"""
        fd = os.open({str(target)!r}, os.O_WRONLY | os.O_APPEND)
        os.write(fd, b"harmless line\\n")
        print("first write done", flush=True)
        os.write(fd, b"FORBIDDEN line\\n")
        print("survived the second write", flush=True)
        """)
    assert done.returncode == -signal.SIGKILL
    assert done.stdout == b"first write done\n"
    assert target.read_bytes() == b"harmless line\n"  # the write before the match stays, the matched one never lands
    [event] = policy_events(agent, "sigkill-at-entry", target)
    assert base64.b64decode(event["args"][1]["bytes_arg"]) == b"FORBIDDEN line\n"


def test_sigkill_on_read_the_process_never_gets_the_data(agent: RunningAgent, root_dir: Path, secret: Path) -> None:
    done = child(root_dir, f"""
        fd = os.open({str(secret)!r}, os.O_RDONLY)
        sys.stdout.buffer.write(b"read: " + os.read(fd, 100))
        sys.stdout.flush()
        """)
    assert done.returncode == -signal.SIGKILL
    assert done.stdout == b""  # nothing reached the pipe: the data never reached the process
    [event] = policy_events(agent, "sigkill-at-entry", secret)
    assert event["function_name"] == "__x64_sys_read" and event["action"] == "KPROBE_ACTION_SIGKILL"


# --- what it does not prevent ----------------------------------------------------------------------------


def test_at_return_the_write_has_already_landed(agent: RunningAgent, root_dir: Path) -> None:
    target = stage(root_dir, root_dir / "late" / "config")
    done = child(root_dir, f"""
        fd = os.open({str(target)!r}, os.O_WRONLY | os.O_APPEND)
        os.write(fd, b"LANDED\\n")
        print("survived the write", flush=True)
        """)
    assert done.returncode == -signal.SIGKILL
    assert done.stdout == b""
    assert target.read_bytes() == ORIGINAL + b"LANDED\n"  # killed, but only after the kernel wrote
    [event] = policy_events(agent, "sigkill-at-return", target)
    assert event["return"] == {"int_arg": len(b"LANDED\n")}


def test_what_completed_before_the_kill_stays_done(agent: RunningAgent, root_dir: Path) -> None:
    """Earlier calls, including the O_TRUNC of the open that preceded the killed write, are not undone."""
    journal = root_dir / "journal"
    target = stage(root_dir, root_dir / "guarded" / "truncated")
    done = child(root_dir, f"""
        with open({str(journal)!r}, "wb") as out:
            out.write(b"step 1 done\\n")
        fd = os.open({str(target)!r}, os.O_WRONLY | os.O_TRUNC)
        os.write(fd, b"REPLACEMENT\\n")
        """)
    assert done.returncode == -signal.SIGKILL
    assert journal.read_bytes() == b"step 1 done\n"
    assert target.read_bytes() == b""  # the open truncated it; only the write was stopped


def test_the_kernel_may_finish_the_call_before_the_kill(agent: RunningAgent, root_dir: Path) -> None:
    """A pipe write copies its data with no check for a pending signal, and unlink has none either."""
    fifo = root_dir / "guarded" / "fifo"
    os.mkfifo(fifo)
    victim = stage(root_dir, root_dir / "guarded" / "victim")
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # pytest only reads: the policy is on write
    try:
        done = child(root_dir, f"""
            fd = os.open({str(fifo)!r}, os.O_WRONLY)
            os.write(fd, b"through the pipe\\n")
            """)
        assert done.returncode == -signal.SIGKILL
        assert os.read(reader, 100) == b"through the pipe\n"  # the killed write was delivered
    finally:
        os.close(reader)
    removed = subprocess.run(["/usr/bin/rm", str(victim)], capture_output=True)  # rm calls unlinkat
    assert removed.returncode == -signal.SIGKILL
    assert not victim.exists()  # killed, and the file is gone all the same
    [event] = policy_events(agent, "sigkill-at-entry", victim)
    assert event["function_name"] == "__x64_sys_unlinkat"


def test_a_hook_on_one_syscall_does_not_see_its_siblings(agent: RunningAgent, root_dir: Path, secret: Path) -> None:
    """writev, pwrite64 and pread64 are other syscalls: a policy on write or read never runs for them."""
    target = stage(root_dir, root_dir / "guarded" / "siblings")
    done = child(root_dir, f"""
        fd = os.open({str(target)!r}, os.O_WRONLY)
        os.writev(fd, [b"WRITEV"])
        os.pwrite(fd, b"PWRITE", 6)
        sys.stdout.buffer.write(os.pread(os.open({str(secret)!r}, os.O_RDONLY), 100, 0))
        """)
    assert done.returncode == 0
    assert done.stdout == SECRET
    assert target.read_bytes() == b"WRITEVPWRITE" + ORIGINAL[12:]


def test_the_whole_process_dies_not_its_parent(agent: RunningAgent, root_dir: Path) -> None:
    """SIGKILL takes every thread of the process that made the call; the shell that started it goes on."""
    target = stage(root_dir, root_dir / "guarded" / "threaded")
    done = child(root_dir, f"""
        def write():
            os.write(os.open({str(target)!r}, os.O_WRONLY | os.O_APPEND), b"FROM A THREAD\\n")
        thread = threading.Thread(target=write)
        thread.start()
        thread.join()
        print("main thread survived", flush=True)
        """, via_shell=True)
    assert done.returncode == 0  # the shell
    assert done.stdout == b"shell continues, status 137\n"  # 128 + SIGKILL; the main thread printed nothing
    assert target.read_bytes() == ORIGINAL


# --- Signal ------------------------------------------------------------------------------------------------


def test_a_caught_signal_lets_the_call_proceed(agent: RunningAgent, root_dir: Path) -> None:
    target = stage(root_dir, root_dir / "signalled" / "handled")
    done = child(root_dir, f"""
        caught = []
        signal.signal(signal.SIGUSR1, lambda signum, frame: caught.append(signum))
        written = os.write(os.open({str(target)!r}, os.O_WRONLY | os.O_APPEND), b"WRITTEN\\n")
        print(f"wrote {{written}}, handler ran {{len(caught)}} time(s)", flush=True)
        """)
    assert done.returncode == 0
    assert done.stdout == b"wrote 8, handler ran 1 time(s)\n"
    assert target.read_bytes() == ORIGINAL + b"WRITTEN\n"
    [event] = policy_events(agent, "signal-usr1", target)
    assert event["action"] == "KPROBE_ACTION_SIGNAL"


def test_an_unhandled_fatal_signal_acts_like_sigkill(agent: RunningAgent, root_dir: Path) -> None:
    """SIGUSR1's default action ends the process: the kernel makes it a group kill when it is sent."""
    target = stage(root_dir, root_dir / "signalled" / "unhandled")
    done = child(root_dir, f"""
        os.write(os.open({str(target)!r}, os.O_WRONLY | os.O_APPEND), b"WRITTEN\\n")
        print("survived the write", flush=True)
        """)
    assert done.returncode == -signal.SIGUSR1
    assert done.stdout == b""
    assert target.read_bytes() == ORIGINAL
