"""The Kubernetes API, kept current in background threads: what enrichment and policies share.

::

    listwatch.ListWatcher (one resource, one daemon thread)
        connect (kubeconfig or in-cluster) ──> list ──> _replace(items) ──> watch ──> _apply(type, object)
        (subclasses say which list call, and what a list and an event change)
            ├── tetra.enrich.k8s.PodWatcher           this node's pods ──> PodIndex
            └── tetra.agent.k8s_policies.PolicyWatcher TracingPolicy(Namespaced) objects ──> the agent thread

Nothing here touches the agent's BPF objects: a watcher that needs them hands
its work to the agent thread (tetra.agent.commands.CommandQueue).
"""
