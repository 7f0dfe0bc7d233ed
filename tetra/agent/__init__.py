"""The agent: sensors -> ring buffer -> decode -> process cache -> sinks.

    ProcessSensor ──ring buffer (mapped)──> RingBufferObserver ──bytes──> Pipeline.handle_raw
                                                                  │ decode (opcode registry)
    /proc scan ──ExecRecord──────────────────────────────────────>│ Pipeline.handle
                                                                  │ ProcessCache
                                                                  └─> sinks (JSON lines, compact,
                                                                       gRPC Broadcaster -> tetra.api)

One thread does it all: the kernel's ring buffer is the bounded queue in front
of it, and what it cannot take is counted there (the `stats` map), never lost
silently. The gRPC server's threads never touch the sensors: the Broadcaster
hands them events through bounded queues, and their control calls come back
to this thread through a command queue drained on every loop turn. So do the
loads and unloads of the Kubernetes API's TracingPolicy objects, whose watcher
threads (k8s_policies) never touch a policy themselves: one queue for both.
One worker of its own (user_actions) makes the GetUrl / DnsLookup requests
of policies, fed through a bounded queue that counts what it drops.

This package knows nothing of the API: the composition root (tetra/app) builds
the exporters, the API server, the metrics endpoint, the watchers and the
command queue, and hands them in (runner.Parts); the API reads the agent's
status (tetra/status) like the metrics and the exit summary do.
"""
