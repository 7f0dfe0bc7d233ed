"""Events in Tetragon's JSON shape, small enough to read in a test."""

from typing import Any

Event = dict[str, Any]
TIME = "2026-11-26T10:00:00.123456789Z"


def process(binary: str = "/usr/bin/curl", arguments: str = "https://ebpf.io", pid: int = 100,
            **extra: Any) -> dict[str, Any]:
    return {"exec_id": f"aG9zdDox{pid}", "pid": pid, "uid": 0, "binary": binary, "arguments": arguments,
            "flags": "execve clone", **extra}


def pod(namespace: str = "default", name: str = "xwing", labels: dict[str, str] | None = None,
        **container: Any) -> dict[str, Any]:
    return {"namespace": namespace, "name": name,
            "container": {"id": "containerd://abc", "name": "c", **container},
            "pod_labels": labels if labels is not None else {"app": "xwing", "class": "fighter"}}


def event(kind: str = "process_exec", **body: Any) -> Event:
    return {kind: body, "node_name": "node", "time": TIME}


def exec_of(proc: dict[str, Any] | None = None, parent: dict[str, Any] | None = None, **body: Any) -> Event:
    """A process_exec of ``proc`` (curl by default) started by ``parent`` (bash by default)."""
    return event("process_exec", process=proc or process(), parent=parent or process("/bin/bash", "", pid=1),
                 **body)


def kprobe(policy: str = "files", proc: dict[str, Any] | None = None, **body: Any) -> Event:
    fields = {"process": proc or process(), "parent": process("/bin/bash", "", pid=1),
              "function_name": "security_file_open", "args": [{"file_arg": {"path": "/etc/passwd"}}],
              "policy_name": policy, "action": "KPROBE_ACTION_POST"}
    return event("process_kprobe", **{**fields, **body})
