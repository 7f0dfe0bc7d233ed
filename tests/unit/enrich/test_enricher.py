"""PodEnricher: cgroup id first (it knows the pod uid), the process's docker field as fallback."""

from tetra.enrich.enricher import PodEnricher
from tetra.enrich.podindex import PodIndex
from tetra.enrich.pods import ContainerInfo, PodInfo
from tetra.process.container import ContainerRef

CID, NEWER = "a" * 64, "b" * 64
UID = "0d0e5e2c-6a1b-4c8e-9f00-1a2b3c4d5e6f"
POD = PodInfo("default", "xwing", UID, {"app": "xwing"}, None, "xwing", "Pod",
              {CID: ContainerInfo(f"containerd://{CID}", "main", "img", "", "", False, (("true",),))})


class Resolver:
    def __init__(self, refs: dict[int, ContainerRef]) -> None:
        self.refs = refs

    def container(self, cgroup_id: int) -> ContainerRef | None:
        return self.refs.get(cgroup_id)


def enricher() -> PodEnricher:
    index = PodIndex(ttl=60)
    index.upsert(POD)
    return PodEnricher(index, Resolver({7: ContainerRef(CID, UID, "containerd"),
                                        8: ContainerRef(NEWER, UID, "containerd")}))


def test_exec_probe() -> None:
    pod = enricher().pod_json(7, CID[:31], binary="/bin/true")
    assert pod is not None and pod["container"]["id"] == f"containerd://{CID}"
    assert pod["container"]["maybe_exec_probe"] is True


def test_container_not_in_the_pod_status_yet_still_finds_the_pod() -> None:
    pod = enricher().pod_json(8, NEWER[:31])
    assert pod is not None and pod["name"] == "xwing" and "container" not in pod


def test_docker_field_first_without_resolving_the_cgroup() -> None:
    e = enricher()
    e.resolver = Resolver({})  # nothing resolves: it must not be needed
    pod = e.pod_json(7, CID[:31])
    assert pod is not None and pod["container"]["name"] == "main"


def test_cgroup_path_names_the_container_above_the_leaf() -> None:
    """A process in a sub-cgroup of its container: the leaf (docker "") names none, the path does."""
    pod = enricher().pod_json(7, "")
    assert pod is not None and pod["container"]["name"] == "main"


def test_host_processes_have_no_pod() -> None:
    assert enricher().pod_json(99, "") is None
    assert enricher().pod_json(0, "") is None
    assert PodEnricher(PodIndex(ttl=60)).pod_json(7, "") is None
