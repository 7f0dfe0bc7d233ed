"""matchBinaries and process.binary name the file that runs, however the exec spelled it.

The kernel resolves the new image's file (mm->exe_file) at exec, so "./cat" run
in /usr/bin, "//usr/bin/cat", "/usr/bin/./cat", a symlink, /bin/cat on a
merged-/usr system, fexecve, /proc/self/fd/N and bind mounts of /usr/bin/cat
are all /usr/bin/cat: a Sigkill policy on /usr/bin/cat kills each of them, and
a NotIn exclusion of /usr/bin/cat excludes each of them. Paths the kernel keeps
only in part (longer than its binary map, deeper than its path walk) are
compared only on the part it has, flagged and counted (docs/policy-limits.md).
"""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from tests.e2e.harness import Event, RunningAgent, tetra

pytestmark = pytest.mark.usefixtures("root")

CAT = "/usr/bin/cat"
DEEP = 45  # directories below root/deep: more than the kernel's path walk (40 names)

POLICY = """\
apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: binary-resolution
spec:
  kprobes:
{hooks}"""

HOOK = """\
- call: sys_openat
  syscall: true
  message: "{message}"
  args:
  - index: 1
    type: string
  selectors:
  - matchArgs:
    - index: 1
      operator: Prefix
      values: ["{root}/{message}/"]
    matchBinaries:
    - operator: {operator}
      values: ["{binary}"]
{action}"""

SIGKILL = """\
    matchActions:
    - action: Sigkill
"""


@dataclass(frozen=True)
class Paths:
    root: Path
    long_cat: Path  # a copy of cat at a path longer than the binary map keeps
    deep_cat: Path  # and one deeper than the kernel's path walk


def hooks(root: Path) -> str:
    rows = (("kill", "In", CAT, SIGKILL),
            ("not-cat", "NotIn", CAT, ""),
            ("long-prefix", "Prefix", f"{root}/long/", ""),
            ("deep-postfix", "Postfix", "/d/d/deepcat", ""),
            ("deep-prefix", "Prefix", f"{root}/deep/", ""),
            ("deep-notprefix", "NotPrefix", f"{root}/deep/", ""))
    return textwrap.indent("".join(HOOK.format(message=m, operator=op, binary=b, root=root, action=a)
                                   for m, op, b, a in rows), "  ")


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> Paths:
    root = tmp_path_factory.mktemp("binres")
    for sub in ("kill", "not-cat", "long-prefix", "deep-postfix", "deep-prefix", "deep-notprefix"):
        (root / sub).mkdir()
        (root / sub / "file").write_text("data\n")
    long_dir = root / "long" / ("x" * 200) / ("y" * 100)
    deep_dir = root / "deep" / Path(*["d"] * DEEP)
    for directory in (long_dir, deep_dir):
        directory.mkdir(parents=True)
    long_cat, deep_cat = long_dir / "longcat", deep_dir / "deepcat"
    for copy in (long_cat, deep_cat):
        shutil.copy2(CAT, copy)
    return Paths(root, long_cat, deep_cat)


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, root: None, paths: Paths) -> Iterator[RunningAgent]:
    policy = tmp_path_factory.mktemp("binres-policy") / "policy.yaml"
    policy.write_text(POLICY.format(hooks=hooks(paths.root)))
    running = RunningAgent(tmp_path_factory.mktemp("binres-agent"), "--tracing-policy", str(policy)).start(180)
    yield running
    if running.proc and running.proc.poll() is None:
        running.stop()


@pytest.fixture(scope="module")
def mounts(paths: Paths) -> Iterator[dict[str, Path]]:
    """/usr/bin/cat bind-mounted as a file, and /usr/bin bind-mounted as a directory."""
    file_target, dir_target = paths.root / "bound-cat", paths.root / "bound-bin"
    file_target.touch()
    dir_target.mkdir()
    subprocess.run(["mount", "--bind", CAT, str(file_target)], check=True)
    subprocess.run(["mount", "--bind", "/usr/bin", str(dir_target)], check=True)
    yield {"file": file_target, "dir": dir_target / "cat"}
    for target in (file_target, dir_target):
        subprocess.run(["umount", str(target)], check=True)


FEXECVE = "import os, sys\nfd = os.open('/usr/bin/cat', os.O_RDONLY)\nos.execve(fd, ['cat', sys.argv[1]], {})"
PROC_FD = ("import os, sys\nfd = os.open('/usr/bin/cat', os.O_RDONLY)\nos.set_inheritable(fd, True)\n"
           "os.execv(f'/proc/self/fd/{fd}', ['cat', sys.argv[1]])")


def spellings(paths: Paths, mounts: dict[str, Path]) -> dict[str, tuple[list[str], str | None]]:
    """Ways to run /usr/bin/cat: name -> (argv before the file argument, cwd)."""
    link = paths.root / "cat-link"
    if not link.is_symlink():
        link.symlink_to(CAT)
    ways: dict[str, tuple[list[str], str | None]] = {
        "plain": ([CAT], None),
        "relative": (["./cat"], "/usr/bin"),
        "double slash": (["//usr/bin/cat"], None),
        "dot": (["/usr/bin/./cat"], None),
        "dotdot": (["/usr/bin/../bin/cat"], None),
        "symlink": ([str(link)], None),
        "fexecve": ([sys.executable, "-c", FEXECVE], None),
        "/proc/self/fd": ([sys.executable, "-c", PROC_FD], None),
        "bind-mounted file": ([str(mounts["file"])], None),
        "bind-mounted directory": ([str(mounts["dir"])], None),
    }
    if os.path.realpath("/bin") == "/usr/bin":
        ways["merged /usr"] = (["/bin/cat"], None)
    return ways


def run(argv: list[str], cwd: str | None) -> tuple[int, int]:
    """(pid, return code) of one process."""
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc.pid, proc.wait(30)


def execs_of(events: list[Event], pid: int) -> list[str]:
    return [e["process_exec"]["process"]["binary"] for e in events
            if "process_exec" in e and e["process_exec"]["process"]["pid"] == pid]


def posted(events: list[Event], message: str) -> list[Event]:
    return [e["process_kprobe"] for e in events
            if "process_kprobe" in e and e["process_kprobe"].get("message") == message]


def test_every_spelling_of_cat_is_killed(agent: RunningAgent, paths: Paths, mounts: dict[str, Path]) -> None:
    target = str(paths.root / "kill" / "file")
    assert run(["/usr/bin/head", target], None)[1] == 0, "another binary is not killed"
    pids = {}
    for name, (argv, cwd) in spellings(paths, mounts).items():
        pid, code = run([*argv, target], cwd)
        assert code == -signal.SIGKILL, f"{name}: cat was not killed (exit {code})"
        pids[name] = pid
    events = agent.wait_for(lambda ev: all(execs_of(ev, pid) for pid in pids.values()))
    for name, pid in pids.items():
        assert execs_of(events, pid)[-1] == CAT, f"{name}: process.binary is not the file that ran"


def test_every_spelling_of_cat_is_excluded_by_not_in(agent: RunningAgent, paths: Paths,
                                                     mounts: dict[str, Path]) -> None:
    target = str(paths.root / "not-cat" / "file")
    for name, (argv, cwd) in spellings(paths, mounts).items():
        assert run([*argv, target], cwd)[1] == 0, name
    head_pid, _ = run(["/usr/bin/head", target], None)
    events = agent.wait_for(lambda ev: any(e["process"]["pid"] == head_pid for e in posted(ev, "not-cat")))
    binaries = {e["process"]["binary"] for e in posted(events, "not-cat")}
    assert CAT not in binaries and "/usr/bin/head" in binaries, binaries


def test_paths_the_kernel_keeps_in_part(agent: RunningAgent, paths: Paths) -> None:
    long_pid, _ = run([str(paths.long_cat), str(paths.root / "long-prefix" / "file")], None)
    deep_pids = [run([str(paths.deep_cat), str(paths.root / sub / "file")], None)[0]
                 for sub in ("deep-postfix", "deep-prefix", "deep-notprefix")]

    def seen(ev: list[Event]) -> bool:
        return bool(posted(ev, "long-prefix") and posted(ev, "deep-postfix") and posted(ev, "deep-notprefix"))

    events = agent.wait_for(seen)
    # Longer than the binary map: the whole path in the event, its start still compared.
    assert execs_of(events, long_pid) == [str(paths.long_cat)]
    assert posted(events, "long-prefix")[0]["process"]["pid"] == long_pid
    # Deeper than the walk: the event has the last names, flagged; only its end is compared.
    deep = [e["process_exec"]["process"] for e in events
            if "process_exec" in e and e["process_exec"]["process"]["pid"] == deep_pids[0]][-1]
    assert "truncFilename" in deep["flags"].split()
    assert str(paths.deep_cat).endswith(deep["binary"]) and deep["binary"].endswith("/d/d/deepcat")
    assert [e["process"]["pid"] for e in posted(events, "deep-postfix")] == [deep_pids[0]]
    assert posted(events, "deep-prefix") == [], "a path whose start is missing never matches Prefix"
    assert [e["process"]["pid"] for e in posted(events, "deep-notprefix")] == [deep_pids[2]]

    done = tetra(agent, "status", "-o", "json")
    assert done.returncode == 0, done.stderr.decode()
    assert orjson.loads(done.stdout)["losses"]["pipeline"]["binary_truncated"] >= 4
