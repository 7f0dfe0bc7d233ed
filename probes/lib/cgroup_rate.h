/* --cgroup-rate: per-cgroup rate limiting of the process events, in the kernel.
 *
 * Compiled in only with TETRA_CGROUP_RATE (and TETRA_CGROUP_RATE_EVENTS,
 * TETRA_CGROUP_RATE_INTERVAL_NS): without the flag the probes are what they
 * were. As Tetragon's (bpf/process/bpf_rate.h), each CPU keeps its own count
 * per cgroup (a per-CPU hash: no CPU waits for another, no count is raced), in
 * two fixed windows of one interval whose sum, the older one weighted by how
 * much of it is still inside the sliding interval, is the rate. A CPU whose
 * rate goes over the limit throttles the cgroup: the record is never written
 * (so a storm costs the ring buffer and the agent next to nothing), it is
 * counted in the slot's `dropped`, and a small throttle record (wire.h) stands
 * for the first one of a throttle, from which the agent sends THROTTLE_START,
 * and for each exec, so that the agent forgets the image it replaced. The CPU lets
 * events through again once its rate is back under the limit and a whole
 * interval has passed since it began throttling; the agent reads the slots
 * every second and sends THROTTLE_STOP when no CPU throttles the cgroup any
 * more (tetra/process/throttle.py), and forgets cgroups quiet for a minute.
 * The agent never writes a slot: every drop stays counted.
 */
#ifndef TETRA_CGROUP_RATE_H
#define TETRA_CGROUP_RATE_H
#ifdef TETRA_CGROUP_RATE

#ifndef TETRA_CGROUP_RATE_ENTRIES
#define TETRA_CGROUP_RATE_ENTRIES 32768  /* cgroups counted; beyond, a new cgroup is not limited */
#endif

/* One CPU's count of one cgroup's process events. */
struct tetra_cgroup_rate {
    __u64 window;     /* ktime the current interval began at */
    __u64 curr;       /* events in the current interval */
    __u64 prev;       /* events in the interval before it */
    __u64 throttled;  /* ktime this CPU began throttling the cgroup; 0: it does not */
    __u64 dropped;    /* events this CPU dropped for the cgroup */
};

BPF_PERCPU_HASH(tetra_cgroup_rate, __u64, struct tetra_cgroup_rate, TETRA_CGROUP_RATE_ENTRIES);

/* What the rate check decided. */
#define TETRA_RATE_PASS  0  /* the event goes out */
#define TETRA_RATE_DROP  1  /* dropped: the cgroup is throttled on this CPU */
#define TETRA_RATE_START 2  /* dropped, and this CPU starts throttling: send a throttle record */

/* Count one event of cgroup_id at ktime now, and decide its fate. */
static __always_inline int tetra_cgroup_rate_check(__u64 cgroup_id, __u64 now)
{
    struct tetra_cgroup_rate *r = tetra_cgroup_rate.lookup(&cgroup_id);
    if (!r) {
        struct tetra_cgroup_rate fresh = {.window = now, .curr = 1};
        tetra_cgroup_rate.update(&cgroup_id, &fresh);  /* full map: the cgroup goes unlimited */
        return TETRA_RATE_PASS;
    }
    __u64 interval = TETRA_CGROUP_RATE_INTERVAL_NS;
    __u64 since = now - r->window;
    if (since >= interval) {  /* a new window: the current one becomes the previous, or both are old */
        r->prev = since >= 2 * interval ? 0 : r->curr;
        r->window = since >= 2 * interval ? now : r->window + interval;
        r->curr = 0;
    }
    r->curr += 1;
    /* Microseconds keep slide * prev far from overflowing for any interval the flag takes. */
    __u64 slide_us = (interval - (now - r->window)) / 1000;
    __u64 rate = r->prev * slide_us / (interval / 1000) + r->curr;
    if (r->throttled) {
        if (rate > TETRA_CGROUP_RATE_EVENTS || now - r->throttled < interval) {
            r->dropped += 1;
            return TETRA_RATE_DROP;
        }
        r->throttled = 0;
        return TETRA_RATE_PASS;
    }
    if (rate <= TETRA_CGROUP_RATE_EVENTS)
        return TETRA_RATE_PASS;
    r->throttled = now ? now : 1;
    r->dropped += 1;
    return TETRA_RATE_START;
}

#endif
#endif
