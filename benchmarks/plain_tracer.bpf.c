/*
 * plain_tracer: the peer that benchmarks/peers.py compares tetra with.
 *
 * What anyone would write first with bcc: three tracepoints, one fixed-size
 * record per call copied into a BPF ring buffer, no filtering, no process
 * tracking. Tracepoints rather than kprobes because this kernel has no kprobes
 * (shared/KERNEL.md) and because tetra places its syscall hooks on the same
 * tracepoints here, so both pay the same cost for enabling them.
 *
 *   sched:sched_process_exec      filename of the new image (from the event, always right)
 *   syscalls:sys_enter_openat     path (user memory) and flags
 *   syscalls:sys_enter_connect    fd and the sockaddr (user memory)
 *
 * Every ring buffer reservation is counted in `counts` (slot 0 sent, slot 1
 * lost), so losses are counted, never guessed.
 *
 * Built with -DPLAIN_BARE, every probe returns at once: the "bare hook"
 * configuration, the cost of the enabled tracepoints alone.
 */
#include <uapi/linux/ptrace.h>

#ifndef PLAIN_RINGBUF_PAGES
#define PLAIN_RINGBUF_PAGES 2048
#endif
#define PLAIN_PATH_MAX 256

enum plain_kind { PLAIN_EXEC = 0, PLAIN_OPENAT = 1, PLAIN_CONNECT = 2 };

struct plain_event {
    u64 ktime_ns;
    u32 kind;
    u32 pid;
    u32 tid;
    s32 arg;          /* openat: flags; connect: fd */
    u32 addrlen;      /* connect: the caller's addrlen */
    u32 _pad;
    char comm[16];
    u8 addr[28];      /* connect: the start of the sockaddr (sockaddr_in6 is 28 bytes) */
    u8 _pad2[4];
    char path[PLAIN_PATH_MAX];  /* exec: filename; openat: path */
};

#ifndef PLAIN_BARE
BPF_RINGBUF_OUTPUT(events, PLAIN_RINGBUF_PAGES);
BPF_PERCPU_ARRAY(counts, u64, 2);
BPF_PERCPU_ARRAY(scratch, struct plain_event, 1);

static __always_inline struct plain_event *plain_start(u32 kind)
{
    u32 zero = 0;
    struct plain_event *e = scratch.lookup(&zero);
    if (!e)
        return 0;
    u64 pid_tgid = bpf_get_current_pid_tgid();
    e->ktime_ns = bpf_ktime_get_ns();
    e->kind = kind;
    e->pid = pid_tgid >> 32;
    e->tid = (u32)pid_tgid;
    e->arg = 0;
    e->addrlen = 0;
    bpf_get_current_comm(&e->comm, sizeof(e->comm));
    return e;
}

static __always_inline void plain_emit(struct plain_event *e)
{
    u32 slot = events.ringbuf_output(e, sizeof(*e), 0) == 0 ? 0 : 1;
    u64 *n = counts.lookup(&slot);
    if (n)
        *n += 1;
}
#endif

TRACEPOINT_PROBE(sched, sched_process_exec)
{
#ifdef PLAIN_BARE
    return 0;
#else
    struct plain_event *e = plain_start(PLAIN_EXEC);
    if (!e)
        return 0;
    unsigned short loc = args->data_loc_filename & 0xFFFF;
    bpf_probe_read_kernel_str(e->path, sizeof(e->path), (void *)args + loc);
    plain_emit(e);
    return 0;
#endif
}

TRACEPOINT_PROBE(syscalls, sys_enter_openat)
{
#ifdef PLAIN_BARE
    return 0;
#else
    struct plain_event *e = plain_start(PLAIN_OPENAT);
    if (!e)
        return 0;
    e->arg = (s32)args->flags;
    bpf_probe_read_user_str(e->path, sizeof(e->path), args->filename);
    plain_emit(e);
    return 0;
#endif
}

TRACEPOINT_PROBE(syscalls, sys_enter_connect)
{
#ifdef PLAIN_BARE
    return 0;
#else
    struct plain_event *e = plain_start(PLAIN_CONNECT);
    if (!e)
        return 0;
    e->arg = (s32)args->fd;
    e->addrlen = (u32)args->addrlen;
    __builtin_memset(e->addr, 0, sizeof(e->addr));
    bpf_probe_read_user(e->addr, sizeof(e->addr), args->uservaddr);
    e->path[0] = 0;
    plain_emit(e);
    return 0;
#endif
}
