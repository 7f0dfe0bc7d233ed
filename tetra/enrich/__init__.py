"""Enrichment: which container and pod an event's process runs in.

::

    process.cgroup_id ──> cgroups.CgroupResolver ──> ContainerRef(container id, pod uid, runtime)
    (bpf_get_current_cgroup_id)   walks the cgroup2 mount     parsed from the path (tetra.process.container)
                                                                   │
    process.docker (31 chars) ─── fallback when the id is unknown ─┤
                                                                   v
    k8s.PodWatcher (thread: list + watch this node's pods) ──> podindex.PodIndex.lookup() ──> pods.PodInfo
                                                                   │
                                          PodInfo.to_json(container id, binary, arguments) ──> event "pod"

``enricher.PodEnricher`` is that whole path as one call per process. Nothing
here blocks the pipeline: the resolver answers from its cache (walking the
cgroup tree at most a few times a second on misses), the watcher from memory.
"""
