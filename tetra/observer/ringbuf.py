"""Reading a BPF ring buffer straight from its memory, in batches.

bcc hands each record to Python through a ctypes callback, which with the
copy out of the ring costs more than a microsecond per record before tetra
does anything. The ring is memory the kernel lets a reader map: a consumer
page (the reader's position, writable), a producer page (the writers'
position), and the data pages, mapped twice in a row so that a record that
wraps around the end is still contiguous. Reading it is a loop over
``[len | flags][pad][record]`` headers, each record copied out as bytes
(the kernel reuses its space once the consumer position passes it):

    header  u32 len (bit 31: still being written, bit 30: discarded), u32 page offset
    record  len bytes, the next header at the following multiple of 8

The consumer position is published every ``PUBLISH_EVERY`` records and at the
end of a batch, so writers get space back while a long backlog drains. Waiting
uses epoll on the map's descriptor, which the kernel wakes when a writer asks
for it (probes/lib/emit.h wakes every 16 KiB of records per CPU; ``poll`` also reads
whatever is there when the wait times out).
"""

import mmap
import select
import struct
from collections.abc import Callable
from typing import Protocol

BUSY = 1 << 31
DISCARDED = 1 << 30
HEADER = 8
PUBLISH_EVERY = 256
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


class BatchDrain(Protocol):
    """A compiled reader of the ring (tetra/agent/line_path.py LinePath): delivers the records
    in order, returns how many, or None when ``drain`` must read them in Python this time."""

    def drain_ring(self, ring: mmap.mmap, consumer: mmap.mmap, data: int, mask: int,
                   on_record: Callable[[bytes], None]) -> int | None: ...


class RingBufferObserver:
    """Polls one ring buffer map and passes each record to ``on_record`` (or, when given, has
    ``batch`` drain it: the compiled path, which hands ``on_record`` what it does not take)."""

    def __init__(self, bpf: object, map_name: str, on_record: Callable[[bytes], None],
                 batch: BatchDrain | None = None) -> None:
        table = bpf[map_name]  # type: ignore[index]
        fd, size = int(table.map_fd), int(table.max_entries)
        if size & (size - 1):
            raise ValueError(f"ring buffer {map_name}: size {size} is not a power of two")
        self.received = 0
        self._on_record = on_record
        self._batch = batch
        self._mask = size - 1
        page = mmap.PAGESIZE
        self._consumer = mmap.mmap(fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        self._ring = mmap.mmap(fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
        self._data = page  # where the data pages start in self._ring (after the producer page)
        self._epoll = select.epoll()
        self._epoll.register(fd, select.EPOLLIN)

    def poll(self, timeout_ms: int) -> None:
        """Wait up to timeout_ms for a wake-up, then deliver everything in the ring."""
        self._epoll.poll(timeout_ms / 1000)
        self.drain()

    def drain(self) -> None:
        """Deliver everything already in the ring without waiting."""
        if self._batch is not None:
            done = self._batch.drain_ring(self._ring, self._consumer, self._data, self._mask, self._on_record)
            if done is not None:
                self.received += done
                return
        ring, consumer, on_record = self._ring, self._consumer, self._on_record
        unpack_u32, pack_u64 = _U32.unpack_from, _U64.pack_into
        data, mask = self._data, self._mask
        position = _U64.unpack_from(consumer, 0)[0]
        end = _U64.unpack_from(ring, 0)[0]
        done = 0
        while position < end:
            at = data + (position & mask)
            length = unpack_u32(ring, at)[0]
            if length & BUSY:  # a writer has reserved it and not submitted yet
                break
            size = length & ~(BUSY | DISCARDED)
            if not length & DISCARDED:
                on_record(ring[at + HEADER:at + HEADER + size])
                done += 1
            position += (size + HEADER + 7) & ~7
            if done % PUBLISH_EVERY == 0:
                pack_u64(consumer, 0, position)
            if position >= end:
                end = _U64.unpack_from(ring, 0)[0]  # writers went on meanwhile
        pack_u64(consumer, 0, position)
        self.received += done

    def close(self) -> None:
        self._epoll.close()
        self._consumer.close()
        self._ring.close()
