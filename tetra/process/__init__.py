"""The process cache: every process tetra knows, keyed by exec_id.

    exec/clone/exit records ──> ProcessCache ──> Process (with parent link)
    /proc at start ─────────────┘      │
                                       └─ refcounts + GC after exit, LRU bound

Events carry the process and its parent as the cache knows them; records whose
parent is unknown wait briefly in PendingParents before going out without one.
"""
