/* Handing records to user space, and counting every one that could not be.
 *
 * One ring buffer (`events`) for all probes keeps records in the order they
 * happened across CPUs, so a child's exec never overtakes its parent's clone.
 * Every attempt is counted in the per-CPU `stats` array (sent and lost per
 * opcode): user space reports "lost in the kernel" from it, never a guess.
 */
#ifndef TETRA_EMIT_H
#define TETRA_EMIT_H

#ifndef TETRA_RINGBUF_PAGES
#define TETRA_RINGBUF_PAGES 2048
#endif

BPF_RINGBUF_OUTPUT(events, TETRA_RINGBUF_PAGES);
BPF_PERCPU_ARRAY(stats, __u64, TETRA_STAT_SLOTS);

static __always_inline void tetra_count(__u32 opcode, __u32 kind)
{
    __u32 slot = opcode * 2 + kind;
    __u64 *value = stats.lookup(&slot);
    if (value)
        *value += 1;
}

static __always_inline void tetra_fill_header(struct tetra_header *h, __u8 opcode, __u64 pid_tgid)
{
    h->opcode = opcode;
    h->flags = 0;
    h->_pad = 0;
    h->size = 0;
    h->ktime = bpf_ktime_get_boot_ns();
    h->pid = pid_tgid >> 32;
    h->tid = (__u32)pid_tgid;
}

/* size must be provably bounded by the caller's buffer. */
static __always_inline void tetra_emit(void *record, __u32 size, __u32 opcode)
{
    ((struct tetra_header *)record)->size = size;
    if (events.ringbuf_output(record, size, 0) == 0)
        tetra_count(opcode, TETRA_STAT_SENT);
    else
        tetra_count(opcode, TETRA_STAT_LOST);
}

#endif
