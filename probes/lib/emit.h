/* Handing records to user space, and counting every one that could not be.
 *
 * One ring buffer (`tetra_events`) for all probes of all sensors keeps records
 * in the order they happened across CPUs: a child's exec never overtakes its
 * parent's clone, and a policy event never overtakes its process's exec. The
 * process sensor owns it (TETRA_EVENTS_OWNER) and shares it with bcc's shared
 * table mechanism; every other module declares it extern. Every attempt is
 * counted in the per-CPU `tetra_stats` array (sent and lost per opcode): user
 * space reports "lost in the kernel" from it, never a guess.
 */
#ifndef TETRA_EMIT_H
#define TETRA_EMIT_H

#ifndef TETRA_RINGBUF_PAGES
#define TETRA_RINGBUF_PAGES 2048
#endif

#ifdef TETRA_EVENTS_OWNER
BPF_RINGBUF_OUTPUT(tetra_events, TETRA_RINGBUF_PAGES);
__attribute__((section("maps/shared"))) struct tetra_events_table_t __tetra_events;
BPF_TABLE_SHARED("percpu_array", __u32, __u64, tetra_stats, TETRA_STAT_SLOTS);
#else
/* bcc has no extern form of BPF_RINGBUF_OUTPUT: this is its table type. */
struct tetra_events_table_t {
    int key;
    __u32 leaf;
    int (*ringbuf_output)(void *, __u64, __u64);
    void *(*ringbuf_reserve)(__u64);
    void (*ringbuf_discard)(void *, __u64);
    void (*ringbuf_submit)(void *, __u64);
    __u32 max_entries;
};
__attribute__((section("maps/extern"))) struct tetra_events_table_t tetra_events = {
    .max_entries = TETRA_RINGBUF_PAGES * 4096
};
BPF_TABLE("extern", __u32, __u64, tetra_stats, TETRA_STAT_SLOTS);
#endif

/* Wake the reader once every TETRA_WAKE_BYTES of records per CPU (and per
 * sensor: each has its own counter) instead of for each record: a wake-up
 * costs the reader more than handling a record, and a reader woken for a
 * larger batch handles each record for less, its caches still warm from the
 * record before (an exec storm cost the agent ~20% less CPU per process with
 * batches of a few hundred records than of ~30). Bytes, not records: whatever
 * the records' sizes, at most that much per CPU waits unread before a wake-up
 * (the default 8 MiB ring holds 16 KiB for 512 CPUs). The reader also polls
 * on a timer (100 ms), so a quiet stream is delayed by at most that. */
#ifndef TETRA_WAKE_BYTES
#define TETRA_WAKE_BYTES 16384
#endif
BPF_PERCPU_ARRAY(tetra_wake, __u64, 1);

static __always_inline __u64 tetra_wake_flags(__u32 size)
{
    __u32 zero = 0;
    __u64 *pending = tetra_wake.lookup(&zero);
    if (!pending)
        return 0;
    *pending += size;
    if (*pending < TETRA_WAKE_BYTES)
        return BPF_RB_NO_WAKEUP;
    *pending = 0;
    return BPF_RB_FORCE_WAKEUP;
}

static __always_inline void tetra_count(__u32 opcode, __u32 kind)
{
    __u32 slot = opcode * 2 + kind;
    __u64 *value = tetra_stats.lookup(&slot);
    if (value)
        *value += 1;
}

/* ktime 0: the caller stamps the record later (policy hooks, when they post). */
static __always_inline void tetra_fill_header_at(struct tetra_header *h, __u8 opcode, __u64 pid_tgid, __u64 ktime)
{
    h->opcode = opcode;
    h->flags = 0;
    h->_pad = 0;
    h->size = 0;
    h->ktime = ktime;
    h->pid = pid_tgid >> 32;
    h->tid = (__u32)pid_tgid;
}

static __always_inline void tetra_fill_header(struct tetra_header *h, __u8 opcode, __u64 pid_tgid)
{
    tetra_fill_header_at(h, opcode, pid_tgid, bpf_ktime_get_boot_ns());
}

/* size must be provably bounded by the caller's buffer. */
static __always_inline void tetra_emit(void *record, __u32 size, __u32 opcode)
{
    ((struct tetra_header *)record)->size = size;
    if (tetra_events.ringbuf_output(record, size, tetra_wake_flags(size)) == 0)
        tetra_count(opcode, TETRA_STAT_SENT);
    else
        tetra_count(opcode, TETRA_STAT_LOST);
}

#endif
