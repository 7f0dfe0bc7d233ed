/* Process lifecycle: exec, clone and exit, from tracepoints.
 *
 * Why these hooks: sched:sched_process_exec fires after the new image is in
 * place, so the binary is final (mm->exe_file, resolved here) and argv sits in the new mm's argument area
 * (reading argv at sys_enter_execve can find the pages not faulted in yet); the
 * raw sched_process_fork tracepoint hands us the child task, so threads can be
 * told from processes; sched:sched_process_exit fires for every thread, and only
 * the last one of a thread group is reported. All three exist on every kernel
 * tetra supports and need no kprobes.
 *
 * Compiled by tetra/sensors/process.py with the TETRA_OFF_* offsets of the
 * running kernel (tetra/kernel/offsets.py) and TETRA_RINGBUF_PAGES; with
 * TETRA_PROCESS_CRED and TETRA_PROCESS_NS when the agent shows credentials and
 * namespaces, TETRA_PROCESS_ENV when it shows environment variables. Without
 * them the exec path reads nothing more than it needs: the context costs only
 * those who ask for it. With TETRA_CGROUP_RATE (--cgroup-rate), exec and clone
 * records go out only while their cgroup is under the rate
 * (lib/cgroup_rate.h), a dropped exec leaving a small throttle record behind;
 * exits always go out, so that the agent forgets every process it was told of.
 */
#define TETRA_EVENTS_OWNER
#include "lib/wire.h"
#include "lib/kernel.h"
#include "lib/context.h"
#include "lib/path.h"
#include "lib/emit.h"
#include "lib/execve.h"
#include "lib/cgroup_rate.h"

/* The process context between struct tetra_exec and the filename (wire.h). */
#ifdef TETRA_PROCESS_CRED
#define TETRA_EXEC_CRED_ROOM sizeof(struct tetra_exec_cred)
#else
#define TETRA_EXEC_CRED_ROOM 0
#endif
#ifdef TETRA_PROCESS_NS
#define TETRA_EXEC_NS_ROOM sizeof(struct tetra_ns)
#else
#define TETRA_EXEC_NS_ROOM 0
#endif
#ifdef TETRA_PROCESS_ENV
#define TETRA_EXEC_ENV_ROOM sizeof(struct tetra_exec_env)
#define TETRA_EXEC_ENV_BYTES TETRA_ENV_MAX
#else
#define TETRA_EXEC_ENV_ROOM 0
#define TETRA_EXEC_ENV_BYTES 0
#endif
/* Where the filename starts. */
#define TETRA_EXEC_HEAD (sizeof(struct tetra_exec) + TETRA_EXEC_CRED_ROOM + TETRA_EXEC_NS_ROOM + TETRA_EXEC_ENV_ROOM)
/* Where the cgroup name ends, at most. */
#define TETRA_EXEC_FIXED_END (TETRA_EXEC_HEAD + 2 * TETRA_PATH_MAX + TETRA_ARGS_MAX + TETRA_CGROUP_MAX)

/* Room for the largest exec record: header, context, filename, cwd, argv, cgroup name, environment. */
#define TETRA_EXEC_SCRATCH (TETRA_EXEC_FIXED_END + TETRA_EXEC_ENV_BYTES)

struct tetra_exec_scratch {
    char buf[TETRA_EXEC_SCRATCH];
};
BPF_PERCPU_ARRAY(exec_scratch, struct tetra_exec_scratch, 1);
BPF_PERCPU_ARRAY(execve_scratch, struct tetra_exec_info, 1);

/* Record what tgid runs (info->binary, filled by the caller) and what its
 * parent runs, for matchBinaries / matchParentBinaries. */
static __always_inline void remember_binary(__u32 tgid, __u32 ppid, struct tetra_exec_info *info)
{
    struct tetra_exec_info *parent = tetra_execve.lookup(&ppid);
    if (parent)
        __builtin_memcpy(&info->parent, &parent->binary, sizeof(info->parent));
    else
        __builtin_memset(&info->parent, 0, sizeof(info->parent));
    tetra_execve.update(&tgid, info);
}

/* The resolved path of the new image (written at buf by the caller) as a binary. */
static __always_inline void remember_exec(__u32 tgid, __u32 ppid, const char *path, __u64 len, __u32 trunc)
{
    __u32 zero = 0;
    struct tetra_exec_info *info = execve_scratch.lookup(&zero);
    if (!info)
        return;
    if (len > TETRA_BINARY_MAX - 1) {
        len = TETRA_BINARY_MAX - 1;
        trunc |= TETRA_BIN_TAIL_LOST;
    }
    TETRA_BOUND(len, TETRA_BINARY_MAX - 1);
    __builtin_memset(info->binary.path, 0, TETRA_BINARY_MAX);
    if (len)
        bpf_probe_read_kernel(info->binary.path, len, path);
    info->binary.len = len;
    info->binary.trunc = trunc;
    tetra_read_baseline(&info->baseline, (void *)bpf_get_current_task());
    remember_binary(tgid, ppid, info);
}

static __always_inline __u32 clamp_len(long n, __u32 max)
{
    if (n < 0)
        return 0;
    if (n > max)
        return max;
    return n;
}

/* Copy the cgroup v2 leaf name (e.g. "docker-<id>.scope") of the current task. */
static __always_inline __u32 read_cgroup_name(char *dst, void *task)
{
    void *cset = tetra_read_ptr(task, TETRA_OFF_TASK_CGROUPS);
    void *cgrp = tetra_read_ptr(cset, TETRA_OFF_CSS_SET_DFL_CGRP);
    void *kn = tetra_read_ptr(cgrp, TETRA_OFF_CGROUP_KN);
    const char *name = tetra_read_ptr(kn, TETRA_OFF_KERNFS_NODE_NAME);
    return clamp_len(bpf_probe_read_kernel_str(dst, TETRA_CGROUP_MAX, name), TETRA_CGROUP_MAX);
}

#ifdef TETRA_CGROUP_RATE
struct tetra_throttle_scratch {
    char buf[sizeof(struct tetra_throttle) + TETRA_CGROUP_MAX];
};
BPF_PERCPU_ARRAY(throttle_scratch, struct tetra_throttle_scratch, 1);

/* Whether a process event (of pid_tgid, in the current task's cgroup) may go
 * out. When it may not, a throttle record goes out instead if this CPU starts
 * throttling the cgroup (THROTTLE_START), or if the event was an exec: the
 * cache must not go on showing the image it replaced, and a 40-byte record
 * costs little beside the exec record it stands for. A dropped event has still
 * updated the binary map: policy events of the process (and its children)
 * still match matchBinaries. */
static __always_inline int cgroup_rate_pass(void *task, __u64 cgroup_id, __u64 ktime, __u64 pid_tgid, __u8 exec)
{
    int verdict = tetra_cgroup_rate_check(cgroup_id, ktime);
    if (verdict == TETRA_RATE_PASS)
        return 1;
    __u8 flags = (verdict == TETRA_RATE_START ? TETRA_THROTTLE_START : 0) | (exec ? TETRA_THROTTLE_EXEC : 0);
    if (!flags)
        return 0;
    __u32 zero = 0;
    struct tetra_throttle_scratch *scratch = throttle_scratch.lookup(&zero);
    if (!scratch)
        return 0;
    struct tetra_throttle *ev = (struct tetra_throttle *)scratch->buf;
    tetra_fill_header_at(&ev->h, TETRA_OP_THROTTLE, pid_tgid, ktime);
    ev->h.flags = flags;
    ev->cgroup_id = cgroup_id;
    ev->_pad2 = 0;
    ev->_pad3 = 0;
    __u32 glen = flags & TETRA_THROTTLE_START ? read_cgroup_name(scratch->buf + sizeof(*ev), task) : 0;
    ev->cgroup_len = glen;
    __u64 size = sizeof(*ev) + glen;
    TETRA_BOUND(size, sizeof(scratch->buf));
    tetra_emit(ev, size, TETRA_OP_THROTTLE);
    return 0;
}
#endif

/* The binary: the file the new image was loaded from (mm->exe_file), resolved
 * as lib/execve.h says, written at dst with its length in ev->filename_len,
 * and remembered for matchBinaries. Everything it decides goes to memory (the
 * event, the binary map), none of it stays in registers: the cwd walk that
 * follows is then verified once, not once per way this one ended. */
static __always_inline void read_binary(struct tetra_exec *ev, char *dst, const char *exec_name, void *mm, void *fs,
                                        void *root_dentry, void *root_mnt)
{
    void *exe = tetra_read_ptr(mm, TETRA_OFF_MM_EXE_FILE);
    void *exe_dentry = tetra_read_ptr(exe, TETRA_OFF_FILE_F_PATH_DENTRY);
    void *exe_mnt = tetra_read_ptr(exe, TETRA_OFF_FILE_F_PATH_MNT);
    __u32 flen;
    __u32 bin_trunc = 0;
    if (fs && exe_dentry && exe_mnt) {
        struct tetra_path_walk walk = tetra_walk_path_as(dst, exe_dentry, exe_mnt, root_dentry, root_mnt, 1);
        flen = clamp_len(walk.len, TETRA_PATH_MAX);
        if (walk.truncated)
            ev->exec_flags |= TETRA_EXEC_TRUNC_FILENAME;
        if (walk.truncated & TETRA_WALK_HEAD_LOST)
            bin_trunc |= TETRA_BIN_HEAD_LOST;
        if (walk.truncated & TETRA_WALK_TAIL_LOST)
            bin_trunc |= TETRA_BIN_TAIL_LOST;
    } else {
        /* No file to resolve (never seen): the name as exec'd goes out, flagged,
         * and selectors treat the binary as unknown. */
        long n = bpf_probe_read_kernel_str(dst, TETRA_PATH_MAX, exec_name);
        flen = clamp_len(n > 0 ? n - 1 : 0, TETRA_PATH_MAX);
        ev->exec_flags |= TETRA_EXEC_FILENAME_UNRESOLVED;
        bin_trunc = TETRA_BIN_HEAD_LOST | TETRA_BIN_TAIL_LOST;
    }
    ev->filename_len = flen;
    remember_exec(ev->h.pid, ev->ppid, dst, flen, bin_trunc);
}

#ifdef TETRA_PROCESS_ENV
/* The environment block of the new image (mm->env_start..env_end, NUL-separated
 * NAME=value strings, as execve copied them), its first TETRA_ENV_MAX bytes
 * written at dst; the sizes go to env, truncation and failure to ev's flags.
 * Read like argv, from the new mm after exec: the pages are there. */
static __always_inline __u32 read_env(struct tetra_exec *ev, struct tetra_exec_env *env, char *dst, void *mm)
{
    __u64 env_start = tetra_read_u64(mm, TETRA_OFF_MM_ENV_START);
    __u64 env_end = tetra_read_u64(mm, TETRA_OFF_MM_ENV_END);
    __u64 size = env_end > env_start ? env_end - env_start : 0;
    __u64 want = size;
    if (want > TETRA_ENV_MAX) {
        want = TETRA_ENV_MAX;
        ev->exec_flags |= TETRA_EXEC_TRUNC_ENV;
    }
    __u32 elen = clamp_len(want, TETRA_ENV_MAX);
    TETRA_BOUND(elen, TETRA_ENV_MAX);
    if (elen && bpf_probe_read_user(dst, elen, (void *)env_start) < 0) {
        elen = 0;
        ev->exec_flags |= TETRA_EXEC_ENV_ERROR;
    }
    env->env_len = elen;
    env->env_size = size > 0xFFFFFFFF ? 0xFFFFFFFF : size;
    ev->exec_flags |= TETRA_EXEC_ENV;
    return elen;
}
#endif

TRACEPOINT_PROBE(sched, sched_process_exec)
{
    __u32 zero = 0;
    struct tetra_exec_scratch *scratch = exec_scratch.lookup(&zero);
    if (!scratch)
        return 0;
    char *buf = scratch->buf;
    struct tetra_exec *ev = (struct tetra_exec *)buf;
    void *task = (void *)bpf_get_current_task();
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    __u64 uid_gid = bpf_get_current_uid_gid();

    tetra_fill_header(&ev->h, TETRA_OP_EXEC, pid_tgid);
    ev->ppid = tetra_task_ppid(task);
    ev->uid = (__u32)uid_gid;
    ev->gid = uid_gid >> 32;
    ev->auid = tetra_read_u32(task, TETRA_OFF_TASK_LOGINUID);
    ev->cgroup_id = bpf_get_current_cgroup_id();
    ev->exec_flags = 0;
    ev->_pad2 = 0;
#ifdef TETRA_PROCESS_CRED
    tetra_read_exec_cred((struct tetra_exec_cred *)(buf + sizeof(*ev)), task);
    ev->exec_flags |= TETRA_EXEC_CRED;
#endif
#ifdef TETRA_PROCESS_NS
    tetra_read_ns((struct tetra_ns *)(buf + sizeof(*ev) + TETRA_EXEC_CRED_ROOM), task);
    ev->exec_flags |= TETRA_EXEC_NS;
#endif

    void *fs = tetra_read_ptr(task, TETRA_OFF_TASK_FS);
    void *root_dentry = tetra_read_ptr(fs, TETRA_OFF_FS_ROOT_DENTRY);
    void *root_mnt = tetra_read_ptr(fs, TETRA_OFF_FS_ROOT_MNT);
    void *mm = tetra_read_ptr(task, TETRA_OFF_TASK_MM);

    const char *exec_name = (const char *)args + (args->data_loc_filename & 0xFFFF);
    read_binary(ev, buf + TETRA_EXEC_HEAD, exec_name, mm, fs, root_dentry, root_mnt);
#ifdef TETRA_CGROUP_RATE
    if (!cgroup_rate_pass(task, ev->cgroup_id, ev->h.ktime, pid_tgid, 1))
        return 0;  /* after read_binary: the binary map knows the new image all the same */
#endif
    __u64 off = ev->filename_len;  /* read back from memory: the verifier forgets how it was made */
    TETRA_BOUND(off, TETRA_PATH_MAX);
    off += TETRA_EXEC_HEAD;

    void *pwd_dentry = tetra_read_ptr(fs, TETRA_OFF_FS_PWD_DENTRY);
    void *pwd_mnt = tetra_read_ptr(fs, TETRA_OFF_FS_PWD_MNT);
    struct tetra_path_walk walk = {};
    TETRA_BOUND(off, TETRA_EXEC_HEAD + TETRA_PATH_MAX);
    if (fs && pwd_dentry && pwd_mnt)
        walk = tetra_walk_path(buf + off, pwd_dentry, pwd_mnt, root_dentry, root_mnt);
    else
        ev->exec_flags |= TETRA_EXEC_CWD_ERROR;
    if (walk.truncated)
        ev->exec_flags |= TETRA_EXEC_TRUNC_CWD;
    __u32 clen = clamp_len(walk.len, TETRA_PATH_MAX);
    ev->cwd_len = clen;
    off += clen;

    __u64 arg_start = tetra_read_u64(mm, TETRA_OFF_MM_ARG_START);
    __u64 arg_end = tetra_read_u64(mm, TETRA_OFF_MM_ARG_END);
    __u64 want = arg_end > arg_start ? arg_end - arg_start : 0;
    if (want > TETRA_ARGS_MAX) {
        want = TETRA_ARGS_MAX;
        ev->exec_flags |= TETRA_EXEC_TRUNC_ARGS;
    }
    __u32 alen = clamp_len(want, TETRA_ARGS_MAX);
    TETRA_BOUND(off, TETRA_EXEC_HEAD + 2 * TETRA_PATH_MAX);
    TETRA_BOUND(alen, TETRA_ARGS_MAX);
    if (alen && bpf_probe_read_user(buf + off, alen, (void *)arg_start) < 0) {
        alen = 0;
        ev->exec_flags |= TETRA_EXEC_ARGS_ERROR;
    }
    ev->args_len = alen;
    off += alen;

    TETRA_BOUND(off, TETRA_EXEC_HEAD + 2 * TETRA_PATH_MAX + TETRA_ARGS_MAX);
    __u32 glen = read_cgroup_name(buf + off, task);
    ev->cgroup_len = glen;
    off += glen;

#ifdef TETRA_PROCESS_ENV
    TETRA_BOUND(off, TETRA_EXEC_FIXED_END);
    off += read_env(ev, (struct tetra_exec_env *)(buf + TETRA_EXEC_HEAD - TETRA_EXEC_ENV_ROOM), buf + off, mm);
#endif
    TETRA_BOUND(off, TETRA_EXEC_SCRATCH);
    tetra_emit(ev, off, TETRA_OP_EXEC);
    return 0;
}

RAW_TRACEPOINT_PROBE(sched_process_fork)
{
    void *child = (void *)ctx->args[1];
    __u32 child_tid = tetra_read_u32(child, TETRA_OFF_TASK_PID);
    __u32 child_tgid = tetra_task_tgid(child);
    if (child_tid != child_tgid)
        return 0;  /* a new thread, not a new process */

    struct tetra_clone ev = {};
    tetra_fill_header(&ev.h, TETRA_OP_CLONE, ((__u64)child_tgid << 32) | child_tid);
    ev.ppid = tetra_task_ppid(child);
    ev.cgroup_id = bpf_get_current_cgroup_id();
    __u32 zero = 0;
    struct tetra_exec_info *parent = tetra_execve.lookup(&ev.ppid);
    struct tetra_exec_info *info = execve_scratch.lookup(&zero);
    if (parent && info) {  /* the child runs its parent's binary, with its baseline, until it execs */
        __builtin_memcpy(&info->binary, &parent->binary, sizeof(info->binary));
        __builtin_memcpy(&info->baseline, &parent->baseline, sizeof(info->baseline));
        remember_binary(child_tgid, ev.ppid, info);
    }
#ifdef TETRA_CGROUP_RATE
    if (!cgroup_rate_pass((void *)bpf_get_current_task(), ev.cgroup_id, ev.h.ktime,
                          ((__u64)child_tgid << 32) | child_tid, 0))
        return 0;
#endif
    tetra_emit(&ev, sizeof(ev), TETRA_OP_CLONE);
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_exit)
{
    void *task = (void *)bpf_get_current_task();
#ifdef TETRA_HAVE_GROUP_DEAD
    if (!args->group_dead)
        return 0;
#else
    /* Older kernels: the live counter reached zero for the last thread. */
    void *signal = tetra_read_ptr(task, TETRA_OFF_TASK_SIGNAL);
    if (tetra_read_u32(signal, TETRA_OFF_SIGNAL_LIVE) != 0)
        return 0;
#endif
    struct tetra_exit ev = {};
    tetra_fill_header(&ev.h, TETRA_OP_EXIT, bpf_get_current_pid_tgid());
    tetra_execve.delete(&ev.h.pid);
    ev.exit_code = tetra_read_u32(task, TETRA_OFF_TASK_EXIT_CODE);
    tetra_emit(&ev, sizeof(ev), TETRA_OP_EXIT);
    return 0;
}
