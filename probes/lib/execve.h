/* The binary of every live process, for matchBinaries / matchParentBinaries,
 * and its capabilities and namespaces at exec, for matchCapabilityChanges /
 * matchNamespaceChanges.
 *
 * The process sensor (TETRA_EVENTS_OWNER) writes it at exec and clone, deletes
 * at exit, and user space seeds it from /proc for processes that predate the
 * agent; policy modules read it through bcc's shared tables. A binary is the
 * path of the file the new image was loaded from (mm->exe_file), resolved in
 * the kernel: never the name as written in execve, which "./cat", "//usr/bin/cat",
 * a symlink or /proc/self/fd/N would spell differently for the same file.
 *
 * A path the kernel could not keep whole says which end is missing, so that a
 * selector only ever compares bytes that are really there (tetra_bin_match).
 */
#ifndef TETRA_EXECVE_H
#define TETRA_EXECVE_H

#define TETRA_BINARY_MAX 256
#ifndef TETRA_EXECVE_ENTRIES
#define TETRA_EXECVE_ENTRIES 32768
#endif

/* trunc bits of struct tetra_binary */
#define TETRA_BIN_TAIL_LOST 0x1  /* longer than TETRA_BINARY_MAX - 1: the end is missing */
#define TETRA_BIN_HEAD_LOST 0x2  /* deeper than TETRA_PATH_DEPTH: the start is missing */

struct tetra_binary {
    __u32 len;
    __u32 trunc;
    char path[TETRA_BINARY_MAX];
};

/* What a process had when it exec'd (a forked child: its parent's, until it
 * execs itself); /proc's current values for processes older than the agent.
 * A selector that saw a change makes the current values the new baseline,
 * so one change is reported once, as in Tetragon. Read at every exec: about
 * two dozen loads next to the path walks the exec already does (measured in
 * the commit that added it), which spares recompiling the process sensor
 * when a policy with these selectors arrives. */
struct tetra_baseline {
    __u64 caps[3];           /* permitted, effective, inheritable */
    struct tetra_ns ns;      /* 0 where the kernel has no such namespace: never a change */
};

struct tetra_exec_info {
    struct tetra_binary binary;
    struct tetra_binary parent;
    struct tetra_baseline baseline;
};

/* The current task's capability sets and namespaces (lib/context.h readers). */
static __always_inline void tetra_read_baseline(struct tetra_baseline *b, void *task)
{
    void *cred = tetra_read_ptr(task, TETRA_OFF_TASK_CRED);
    b->caps[0] = tetra_read_u64(cred, TETRA_OFF_CRED_CAP_PERMITTED);
    b->caps[1] = tetra_read_u64(cred, TETRA_OFF_CRED_CAP_EFFECTIVE);
    b->caps[2] = tetra_read_u64(cred, TETRA_OFF_CRED_CAP_INHERITABLE);
    tetra_read_ns(&b->ns, task);
}

#ifdef TETRA_EVENTS_OWNER
BPF_TABLE_SHARED("lru_hash", __u32, struct tetra_exec_info, tetra_execve, TETRA_EXECVE_ENTRIES);
#else
BPF_TABLE("extern", __u32, struct tetra_exec_info, tetra_execve, TETRA_EXECVE_ENTRIES);
#endif

#endif
