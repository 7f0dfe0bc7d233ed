"""--enable-ancestors: which events list the ancestors of their process, in Tetragon's words.

    base        process_exec, process_exit (and required by every other type)
    kprobe      process_kprobe
    tracepoint  process_tracepoint
    uprobe      process_uprobe
    lsm         process_lsm
    usdt        process_usdt

The pipeline adds ``ancestors`` to those events (Pipeline.ancestor_kinds); the process
cache keeps every ancestor of a live process (ProcessCache.hold_ancestors).
"""

from collections.abc import Iterable

from tetra.wire.events import (PROCESS_EXEC, PROCESS_EXIT, PROCESS_KPROBE, PROCESS_LSM, PROCESS_TRACEPOINT,
                               PROCESS_UPROBE, PROCESS_USDT, EventType)

ANCESTOR_TYPES: dict[str, tuple[EventType, ...]] = {
    "base": (PROCESS_EXEC, PROCESS_EXIT),
    "kprobe": (PROCESS_KPROBE,),
    "tracepoint": (PROCESS_TRACEPOINT,),
    "uprobe": (PROCESS_UPROBE,),
    "lsm": (PROCESS_LSM,),
    "usdt": (PROCESS_USDT,),
}


def parse_ancestor_types(values: Iterable[str]) -> tuple[str, ...]:
    """The type words of ``--enable-ancestors base,kprobe`` (repeatable, comma-separated), checked:
    an unknown word, or another type without ``base``, is a ValueError naming it."""
    words = tuple(dict.fromkeys(w.strip() for value in values for w in value.split(",") if w.strip()))
    unknown = [w for w in words if w not in ANCESTOR_TYPES]
    if unknown:
        raise ValueError(f"unknown event type {unknown[0]!r} (one of: {', '.join(ANCESTOR_TYPES)})")
    if words and "base" not in words:
        raise ValueError("'base' is required by every other type (it keeps the ancestors in the process cache)")
    return words


def ancestor_kinds(words: Iterable[str]) -> frozenset[str]:
    """The event keys (``process_exec``, ...) of checked type words."""
    return frozenset(event.key for word in words for event in ANCESTOR_TYPES[word])
