"""Record the replay corpus: a real agent, real policies, real processes (run as root, once).

    PYTHONPATH=$PWD .venv/bin/python -m tests.replay.record [NAME]

Starts ``tetra agent --record-ring`` with the policies below, runs WORKLOAD under
a shell whose pid is the export filter's pid_set (so the export holds this
workload only, while the ring holds all the machine did), stops the agent, and
writes into tests/replay/corpus/:

    NAME.rec       the recording (tetra/observer/recording.py)
    NAME.json      the JSON lines the live agent exported: the golden output
    NAME.compact   the compact lines it printed on stdout
    NAME.flags     the agent's export flags, which a replay needs to export the same

tests/unit/test_replay_golden.py replays NAME.rec with NAME.flags and compares.
Paths are under /tmp/tetra-replay, so events name the same files on every machine.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

CORPUS = Path(__file__).parent / "corpus"
ROOT = Path("/tmp/tetra-replay")
PORT = 47321

PROGRAM = r"""
#include <stdio.h>
__attribute__((noinline)) int tetra_marker(int code, const char *word)
{
    return printf("%d %s\n", code, word) > 0 ? code : -1;
}
int main(int argc, char **argv)
{
    tetra_marker(argc > 1 ? 42 : 7, argc > 1 ? argv[1] : "none");
    return 0;
}
"""

CONNECT = f"""
import socket
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", {PORT}))
server.listen()
client = socket.create_connection(("127.0.0.1", {PORT}))
peer, _ = server.accept()
for s in (client, peer, server):
    s.close()
"""

# Each policy: its hooks (spec), with {root} and {port} filled in. One file each, loaded in name order.
POLICIES = {
    "01-open-prefix": """
        kprobes:
        - call: "sys_openat"
          syscall: true
          args:
          - index: 0
            type: int
          - index: 1
            type: "string"
            label: "path"
          - index: 2
            type: int
          selectors:
          - matchArgs:
            - index: 1
              operator: "Prefix"
              values: ["{root}/prefix/"]
        """,
    "02-read-return": """
        kprobes:
        - call: "sys_read"
          syscall: true
          return: true
          args:
          - index: 0
            type: "fd"
          - index: 1
            type: "char_buf"
            returnCopy: true
          - index: 2
            type: "size_t"
          returnArg:
            index: 0
            type: "int"
          selectors:
          - matchArgs:
            - index: 0
              operator: "Prefix"
              values: ["{root}/read/"]
            matchReturnArgs:
            - index: 0
              operator: "GT"
              values: ["0"]
        """,
    "03-unlink-tracepoint": """
        tracepoints:
        - subsystem: "syscalls"
          event: "sys_enter_unlinkat"
          args:
          - index: 6
            type: "string"
          selectors:
          - matchArgs:
            - index: 6
              operator: "Prefix"
              values: ["{root}/unlink/"]
          message: "unlink under the corpus root"
          tags: ["corpus", "files"]
        """,
    "04-connect": """
        kprobes:
        - call: "sys_connect"
          syscall: true
          args:
          - index: 0
            type: "int"
          - index: 1
            type: "sockaddr"
          selectors:
          - matchArgs:
            - index: 1
              operator: "SPort"
              values: ["{port}"]
        """,
    "05-sock-state": """
        tracepoints:
        - subsystem: "sock"
          event: "inet_sock_set_state"
          args:
          - index: 4
            type: "sock"
          - index: 6
            type: "int"
          selectors:
          - matchArgs:
            - index: 4
              operator: "DPort"
              values: ["{port}"]
        """,
    "06-raw-exec": """
        tracepoints:
        - subsystem: "sched"
          event: "sched_process_exec"
          raw: true
          args:
          - index: 1
            type: "int"
          selectors:
          - matchBinaries:
            - operator: "In"
              values: ["{root}/marker"]
        """,
    "07-uprobe": """
        uprobes:
        - path: "{root}/marker"
          symbols:
          - "tetra_marker"
          args:
          - index: 0
            type: "int"
          - index: 1
            type: "string"
        """,
    "08-monitor-kill": """
        kprobes:
        - call: "sys_openat"
          syscall: true
          args:
          - index: 1
            type: "string"
          selectors:
          - matchArgs:
            - index: 1
              operator: "Equal"
              values: ["{root}/monitored"]
            matchActions:
            - action: Sigkill
        options:
        - name: policy-mode
          value: monitoring
        """,
    "09-kill-on-open": """
        kprobes:
        - call: "sys_openat"
          syscall: true
          args:
          - index: 1
            type: "string"
          selectors:
          - matchArgs:
            - index: 1
              operator: "Equal"
              values: ["{root}/forbidden"]
            matchActions:
            - action: Sigkill
        """,
}

# Run by /bin/sh in ROOT; every line a case of the corpus.
WORKLOAD = """
/usr/bin/echo plain
/usr/bin/echo "$(printf 'caf\\351 \\377')"
/usr/bin/true "$(head -c 20000 /dev/zero | tr '\\0' a)"
sh -c 'exit 3'
sh -c 'kill -TERM $$'
/usr/bin/sleep 5 & kill -KILL $!; wait
(exit 0)
/usr/bin/cat {root}/prefix/a.txt
/usr/bin/cat "{root}/prefix/$(printf '\\377')" 2>/dev/null
/usr/bin/cat {root}/read/data
/usr/bin/rm -f {root}/unlink/x
{python} -c '{connect}'
{root}/marker hello-uprobe
{root}/marker
/usr/bin/cat {root}/monitored
/usr/bin/cat {root}/forbidden
exit 0
"""


def _prepare() -> tuple[Path, Path]:
    """The corpus root, its files and the uprobe target; the policy directory."""
    shutil.rmtree(ROOT, ignore_errors=True)
    for sub in ("prefix", "read", "unlink", "policies", "agent"):
        (ROOT / sub).mkdir(parents=True)
    (ROOT / "prefix" / "a.txt").write_text("a\n")
    (ROOT / "prefix" / "\udcff").write_text("binary name\n")
    (ROOT / "read" / "data").write_bytes(b"read me\n\xff\x00end\n")
    (ROOT / "unlink" / "x").write_text("")
    (ROOT / "monitored").write_text("watched\n")
    (ROOT / "forbidden").write_text("never read\n")
    (ROOT / "marker.c").write_text(PROGRAM)
    subprocess.run(["gcc", "-O1", "-o", str(ROOT / "marker"), str(ROOT / "marker.c")], check=True)
    policies = ROOT / "policies"
    for name, spec in POLICIES.items():
        body = textwrap.indent(textwrap.dedent(spec).format(root=ROOT, port=PORT).strip(), "  ")
        (policies / f"{name}.yaml").write_text(
            f"apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: {name[3:]}\nspec:\n{body}\n")
    workload = WORKLOAD.format(root=ROOT, python=sys.executable, connect=CONNECT.strip().replace("'", '"'))
    (ROOT / "workload.sh").write_text(workload)
    return policies, ROOT / "agent"


def record(name: str) -> None:
    policies, workdir = _prepare()
    fifo = ROOT / "go"
    os.mkfifo(fifo)
    # The workload's shell exists before the agent starts: its pid is the export filter's pid_set.
    holder = subprocess.Popen(["/bin/sh", "-c", f"read go < {fifo}; exec /bin/sh {ROOT}/workload.sh"], cwd=ROOT,
                              stdout=subprocess.DEVNULL)
    flags = ["--export-allowlist", json.dumps({"pid_set": [holder.pid]}), "--enable-pid-set-filter"]
    recording, export, compact = workdir / "ring.rec", workdir / "events.json", workdir / "events.compact"
    with open(compact, "wb") as stdout:
        agent = subprocess.Popen([sys.executable, "-m", "tetra", "agent", "-o", "compact", "--color", "never",
                                  "--server-address", "", "--export-filename", str(export),
                                  "--record-ring", str(recording), "--tracing-policy-dir", str(policies), *flags],
                                 stdout=stdout, stderr=subprocess.PIPE, text=True)
        assert agent.stderr is not None
        for line in agent.stderr:
            sys.stderr.write(line)
            if "ready in" in line:
                break
        else:
            raise SystemExit("the agent stopped before it was ready")
        with open(fifo, "w") as go:
            go.write("go\n")
        holder.wait(120)
        time.sleep(1.5)  # the last exits reach the export
        agent.send_signal(signal.SIGINT)
        sys.stderr.write(agent.stderr.read())
        agent.wait(60)
    CORPUS.mkdir(exist_ok=True)
    for source, suffix in ((recording, "rec"), (export, "json"), (compact, "compact")):
        shutil.copyfile(source, CORPUS / f"{name}.{suffix}")  # not their 0600 mode: any user runs the tests
    (CORPUS / f"{name}.flags").write_text(json.dumps(flags) + "\n")
    sizes = ", ".join(f"{p.name} {p.stat().st_size} bytes" for p in sorted(CORPUS.glob(f"{name}.*")))
    print(f"recorded {sizes}")


if __name__ == "__main__":
    record(sys.argv[1] if len(sys.argv) > 1 else "corpus")
