"""Reading a sensor's BPF ring buffer through bcc.

The callback copies each record out of the ring (the memory is the kernel's and
is reused as soon as we return) and hands the bytes on. It returns 0, never
None: bcc converts the return value with int(), and None would cost an
exception per event (measured: half the drain rate).
"""

import ctypes
from collections.abc import Callable


class RingBufferObserver:
    """Polls one ring buffer map and passes each record to ``on_record``."""

    def __init__(self, bpf: object, map_name: str, on_record: Callable[[bytes], None]) -> None:
        self.received = 0
        self._bpf = bpf
        string_at = ctypes.string_at

        def callback(_ctx: object, data: int, size: int) -> int:
            self.received += 1
            on_record(string_at(data, size))
            return 0

        self._callback = callback  # bcc keeps only a weak hold on it
        bpf[map_name].open_ring_buffer(callback)  # type: ignore[index]

    def poll(self, timeout_ms: int) -> None:
        """Deliver what is ready, waiting up to timeout_ms for a wake-up, then whatever else is there.

        The probes wake the reader only every few records (probes/lib/emit.h), and
        libbpf's poll delivers only from rings that woke it: without the consume,
        a record written after the last wake-up would wait for the next one,
        indefinitely on a quiet system. Consuming reads two positions: free.
        """
        self._bpf.ring_buffer_poll(timeout_ms)  # type: ignore[attr-defined]
        self._bpf.ring_buffer_consume()  # type: ignore[attr-defined]

    def drain(self) -> None:
        """Deliver everything already in the ring without waiting."""
        self._bpf.ring_buffer_consume()  # type: ignore[attr-defined]
