/* The runtime of TracingPolicy hooks: collecting typed arguments, matching
 * selectors, taking actions, emitting the event.
 *
 * tetra/policy/codegen.py generates one C file per policy that includes this
 * header and defines one function per hook. A hook function:
 *
 *     g = tetra_gen_begin(hook_id)          per-CPU scratch, header filled
 *     tetra_put_<type>(g, slot, value)      each argument into the event blob,
 *                                           its value kept for the selectors
 *     selectors (generated, in order)       first match wins, as in Tetragon
 *     tetra_gen_act(ctx, g, ...)            Sigkill/Signal, stacks, rate limit
 *     tetra_gen_emit(g)                     ring buffer, counted
 *
 * Values from a policy never appear in C as text: strings, binaries and
 * addresses are loaded by user space into the maps below, keyed by the id the
 * compiler gave each matcher; integers appear as validated decimal literals.
 */
#ifndef TETRA_GENERIC_H
#define TETRA_GENERIC_H

#include <uapi/linux/ptrace.h>  /* struct pt_regs: a stable ABI, safe from another kernel's headers */

#include "lib/wire.h"
#include "lib/kernel.h"
#include "lib/context.h"
#include "lib/path.h"
#include "lib/emit.h"
#include "lib/execve.h"

#define TETRA_MAX_ARGS 6
#define TETRA_STR_MAX 4096       /* bytes read for a string, buffer or path argument */
#define TETRA_KEY_MAX 252        /* bytes of a string compared for Equal and Prefix (LPM keys hold 256 with the id) */
#define TETRA_POSTFIX_MAX 128    /* bytes of a string compared for Postfix */
#define TETRA_VALUE_ENTRIES 4096 /* entries of each map of policy values below */
#define TETRA_ARG_ROOM (4 + TETRA_STR_MAX)
#define TETRA_GEN_BUF (sizeof(struct tetra_generic) + TETRA_MAX_ARGS * TETRA_ARG_ROOM)

struct tetra_strkey {
    __u32 prefixlen;             /* bits, for the LPM tries; unused by the hash */
    __u32 id;                    /* which matcher the value belongs to */
    char data[TETRA_KEY_MAX];
};

struct tetra_addrkey {
    __u32 prefixlen;
    __u32 id;
    __u8 addr[16];
};

struct tetra_gen_scratch {
    __u64 entry_mask;            /* selectors whose entry filters matched (return hooks) */
    __s64 ival[TETRA_MAX_ARGS];  /* integer value of each argument slot */
    __u32 soff[TETRA_MAX_ARGS];  /* where each string argument's bytes start in buf */
    __u32 slen[TETRA_MAX_ARGS];  /* and how many there are */
    __u64 len;                   /* bytes of buf in use */
    struct tetra_strkey key;
    struct tetra_addrkey akey;
    char buf[TETRA_GEN_BUF];
};
BPF_PERCPU_ARRAY(gen_scratch, struct tetra_gen_scratch, 1);

/* Policy values, filled by user space (tetra/sensors/policy.py); the compiler
 * refuses a policy with more than TETRA_VALUE_ENTRIES in one map. Hash maps
 * are allocated as filled. */
BPF_F_TABLE("hash", struct tetra_strkey, __u8, str_eq, TETRA_VALUE_ENTRIES, BPF_F_NO_PREALLOC);
BPF_LPM_TRIE(str_prefix, struct tetra_strkey, __u8, TETRA_VALUE_ENTRIES);
BPF_LPM_TRIE(str_postfix, struct tetra_strkey, __u8, TETRA_VALUE_ENTRIES);
BPF_LPM_TRIE(addr_lpm, struct tetra_addrkey, __u8, TETRA_VALUE_ENTRIES);
struct tetra_pidkey {
    __u32 id;
    __u32 pid;
};
BPF_F_TABLE("hash", struct tetra_pidkey, __u8, pid_set, TETRA_VALUE_ENTRIES, BPF_F_NO_PREALLOC);
/* slot 0: 1 when the policy is in monitoring mode (actions reported, not taken) */
BPF_ARRAY(policy_mode, __u32, 1);


/* Per hook: calls seen (slot 2h) and events posted (2h + 1), so it can be
 * shown that what did not match never left the kernel. */
#define TETRA_MAX_HOOKS 64
BPF_PERCPU_ARRAY(hook_stats, __u64, TETRA_MAX_HOOKS * 2);

static __always_inline void tetra_hook_count(__u32 hook_id, __u32 posted)
{
    __u32 slot = hook_id * 2 + posted;
    __u64 *value = hook_stats.lookup(&slot);
    if (value)
        *value += 1;
}

#ifdef TETRA_NEED_RETURN
/* Entry state of return hooks, per thread, until the call returns. */
BPF_F_TABLE("hash", __u64, struct tetra_gen_scratch, pending, 4096, BPF_F_NO_PREALLOC);
#endif

#ifdef TETRA_NEED_STACKS
BPF_STACK_TRACE(stacks, 1024);
#endif
#ifdef TETRA_NEED_RATELIMIT
struct tetra_rate_key {
    __u32 hook_id;
    __u32 scope_id;
    __u64 args_hash;
};
BPF_TABLE("lru_hash", struct tetra_rate_key, __u64, rate_seen, 8192);
#endif

/* --- reading the hook's raw arguments ---------------------------------------- */

/* An integer field of a tracepoint record (offsets and sizes from tracefs,
 * constants here). An aligned field is read from the context directly, which
 * the verifier allows for tracepoint programs and costs a load instead of a
 * helper call on every hit of the hook. */
static __always_inline __s64 tetra_ctx_int(void *ctx, __u32 off, __u32 size, int is_signed)
{
    char *at = (char *)ctx + off;
    if (size == 8 && off % 8 == 0)
        return *(__s64 *)at;
    if (size == 4 && off % 4 == 0)
        return is_signed ? (__s64)*(__s32 *)at : (__s64)*(__u32 *)at;
    if (size == 2 && off % 2 == 0)
        return is_signed ? (__s64)*(__s16 *)at : (__s64)*(__u16 *)at;
    if (size == 1)
        return is_signed ? (__s64)*(__s8 *)at : (__s64)*(__u8 *)at;
    __u64 raw = 0;
    bpf_probe_read_kernel(&raw, size > 8 ? 8 : size, at);
    if (!is_signed || size >= 8)
        return raw;
    __u32 shift = 64 - size * 8;
    return ((__s64)(raw << shift)) >> shift;
}

/* A __data_loc field: its bytes sit in the record at the offset the field holds. */
static __always_inline __u64 tetra_ctx_data_loc(void *ctx, __u32 off)
{
    __u32 loc = 0;
    bpf_probe_read_kernel(&loc, sizeof(loc), (char *)ctx + off);
    return (__u64)((char *)ctx + (loc & 0xFFFF));
}

/* Argument n of a syscall seen from a kprobe on its __x64_sys_ wrapper: the
 * wrapper's only argument is the user's pt_regs (x86-64 calling convention). */
static __always_inline __u64 tetra_syscall_arg(struct pt_regs *ctx, int n)
{
    /* offsets in struct pt_regs of di, si, dx, r10, r8, r9 (n is a constant) */
    unsigned long off = n == 0 ? 112 : n == 1 ? 104 : n == 2 ? 96 : n == 3 ? 56 : n == 4 ? 72 : 64;
    void *regs = (void *)PT_REGS_PARM1(ctx);
    __u64 value = 0;
    bpf_probe_read_kernel(&value, sizeof(value), (char *)regs + off);
    return value;
}

#ifdef TETRA_SCOPED
/* A policy scoped to pods (TracingPolicyNamespaced, podSelector,
 * containerSelector): the cgroup v2 ids of its containers, kept current by
 * user space as pods come and go. A process outside them is not seen at all. */
BPF_F_TABLE("hash", __u64, __u8, scope_cgroups, 16384, BPF_F_NO_PREALLOC);
#endif

/* The agent's own process id (a define from the agent; 0 when compiled alone). */
#ifndef TETRA_AGENT_TGID
#define TETRA_AGENT_TGID 0
#endif

/* The agent's tgid as a 32-bit immediate of its own: compiled objects get it
 * written there at load (tetra/sensors/bpfobj.py), which a compare clang had
 * folded into a 64-bit constant (tgid << 32) would not allow. */
static __always_inline __u32 tetra_agent_tgid(void)
{
    __u32 agent = TETRA_AGENT_TGID;
    asm volatile("" : "+r"(agent));
    return agent;
}

/* 1 when the caller is the agent and the policy did not ask to see it
 * (option observe-agent): each event the agent reads makes it do system
 * calls, so a hook on one of them with no selector would feed itself. Its
 * calls are not counted as seen, as calls outside a policy's scope are not. */
static __always_inline int tetra_agent_call(__u64 pid_tgid)
{
#ifdef TETRA_OBSERVE_AGENT
    return 0;
#else
    __u32 agent = tetra_agent_tgid();
    return agent && (__u32)(pid_tgid >> 32) == agent;
#endif
}

static __always_inline struct tetra_gen_scratch *tetra_gen_begin(__u32 hook_id)
{
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    if (tetra_agent_call(pid_tgid))
        return 0;
#ifdef TETRA_SCOPED
    __u64 cgroup = bpf_get_current_cgroup_id();
    if (!scope_cgroups.lookup(&cgroup))
        return 0;
#endif
    __u32 zero = 0;
    struct tetra_gen_scratch *g = gen_scratch.lookup(&zero);
    if (!g)
        return 0;
    struct tetra_generic *ev = (struct tetra_generic *)g->buf;
    /* no time yet: reading the clock costs as much as the rest of this, and
     * most calls match no selector; tetra_gen_emit stamps what it posts */
    tetra_fill_header_at(&ev->h, TETRA_OP_GENERIC, pid_tgid, 0);
    __u32 policy_id = TETRA_POLICY_ID;
    /* an immediate of its own, never merged with hook_id's into one 64-bit store: compiled
     * objects get the id written into that immediate at load (tetra/sensors/bpfobj.py) */
    asm volatile("" : "+r"(policy_id));
    ev->policy_id = policy_id;
    ev->hook_id = hook_id;
    ev->action = TETRA_ACTION_POST;
    ev->kernel_stack_id = -1;
    ev->user_stack_id = -1;
    ev->args_len = 0;
    ev->selector = 0xff;
    ev->gen_flags = 0;
    ev->ret = 0;
    g->len = sizeof(struct tetra_generic);
    g->entry_mask = 0;
    tetra_hook_count(hook_id, 0);
    return g;
}

/* Room for one more argument: the verifier must see every offset bounded. */
static __always_inline char *tetra_slot_at(struct tetra_gen_scratch *g)
{
    __u64 off = g->len;
    TETRA_BOUND(off, TETRA_GEN_BUF - TETRA_ARG_ROOM);
    return g->buf + off;
}

static __always_inline void tetra_put_int(struct tetra_gen_scratch *g, __u32 slot, __s64 value)
{
    char *at = tetra_slot_at(g);
    __builtin_memcpy(at, &value, sizeof(value));
    if (slot < TETRA_MAX_ARGS)
        g->ival[slot] = value;
    g->len += sizeof(value);
}

/* A length-prefixed byte field: len_flags then the bytes already at at + 4. */
static __always_inline void tetra_close_field(struct tetra_gen_scratch *g, __u32 slot, char *at,
                                              __u32 len, __u32 flags)
{
    __u32 head = (len & TETRA_ARG_LEN_MASK) | flags;
    __builtin_memcpy(at, &head, sizeof(head));
    if (slot < TETRA_MAX_ARGS) {
        g->soff[slot] = (at - g->buf) + 4;
        g->slen[slot] = len;
    }
    g->len += 4 + (len & (TETRA_STR_MAX * 2 - 1));
}

/* A NUL-terminated string from user (user=1) or kernel memory. */
static __always_inline void tetra_put_str(struct tetra_gen_scratch *g, __u32 slot, const void *src, int user)
{
    char *at = tetra_slot_at(g);
    long n = user ? bpf_probe_read_user_str(at + 4, TETRA_STR_MAX, src)
                  : bpf_probe_read_kernel_str(at + 4, TETRA_STR_MAX, src);
    __u32 flags = 0;
    __u32 len = 0;
    if (n < 0)
        flags = TETRA_ARG_ERROR;
    else if (n > 0)
        len = n - 1;  /* without the NUL */
    if (len >= TETRA_STR_MAX - 1)
        flags |= TETRA_ARG_TRUNCATED;
    TETRA_BOUND(len, TETRA_STR_MAX);
    tetra_close_field(g, slot, at, len, flags);
}

/* size bytes from user (user=1) or kernel memory (char_buf with sizeArgIndex, or returnCopy). */
static __always_inline void tetra_put_buf(struct tetra_gen_scratch *g, __u32 slot, const void *src, __s64 size, int user)
{
    char *at = tetra_slot_at(g);
    __u32 flags = 0;
    if (size < 0)
        size = 0;
    if (size > TETRA_STR_MAX) {
        size = TETRA_STR_MAX;
        flags = TETRA_ARG_TRUNCATED;
    }
    __u32 len = size;
    TETRA_BOUND(len, TETRA_STR_MAX);
    if (len && (user ? bpf_probe_read_user(at + 4, len, src) : bpf_probe_read_kernel(at + 4, len, src)) < 0) {
        len = 0;
        flags |= TETRA_ARG_ERROR;
    }
    tetra_close_field(g, slot, at, len, flags);
}

/* A path (dentry + vfsmount) relative to the current task's root; components
 * leaf first, as for the exec cwd. */
static __always_inline void tetra_put_path(struct tetra_gen_scratch *g, __u32 slot, void *dentry, void *vfsmnt)
{
    char *at = tetra_slot_at(g);
    void *task = (void *)bpf_get_current_task();
    void *fs = tetra_read_ptr(task, TETRA_OFF_TASK_FS);
    void *root_dentry = tetra_read_ptr(fs, TETRA_OFF_FS_ROOT_DENTRY);
    void *root_mnt = tetra_read_ptr(fs, TETRA_OFF_FS_ROOT_MNT);
    __u32 flags = 0;
    struct tetra_path_walk walk = {};
    if (dentry && vfsmnt)
        walk = tetra_walk_path(at + 4, dentry, vfsmnt, root_dentry, root_mnt);
    else
        flags = TETRA_ARG_ERROR;
    if (walk.truncated)
        flags |= TETRA_ARG_TRUNCATED;
    __u32 len = walk.len;
    TETRA_BOUND(len, TETRA_STR_MAX);
    tetra_close_field(g, slot, at, len, flags);
}

static __always_inline void tetra_put_file(struct tetra_gen_scratch *g, __u32 slot, void *file)
{
    void *dentry = file ? tetra_read_ptr(file, TETRA_OFF_FILE_F_PATH_DENTRY) : 0;
    void *mnt = file ? tetra_read_ptr(file, TETRA_OFF_FILE_F_PATH_MNT) : 0;
    tetra_put_path(g, slot, dentry, mnt);
}

/* The open file behind a descriptor of the current process. */
static __always_inline void tetra_put_fd(struct tetra_gen_scratch *g, __u32 slot, __s64 fd)
{
    void *task = (void *)bpf_get_current_task();
    void *files = tetra_read_ptr(task, TETRA_OFF_TASK_FILES);
    void *fdt = tetra_read_ptr(files, TETRA_OFF_FILES_FDT);
    __u32 max = tetra_read_u32(fdt, TETRA_OFF_FDTABLE_MAX_FDS);
    void *file = 0;
    if (fd >= 0 && fd < max) {
        void **table = tetra_read_ptr(fdt, TETRA_OFF_FDTABLE_FD);
        bpf_probe_read_kernel(&file, sizeof(file), table + fd);
    }
    if (slot < TETRA_MAX_ARGS)
        g->ival[slot] = fd;
    tetra_put_file(g, slot, file);
}

/* Record a fixed-size struct already written at `at` as argument `slot`. */
static __always_inline void tetra_close_fixed(struct tetra_gen_scratch *g, __u32 slot, char *at, __u32 size,
                                              __s64 ival)
{
    if (slot < TETRA_MAX_ARGS) {
        g->soff[slot] = at - g->buf;
        g->slen[slot] = size;
        g->ival[slot] = ival;
    }
    g->len += size;
}

static __always_inline long tetra_read(void *dst, __u32 size, const void *src, int user)
{
    return user ? bpf_probe_read_user(dst, size, src) : bpf_probe_read_kernel(dst, size, src);
}

/* struct sockaddr from user (connect, bind, sendto) or kernel memory. */
static __always_inline void tetra_put_sockaddr(struct tetra_gen_scratch *g, __u32 slot, const void *addr, int user)
{
    char *at = tetra_slot_at(g);
    struct tetra_sockaddr sa = {};
    tetra_read(&sa.family, sizeof(sa.family), addr, user);
    __u16 port = 0;
    tetra_read(&port, sizeof(port), (const char *)addr + 2, user);
    sa.port = (port >> 8) | (port << 8);
    if (sa.family == 2 /* AF_INET */)
        tetra_read(sa.addr, 4, (const char *)addr + 4, user);
    else if (sa.family == 10 /* AF_INET6 */)
        tetra_read(sa.addr, 16, (const char *)addr + 8, user);
    else
        sa.port = 0;
    __builtin_memcpy(at, &sa, sizeof(sa));
    tetra_close_fixed(g, slot, at, sizeof(sa), sa.family);
}

/* --- cgroup sock_addr programs (tetra/compiler/network.py) ------------------- */

/* The address of a connect/bind/sendmsg from the program's context. The
 * verifier allows user_ip4 only in IPv4 programs and user_ip6 only in IPv6
 * ones: v6 is a constant, so each program keeps one branch. */
static __always_inline void tetra_ctx_addr(struct bpf_sock_addr *ctx, int v6, __u8 *addr)
{
    if (v6) {
        __u32 words[4] = { ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3] };
        __builtin_memcpy(addr, words, 16);
    } else {
        __u32 ip = ctx->user_ip4;
        __builtin_memcpy(addr, &ip, 4);
    }
}

static __always_inline __u16 tetra_ctx_port(struct bpf_sock_addr *ctx)
{
    __u16 port = ctx->user_port;  /* network byte order in the low 16 bits */
    return (port >> 8) | (port << 8);
}

static __always_inline void tetra_put_ctx_sockaddr(struct tetra_gen_scratch *g, __u32 slot,
                                                   struct bpf_sock_addr *ctx, int v6)
{
    char *at = tetra_slot_at(g);
    struct tetra_sockaddr sa = {};
    sa.family = v6 ? 10 : 2;
    sa.port = tetra_ctx_port(ctx);
    tetra_ctx_addr(ctx, v6, sa.addr);
    __builtin_memcpy(at, &sa, sizeof(sa));
    tetra_close_fixed(g, slot, at, sizeof(sa), sa.family);
}

/* The socket as far as the context knows it: the address is the peer's for
 * connect and sendmsg, the local one for bind. */
static __always_inline void tetra_put_ctx_sock(struct tetra_gen_scratch *g, __u32 slot,
                                               struct bpf_sock_addr *ctx, int v6, int local)
{
    char *at = tetra_slot_at(g);
    struct tetra_sock s = {};
    s.t.family = v6 ? 10 : 2;
    s.t.protocol = ctx->protocol;
    s.type = ctx->type;
    if (local) {
        s.t.sport = tetra_ctx_port(ctx);
        tetra_ctx_addr(ctx, v6, s.t.saddr);
    } else {
        s.t.dport = tetra_ctx_port(ctx);
        tetra_ctx_addr(ctx, v6, s.t.daddr);
    }
    __builtin_memcpy(at, &s, sizeof(s));
    tetra_close_fixed(g, slot, at, sizeof(s), s.t.family);
}

/* An iov_iter: the bytes of its first segment, at most its count, from the
 * calling process (ITER_UBUF: its buffer; ITER_IOVEC: the first iovec). Other
 * kinds hold kernel pages: reported empty, flagged. Offsets and the enum values
 * come from this kernel's BTF (tetra/compiler/records.py IovIter). */
static __always_inline void tetra_put_iov_iter(struct tetra_gen_scratch *g, __u32 slot, void *iter, __u32 off_type,
                                               __u32 off_count, __u32 off_ptr, int ubuf, int iovec)
{
    __u8 type = 0xff;
    bpf_probe_read_kernel(&type, sizeof(type), (const char *)iter + off_type);
    __u64 len = tetra_read_u64(iter, off_count);
    void *ptr = tetra_read_ptr(iter, off_ptr);
    void *base = 0;
    if (type == ubuf) {
        base = ptr;
    } else if (type == iovec) {  /* struct iovec { void __user *iov_base; size_t iov_len; } */
        base = tetra_read_ptr(ptr, 0);
        __u64 first = tetra_read_u64(ptr, sizeof(void *));
        if (first < len)
            len = first;
    }
    if (!base) {
        char *at = tetra_slot_at(g);
        tetra_close_field(g, slot, at, 0, TETRA_ARG_ERROR);
        return;
    }
    tetra_put_buf(g, slot, base, (__s64)len, 1);
}

/* Records: fields of a kernel struct (bpf_attr, bpf_map, perf_event, user_namespace,
 * module, load_info) copied back to back into one length-prefixed argument; the
 * generated code names each field's BTF offset and size (tetra/compiler/records.py).
 * A field that cannot be read is left zero: both read helpers zero their room on error. */
#define TETRA_REC_MAX 256

static __always_inline __u32 tetra_rec_copy(char *at, __u32 len, const void *base, __u32 off, __u32 size)
{
    TETRA_BOUND(len, TETRA_REC_MAX);
    bpf_probe_read_kernel(at + 4 + len, size, (const char *)base + off);
    return len + size;
}

/* A string the member at base + off points to, in a room of size bytes. */
static __always_inline __u32 tetra_rec_str(char *at, __u32 len, const void *base, __u32 off, __u32 size, int user)
{
    TETRA_BOUND(len, TETRA_REC_MAX);
    const void *src = tetra_read_ptr(base, off);
    if (user)
        bpf_probe_read_user_str(at + 4 + len, size, src);
    else
        bpf_probe_read_kernel_str(at + 4 + len, size, src);
    return len + size;
}

/* A dentry's path within its filesystem (no mount to climb: the walk stops at
 * the filesystem's root). */
static __always_inline void tetra_put_dentry(struct tetra_gen_scratch *g, __u32 slot, void *dentry)
{
    char *at = tetra_slot_at(g);
    __u32 flags = 0;
    struct tetra_path_walk walk = {};
    if (dentry)
        walk = tetra_walk_path(at + 4, dentry, 0, 0, 0);
    else
        flags = TETRA_ARG_ERROR;
    if (walk.truncated)
        flags |= TETRA_ARG_TRUNCATED;
    __u32 len = walk.len;
    TETRA_BOUND(len, TETRA_STR_MAX);
    tetra_close_field(g, slot, at, len, flags);
}

#ifdef TETRA_NEED_SOCKTRACK
/* TrackSock/UntrackSock: a tracked struct sock is reported as the process that
 * tracked it, wherever its event happens (softirq, a process that inherited the
 * socket), as in Tetragon. LRU: a socket never untracked is forgotten in time
 * rather than filling the map. */
BPF_F_TABLE("lru_hash", __u64, __u64, socktrack, 16384, 0);

static __always_inline void tetra_track_sock(__u64 sk)
{
    __u64 owner = bpf_get_current_pid_tgid();
    if (sk)
        socktrack.update(&sk, &owner);
}

static __always_inline void tetra_untrack_sock(__u64 sk)
{
    socktrack.delete(&sk);
}
#endif

/* A kernel struct sock: its connection and state (sock_arg); the slot's value is
 * the pointer (for TrackSock/UntrackSock). */
static __always_inline void tetra_put_sock(struct tetra_gen_scratch *g, __u32 slot, void *sk)
{
    char *at = tetra_slot_at(g);
    struct tetra_sock s = {};
    if (sk) {
        s.t.family = tetra_read_u32(sk, TETRA_OFF_SK_FAMILY) & 0xFFFF;
        s.t.state = tetra_read_u32(sk, TETRA_OFF_SK_STATE) & 0xFF;
        s.t.sport = tetra_read_u32(sk, TETRA_OFF_SK_NUM) & 0xFFFF;
        __u16 dport = tetra_read_u32(sk, TETRA_OFF_SK_DPORT) & 0xFFFF;
        s.t.dport = (dport >> 8) | (dport << 8);
        s.t.protocol = tetra_read_u32(sk, TETRA_OFF_SK_PROTOCOL) & 0xFF;
        s.type = tetra_read_u32(sk, TETRA_OFF_SK_TYPE) & 0xFFFF;
        if (s.t.family == 10) {
            bpf_probe_read_kernel(s.t.saddr, 16, (char *)sk + TETRA_OFF_SK_V6_RCV_SADDR);
            bpf_probe_read_kernel(s.t.daddr, 16, (char *)sk + TETRA_OFF_SK_V6_DADDR);
        } else {
            bpf_probe_read_kernel(s.t.saddr, 4, (char *)sk + TETRA_OFF_SK_RCV_SADDR);
            bpf_probe_read_kernel(s.t.daddr, 4, (char *)sk + TETRA_OFF_SK_DADDR);
        }
#ifdef TETRA_NEED_SOCKTRACK
        __u64 key = (__u64)sk;
        __u64 *owner = socktrack.lookup(&key);
        if (owner) {
            struct tetra_generic *ev = (struct tetra_generic *)g->buf;
            ev->h.pid = *owner >> 32;
            ev->h.tid = (__u32)*owner;
        }
#endif
    }
    __builtin_memcpy(at, &s, sizeof(s));
    tetra_close_fixed(g, slot, at, sizeof(s), (__s64)sk);
}

/* A struct sk_buff: sizes and marks, and the IP/TCP/UDP headers it carries (skb_arg). */
static __always_inline void tetra_put_skb(struct tetra_gen_scratch *g, __u32 slot, void *skb)
{
    char *at = tetra_slot_at(g);
    struct tetra_skb s = {};
    if (skb) {
        s.len = tetra_read_u32(skb, TETRA_OFF_SKB_LEN);
        s.priority = tetra_read_u32(skb, TETRA_OFF_SKB_PRIORITY);
        s.mark = tetra_read_u32(skb, TETRA_OFF_SKB_MARK);
        char *head = tetra_read_ptr(skb, TETRA_OFF_SKB_HEAD);
        __u16 nh = tetra_read_u32(skb, TETRA_OFF_SKB_NETWORK_HEADER) & 0xFFFF;
        __u16 th = tetra_read_u32(skb, TETRA_OFF_SKB_TRANSPORT_HEADER) & 0xFFFF;
        __u8 version = 0;
        bpf_probe_read_kernel(&version, 1, head + nh);
        version >>= 4;
        if (version == 4) {
            s.t.family = 2;
            bpf_probe_read_kernel(&s.t.protocol, 1, head + nh + 9);
            bpf_probe_read_kernel(s.t.saddr, 4, head + nh + 12);
            bpf_probe_read_kernel(s.t.daddr, 4, head + nh + 16);
        } else if (version == 6) {
            s.t.family = 10;
            bpf_probe_read_kernel(&s.t.protocol, 1, head + nh + 6);
            bpf_probe_read_kernel(s.t.saddr, 16, head + nh + 8);
            bpf_probe_read_kernel(s.t.daddr, 16, head + nh + 24);
        }
        if (s.t.protocol == 6 || s.t.protocol == 17) {  /* TCP, UDP: ports first */
            __u16 ports[2] = {};
            bpf_probe_read_kernel(ports, sizeof(ports), head + th);
            s.t.sport = (ports[0] >> 8) | (ports[0] << 8);
            s.t.dport = (ports[1] >> 8) | (ports[1] << 8);
        }
    }
    __builtin_memcpy(at, &s, sizeof(s));
    tetra_close_fixed(g, slot, at, sizeof(s), s.t.family);
}

/* A struct cred: ids, securebits, capability sets, user namespace with its
 * level and owner (process_credentials_arg). */
static __always_inline void tetra_put_cred(struct tetra_gen_scratch *g, __u32 slot, void *cred)
{
    char *at = tetra_slot_at(g);
    struct tetra_cred_arg c = {};
    if (cred) {
        tetra_read_cred(&c.cred, cred);
        tetra_read_userns(cred, &c.userns_level, &c.userns_owner, &c.userns_group);
    }
    __builtin_memcpy(at, &c, sizeof(c));
    tetra_close_fixed(g, slot, at, sizeof(c), c.cred.euid);
}

/* --- matching ------------------------------------------------------------ */

/* Copy up to TETRA_KEY_MAX bytes of src (kernel memory) into the key. */
static __always_inline __u32 tetra_copy_key(struct tetra_gen_scratch *g, __u32 id, const char *src, __u32 len)
{
    g->key.id = id;
    if (len > TETRA_KEY_MAX)
        len = TETRA_KEY_MAX;
    TETRA_BOUND(len, TETRA_KEY_MAX);
    if (len)
        bpf_probe_read_kernel(g->key.data, len, src);
    return len;
}

/* The same, zero padded: a hash map compares all of the key. */
static __always_inline __u32 tetra_fill_key(struct tetra_gen_scratch *g, __u32 id, const char *src, __u32 len)
{
    __builtin_memset(g->key.data, 0, TETRA_KEY_MAX);
    return tetra_copy_key(g, id, src, len);
}

/* The string of an argument slot (bytes in the scratch buffer). */
static __always_inline const char *tetra_slot_str(struct tetra_gen_scratch *g, __u32 slot, __u32 *len)
{
    if (slot >= TETRA_MAX_ARGS) {
        *len = 0;
        return g->buf;
    }
    __u64 off = g->soff[slot];
    TETRA_BOUND(off, TETRA_GEN_BUF - TETRA_KEY_MAX);
    *len = g->slen[slot];
    return g->buf + off;
}

static __always_inline int tetra_str_equal(struct tetra_gen_scratch *g, __u32 id, const char *src, __u32 len)
{
    if (len > TETRA_KEY_MAX - 1)
        return 0;  /* longer than any value may be */
    tetra_fill_key(g, id, src, len);
    g->key.prefixlen = 0;
    return str_eq.lookup(&g->key) != 0;
}

static __always_inline int tetra_str_prefix(struct tetra_gen_scratch *g, __u32 id, const char *src, __u32 len)
{
    len = tetra_copy_key(g, id, src, len);  /* an LPM trie reads only prefixlen bits: no padding needed */
    g->key.prefixlen = 32 + len * 8;
    return str_prefix.lookup(&g->key) != 0;
}

/* Postfix values are stored reversed, so a postfix is a prefix of the reversed
 * string. The last bytes are copied with one read and reversed in place: a
 * helper call per byte made the program too large for older verifiers. */
static __always_inline int tetra_str_postfix(struct tetra_gen_scratch *g, __u32 id, const char *src, __u32 len)
{
    __builtin_memset(g->key.data, 0, TETRA_KEY_MAX);
    g->key.id = id;
    if (len > TETRA_STR_MAX)
        len = TETRA_STR_MAX;
    __u64 n = len < TETRA_POSTFIX_MAX ? len : TETRA_POSTFIX_MAX;
    __u64 start = len - n;
    TETRA_BOUND(start, TETRA_STR_MAX);
    TETRA_BOUND(n, TETRA_POSTFIX_MAX);
    if (n)
        bpf_probe_read_kernel(g->key.data, n, src + start);
    for (int i = 0; i < TETRA_POSTFIX_MAX / 2; i++) {
        __u64 j = n - 1 - i;
        if (i >= n / 2)
            break;
        TETRA_BOUND(j, TETRA_POSTFIX_MAX - 1);
        char c = g->key.data[i];
        g->key.data[i] = g->key.data[j];
        g->key.data[j] = c;
    }
    g->key.prefixlen = 32 + n * 8;
    return str_postfix.lookup(&g->key) != 0;
}

/* An address (family 2 or 10, 16 bytes) against CIDRs loaded under id4 / id6.
 * An IPv4-mapped IPv6 address (::ffff:a.b.c.d, what a dual-stack socket connects
 * with) is the IPv4 address it carries: IPv4 CIDRs match it too, else a rule on
 * 127.0.0.1 would not see a connect to ::ffff:127.0.0.1. */
static __always_inline int tetra_lpm_addr(struct tetra_gen_scratch *g, __u16 family, const __u8 *addr,
                                          __u32 id4, __u32 id6)
{
    if (family == 10) {
        __u64 head;
        __u32 mid;
        __builtin_memcpy(&head, addr, 8);
        __builtin_memcpy(&mid, addr + 8, 4);
        if (head == 0 && mid == 0xffff0000 /* bytes 00 00 ff ff */) {
            g->akey.id = id4;
            g->akey.prefixlen = 32 + 32;
            __builtin_memcpy(g->akey.addr, addr + 12, 4);
            if (addr_lpm.lookup(&g->akey))
                return 1;
        }
        g->akey.id = id6;
        g->akey.prefixlen = 32 + 128;
    } else if (family == 2) {
        g->akey.id = id4;
        g->akey.prefixlen = 32 + 32;
    } else {
        return 0;
    }
    __builtin_memcpy(g->akey.addr, addr, 16);
    return addr_lpm.lookup(&g->akey) != 0;
}

/* Address of a sockaddr slot against CIDRs loaded under id (v4 and v6 ids differ). */
static __always_inline int tetra_addr_match(struct tetra_gen_scratch *g, __u32 slot, __u32 id4, __u32 id6)
{
    __u32 len;
    const struct tetra_sockaddr *sa = (const void *)tetra_slot_str(g, slot, &len);
    struct tetra_sockaddr copy = {};
    bpf_probe_read_kernel(&copy, sizeof(copy), sa);
    return tetra_lpm_addr(g, copy.family, copy.addr, id4, id6);
}

/* The tuple (struct tetra_tuple, first in tetra_sock and tetra_skb) of a slot. */
static __always_inline void tetra_slot_tuple(struct tetra_gen_scratch *g, __u32 slot, struct tetra_tuple *t)
{
    __u32 len;
    const void *at = tetra_slot_str(g, slot, &len);
    bpf_probe_read_kernel(t, sizeof(*t), at);
}

/* Source (dst=0) or destination (dst=1) address of a sock/skb slot against CIDRs. */
static __always_inline int tetra_tuple_addr_match(struct tetra_gen_scratch *g, __u32 slot, int dst, __u32 id4, __u32 id6)
{
    struct tetra_tuple t = {};
    tetra_slot_tuple(g, slot, &t);
    return tetra_lpm_addr(g, t.family, dst ? t.daddr : t.saddr, id4, id6);
}

/* A field of a sock/skb slot's tuple: 0 family, 1 sport, 2 dport, 3 protocol, 4 state. */
static __always_inline __u32 tetra_tuple_field(struct tetra_gen_scratch *g, __u32 slot, int which)
{
    struct tetra_tuple t = {};
    tetra_slot_tuple(g, slot, &t);
    return which == 0 ? t.family : which == 1 ? t.sport : which == 2 ? t.dport : which == 3 ? t.protocol : t.state;
}

static __always_inline __u32 tetra_sockaddr_port(struct tetra_gen_scratch *g, __u32 slot)
{
    __u32 len;
    const struct tetra_sockaddr *sa = (const void *)tetra_slot_str(g, slot, &len);
    __u16 port = 0;
    bpf_probe_read_kernel(&port, sizeof(port), &sa->port);
    return port;
}

/* A binary against a selector's values: only bytes the kernel really has are
 * compared (lib/execve.h): a path whose start is missing never matches Equal or
 * Prefix, one whose end is missing never matches Equal or Postfix. */
static __always_inline int tetra_bin_match(struct tetra_gen_scratch *g, const struct tetra_binary *bin,
                                           __u32 id, int op)
{
    if (op == 0)
        return !bin->trunc && tetra_str_equal(g, id, bin->path, bin->len);
    if (op == 1)
        return !(bin->trunc & TETRA_BIN_HEAD_LOST) && tetra_str_prefix(g, id, bin->path, bin->len);
    return !(bin->trunc & TETRA_BIN_TAIL_LOST) && tetra_str_postfix(g, id, bin->path, bin->len);
}

/* The binary (or, parent=1, the parent's binary) of the current process. */
static __always_inline int tetra_binary_match(struct tetra_gen_scratch *g, __u32 id, int op, int parent)
{
    __u32 tgid = bpf_get_current_pid_tgid() >> 32;
    struct tetra_exec_info *info = tetra_execve.lookup(&tgid);
    if (!info)
        return 0;
    return tetra_bin_match(g, parent ? &info->parent : &info->binary, id, op);
}

static __always_inline __u32 tetra_ns_pid(void)
{
    return tetra_task_ns_pid((void *)bpf_get_current_task());
}

/* followChildren / followForks look this many generations up the parent chain. */
#define TETRA_ANCESTOR_DEPTH 16

/* matchBinaries with followChildren: the current process or one of its
 * ancestors runs a matching binary. */
static __always_inline int tetra_lineage_binary_match(struct tetra_gen_scratch *g, __u32 id, int op)
{
    void *task = (void *)bpf_get_current_task();
    for (int i = 0; i < TETRA_ANCESTOR_DEPTH; i++) {
        __u32 tgid = tetra_task_tgid(task);
        if (tgid <= 1)
            break;
        struct tetra_exec_info *info = tetra_execve.lookup(&tgid);
        if (info && tetra_bin_match(g, &info->binary, id, op))
            return 1;
        task = tetra_read_ptr(task, TETRA_OFF_TASK_REAL_PARENT);
    }
    return 0;
}

static __always_inline int tetra_pid_in(__u32 id, __u32 pid)
{
    struct tetra_pidkey key = { .id = id, .pid = pid };
    return pid_set.lookup(&key) != 0;
}

/* matchPIDs with followForks: the current process or one of its ancestors has a
 * listed pid (as the host sees it, or with in_ns as its own pid namespace does). */
static __always_inline int tetra_lineage_pid_in(__u32 id, int in_ns)
{
    void *task = (void *)bpf_get_current_task();
    for (int i = 0; i < TETRA_ANCESTOR_DEPTH; i++) {
        __u32 tgid = tetra_task_tgid(task);
        if (tgid == 0)
            break;
        if (tetra_pid_in(id, in_ns ? tetra_task_ns_pid(task) : tgid))
            return 1;
        if (tgid == 1)
            break;
        task = tetra_read_ptr(task, TETRA_OFF_TASK_REAL_PARENT);
    }
    return 0;
}

/* The inode number of a namespace of the current task reached through nsproxy
 * (offsets of the nsproxy member and of ns.inum in its struct, from BTF). */
static __always_inline __u32 tetra_nsproxy_inum(unsigned long member, unsigned long inum)
{
    void *task = (void *)bpf_get_current_task();
    void *nsproxy = tetra_read_ptr(task, TETRA_OFF_TASK_NSPROXY);
    return tetra_read_u32(tetra_read_ptr(nsproxy, member), inum);
}

/* The pid namespace the current task lives in (not the one for its children). */
static __always_inline __u32 tetra_pid_ns_inum(void)
{
    return tetra_task_pid_ns_inum((void *)bpf_get_current_task());
}

static __always_inline __u32 tetra_user_ns_inum(void)
{
    void *task = (void *)bpf_get_current_task();
    void *cred = tetra_read_ptr(task, TETRA_OFF_TASK_CRED);
    return tetra_read_u32(tetra_read_ptr(cred, TETRA_OFF_CRED_USER_NS), TETRA_OFF_USER_NS_INUM);
}

/* A capability set (kernel_cap_t, 64 bits) of the current task's credentials. */
static __always_inline __u64 tetra_caps(unsigned long cap_offset)
{
    void *task = (void *)bpf_get_current_task();
    void *cred = tetra_read_ptr(task, TETRA_OFF_TASK_CRED);
    return tetra_read_u64(cred, cap_offset);
}

/* --- changes since exec (lib/execve.h's baseline) ----------------------------- */

/* The baseline of the current process; 0 for one the agent has not seen exec
 * or start, which then matches no change filter (as in Tetragon). */
static __always_inline struct tetra_exec_info *tetra_exec_info(void)
{
    __u32 tgid = bpf_get_current_pid_tgid() >> 32;
    return tetra_execve.lookup(&tgid);
}

/* matchCapabilityChanges: set `which` (0 permitted, 1 effective, 2 inheritable,
 * at cap_offset in struct cred) against the baseline. In (in=1): a capability
 * of mask was gained or lost; NotIn: only capabilities outside mask changed. */
static __always_inline int tetra_caps_changed(int which, unsigned long cap_offset, __u64 mask, int in)
{
    struct tetra_exec_info *info = tetra_exec_info();
    if (!info || which < 0 || which > 2)
        return 0;
    __u64 then = info->baseline.caps[which];
    __u64 now = tetra_caps(cap_offset);
    if ((then & mask) != (now & mask))
        return in;
    return !in && then != now;
}

/* matchNamespaceChanges: one of the namespaces whose bit (struct tetra_ns order)
 * is in mask is not the one of the baseline; a namespace the baseline lacks (0)
 * is never a change. */
static __always_inline int tetra_ns_changed(__u32 mask)
{
    struct tetra_exec_info *info = tetra_exec_info();
    if (!info)
        return 0;
    struct tetra_ns now = {};
    tetra_read_ns(&now, (void *)bpf_get_current_task());
    const __u32 *was = (const __u32 *)&info->baseline.ns;
    const __u32 *is = (const __u32 *)&now;
#pragma unroll
    for (int i = 0; i < 10; i++) {
        if ((mask >> i & 1) && was[i] && was[i] != is[i])
            return 1;
    }
    return 0;
}

/* A selector with a change filter matched: the current capabilities (caps=1)
 * and/or namespaces (ns=1) become the baseline, so the change is reported
 * once, not on every later call. */
static __always_inline void tetra_rebase(int caps, int ns)
{
    struct tetra_exec_info *info = tetra_exec_info();
    if (!info)
        return;
    struct tetra_baseline now = {};
    tetra_read_baseline(&now, (void *)bpf_get_current_task());
    if (caps)
        __builtin_memcpy(info->baseline.caps, now.caps, sizeof(now.caps));
    if (ns)
        __builtin_memcpy(&info->baseline.ns, &now.ns, sizeof(now.ns));
}

/* String (or path) argument slot against the values of matcher id: op 0
 * equal, 1 prefix, 2 postfix. */
static __always_inline int tetra_slot_match(struct tetra_gen_scratch *g, __u32 slot, __u32 id, int op)
{
    __u32 len;
    const char *s = tetra_slot_str(g, slot, &len);
    if (op == 0)
        return tetra_str_equal(g, id, s, len);
    if (op == 1)
        return tetra_str_prefix(g, id, s, len);
    return tetra_str_postfix(g, id, s, len);
}

static __always_inline __s64 tetra_ret(struct tetra_gen_scratch *g)
{
    return ((struct tetra_generic *)g->buf)->ret;
}

/* --- actions and emission -------------------------------------------------- */

static __always_inline int tetra_monitoring(void)
{
    __u32 zero = 0;
    __u32 *mode = policy_mode.lookup(&zero);
    return mode && *mode;
}

/* PID 1 and the agent are never signalled, nor have a call overridden or
 * failed by an enforcer, unless the policy says so (option
 * enforce-protected-processes): a selector that matches more than meant must
 * not take the machine or its own enforcer down. */
static __always_inline int tetra_protected(void)
{
#ifdef TETRA_ENFORCE_PROTECTED
    return 0;
#else
    __u32 tgid = bpf_get_current_pid_tgid() >> 32;
    __u32 agent = tetra_agent_tgid();
    return tgid == 1 || (agent && tgid == agent);
#endif
}

/* 1 when an enforcing action may be taken: not when the policy only
 * monitors, nor on a protected process; the event says which. */
static __always_inline int tetra_may_enforce(struct tetra_generic *ev)
{
    if (tetra_monitoring()) {
        ev->gen_flags |= TETRA_GEN_MONITOR;
        return 0;
    }
    if (tetra_protected()) {
        ev->gen_flags |= TETRA_GEN_PROTECTED;
        return 0;
    }
    return 1;
}

/* Send a signal unless the policy only monitors or the process is protected. */
static __always_inline void tetra_signal(struct tetra_gen_scratch *g, __u32 action, __u32 sig)
{
    struct tetra_generic *ev = (struct tetra_generic *)g->buf;
    ev->action = action;
    if (tetra_may_enforce(ev))
        bpf_send_signal(sig);
}

/* Override: 1 when the hooked function's result is to be replaced; 0 in
 * monitoring mode or for a protected process, the event saying why. */
static __always_inline int tetra_override(struct tetra_gen_scratch *g)
{
    struct tetra_generic *ev = (struct tetra_generic *)g->buf;
    ev->action = TETRA_ACTION_OVERRIDE;
    return tetra_may_enforce(ev);
}

/* cgroup sock_addr programs: deny the call with error (a negative errno) unless the policy only monitors
 * or the process is protected. */
static __always_inline int tetra_deny(struct tetra_gen_scratch *g, int error)
{
    if (!tetra_override(g))
        return 1;
    bpf_set_retval(error);
    return 0;
}

#ifdef TETRA_NEED_ENFORCER
/* NotifyEnforcer: a hook marks the thread, and the fmod_ret program on the
 * policy's enforcer calls makes the thread's next such call fail (and/or
 * signals it). LRU: a mark whose thread never makes the call ages out. */
struct tetra_enforcement {
    __s32 error;
    __u32 sig;
};
BPF_TABLE("lru_hash", __u64, struct tetra_enforcement, enforcer_data, 4096);

static __always_inline void tetra_notify_enforcer(struct tetra_gen_scratch *g, __s32 error, __u32 sig)
{
    struct tetra_generic *ev = (struct tetra_generic *)g->buf;
    ev->action = TETRA_ACTION_NOTIFY_ENFORCER;
    if (!tetra_may_enforce(ev))
        return;
    struct tetra_enforcement mark = { .error = error, .sig = sig };
    __u64 id = bpf_get_current_pid_tgid();
    enforcer_data.update(&id, &mark);
}

/* The enforcer call's verdict: 0 lets it run, an errno replaces its result. */
static __always_inline int tetra_enforce(void)
{
    __u64 id = bpf_get_current_pid_tgid();
    struct tetra_enforcement *mark = enforcer_data.lookup(&id);
    if (!mark)
        return 0;
    __s32 error = mark->error;
    __u32 sig = mark->sig;
    enforcer_data.delete(&id);
    if (sig)
        bpf_send_signal(sig);
    return error;
}
#endif

#ifdef TETRA_NEED_RATELIMIT
/* A hash of the argument bytes, so "the same event" can be rate limited. */
static __always_inline __u64 tetra_args_hash(struct tetra_gen_scratch *g)
{
    __u64 hash = 14695981039346656037ULL;
    __u64 end = g->len;
    for (int i = 0; i < 256; i++) {
        __u64 at = sizeof(struct tetra_generic) + i;
        if (at >= end)
            break;
        TETRA_BOUND(at, TETRA_GEN_BUF - 1);
        hash = (hash ^ (__u8)g->buf[at]) * 1099511628211ULL;
    }
    return hash;
}

/* 1 when an identical event of this hook was posted less than interval_ns ago
 * within the scope (0 thread, 1 process, 2 global). */
static __always_inline int tetra_rate_limited(struct tetra_gen_scratch *g, __u32 hook_id, __u64 interval_ns, int scope)
{
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    struct tetra_rate_key key = {};
    key.hook_id = hook_id;
    key.scope_id = scope == 0 ? (__u32)pid_tgid : scope == 1 ? pid_tgid >> 32 : 0;
    key.args_hash = tetra_args_hash(g);
    __u64 now = bpf_ktime_get_boot_ns();
    __u64 *last = rate_seen.lookup(&key);
    if (last && now - *last < interval_ns)
        return 1;
    rate_seen.update(&key, &now);
    return 0;
}
#endif

static __always_inline void tetra_gen_emit(struct tetra_gen_scratch *g)
{
    struct tetra_generic *ev = (struct tetra_generic *)g->buf;
    ev->h.ktime = bpf_ktime_get_boot_ns();
    tetra_hook_count(ev->hook_id, 1);
    __u64 size = g->len;
    TETRA_BOUND(size, TETRA_GEN_BUF);
    ev->args_len = size - sizeof(struct tetra_generic);
    tetra_emit(g->buf, size, TETRA_OP_GENERIC);
}

#endif
