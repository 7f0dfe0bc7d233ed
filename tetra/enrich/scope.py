"""Which cgroups a pod-scoped policy applies to, kept current as pods and containers come and go.

A ``TracingPolicyNamespaced`` applies to its namespace's pods; a ``podSelector``
narrows a policy to pods whose labels match; a ``containerSelector`` to
containers whose name matches (``name`` is the key Tetragon supports). The
kernel knows a process only by its cgroup id (``bpf_get_current_cgroup_id``),
so the answer is a set of cgroup v2 ids: the directories named after the
selected containers (every runtime's naming, tetra/process/container.py) and
the cgroups below them. The policy's programs look the id up in their
``scope_cgroups`` map before anything else, so a process outside the scope
never produces an event, and never meets an action.

Window: a container's first processes can run before the API reports the
container's id, or before the next look at the cgroup tree (every
``rescan`` seconds); until then they are outside the scope. Tetragon has the
same window. A scoped policy without the Kubernetes API applies to nothing.
"""

import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from tetra.enrich.pods import PodInfo
from tetra.policy.model import TracingPolicy
from tetra.process.container import container_ref


class PodSource(Protocol):
    def pods(self) -> tuple[int, list[PodInfo]]:
        """(version, the live pods of this node); the version changes whenever the pods do."""
        ...


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A Kubernetes LabelSelector (matchLabels and matchExpressions, all must hold); None selects all."""
    if selector is None:
        return True
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for requirement in selector.get("matchExpressions", ()):
        key, operator, values = requirement["key"], requirement["operator"], requirement.get("values", ())
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def container_cgroups(root: Path) -> dict[str, set[int]]:
    """Container id -> ids of the cgroups named after it and those below them, from one walk."""
    found: dict[str, set[int]] = {}
    for directory, _subdirs, _files in os.walk(root):
        ref = container_ref(os.path.relpath(directory, root))
        if ref is not None:
            try:
                found.setdefault(ref.container_id, set()).add(os.stat(directory).st_ino)
            except OSError:  # removed while walking
                continue
    return found


class PolicyScope:
    """The cgroups of each scoped policy, from the pods of this node and the cgroup tree."""

    def __init__(self, root: Path, source: PodSource | None, *, rescan: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.root = root
        self.source = source
        self.rescan = rescan
        self._clock = clock
        self._version = -1
        self._pods: list[PodInfo] = []
        self._cgroups: dict[str, set[int]] = {}
        self._next_scan = 0.0

    def refresh(self) -> bool:
        """Look again where due (new pods at once, the cgroup tree every ``rescan`` s); True when anything changed."""
        if self.source is None:
            return False
        version, pods = self.source.pods()
        now = self._clock()
        if version == self._version and now < self._next_scan:
            return False
        cgroups = container_cgroups(self.root)
        self._next_scan = now + self.rescan
        changed = version != self._version or cgroups != self._cgroups
        self._version, self._pods, self._cgroups = version, pods, cgroups
        return changed

    def cgroups(self, policy: TracingPolicy) -> set[int]:
        """The cgroup ids ``policy`` applies to now."""
        spec = policy.spec
        ids: set[int] = set()
        for pod in self._pods:
            if policy.namespace is not None and pod.namespace != policy.namespace:
                continue
            if not selector_matches(spec.pod_selector, pod.labels):
                continue
            for cid, container in pod.containers.items():
                if selector_matches(spec.container_selector, {"name": container.name}):
                    ids |= self._cgroups.get(cid, set())
        return ids
