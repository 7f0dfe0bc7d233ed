"""tetra: runtime security observability and enforcement on eBPF (bcc).

The flow, one package per stage::

    probes/*.c ──ring buffer──> observer ──> decode ──> process cache ──> export
    (kernel)                    (reader)     (opcode    (exec_id, parents,  (JSON lines,
                                             registry)   /proc seeding)      compact)

``kernel`` answers what the running kernel offers (BTF offsets, capabilities);
``sensors`` own the BPF programs; ``wire`` is the one definition of the event
layouts shared with ``probes/lib/wire.h``.
"""

__version__ = "0.1.0"
