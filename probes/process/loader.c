/* Executable file mappings: Tetragon's loader sensor (a policy's spec.loader: true).
 *
 * Why these hooks: a shared library (or any file a process runs code from) is
 * mapped by mmap(2) with PROT_EXEC and the file's descriptor; the dynamic
 * loader does this for every library it loads, dlopen(3) too. Tetragon takes
 * perf's mmap records through a kprobe, which this kernel does not have; the
 * syscall tracepoints are everywhere. sys_enter_mmap keeps the descriptor of
 * an executable file mapping per thread, sys_exit_mmap reports the file if the
 * mapping was made: its path (resolved from the descriptor's struct file as
 * the process's root sees it) and inode, from which user space reads the
 * build id. Not seen: what the kernel maps at exec itself (the binary and its
 * interpreter: process_exec has the binary), and memory made executable
 * later with mprotect(2). The agent's own mappings are left out.
 *
 * Compiled by tetra/sensors/loader.py with the TETRA_OFF_* offsets of the
 * running kernel, TETRA_RINGBUF_PAGES and TETRA_AGENT_TGID; loaded while a
 * policy with spec.loader is, and sharing the process sensor's ring buffer.
 * Enabling these tracepoints costs every syscall of every task a little
 * (the syscall tracing path): only policies that ask for it pay.
 */
#include "lib/wire.h"
#include "lib/kernel.h"
#include "lib/path.h"
#include "lib/emit.h"

#define TETRA_PROT_EXEC     0x4
#define TETRA_MAP_ANONYMOUS 0x20
#define TETRA_MAX_ERRNO     4095
#define TETRA_LOADER_PENDING 10240  /* threads between entry and exit of an executable mmap at once */

/* tid -> descriptor of an executable file mapping being made. LRU: a thread
 * killed inside the call never reaches the exit, and its entry must not stay. */
BPF_TABLE("lru_hash", __u64, __u32, loader_pending, TETRA_LOADER_PENDING);

struct tetra_loader_scratch {
    char buf[sizeof(struct tetra_loader) + TETRA_PATH_MAX];
};
BPF_PERCPU_ARRAY(loader_scratch, struct tetra_loader_scratch, 1);

TRACEPOINT_PROBE(syscalls, sys_enter_mmap)
{
    if (!(args->prot & TETRA_PROT_EXEC) || (args->flags & TETRA_MAP_ANONYMOUS) || (long)args->fd < 0)
        return 0;
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    if ((pid_tgid >> 32) == TETRA_AGENT_TGID)
        return 0;
    __u32 fd = args->fd;
    loader_pending.update(&pid_tgid, &fd);
    return 0;
}

/* The struct file behind descriptor fd of the current task, 0 if none. */
static __always_inline void *tetra_fd_file(void *task, __u32 fd)
{
    void *files = tetra_read_ptr(task, TETRA_OFF_TASK_FILES);
    void *fdt = tetra_read_ptr(files, TETRA_OFF_FILES_FDT);
    __u32 max = tetra_read_u32(fdt, TETRA_OFF_FDTABLE_MAX_FDS);
    void *file = 0;
    if (fd < max) {
        void **table = tetra_read_ptr(fdt, TETRA_OFF_FDTABLE_FD);
        bpf_probe_read_kernel(&file, sizeof(file), table + fd);
    }
    return file;
}

TRACEPOINT_PROBE(syscalls, sys_exit_mmap)
{
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    __u32 *pending = loader_pending.lookup(&pid_tgid);
    if (!pending)
        return 0;
    __u32 fd = *pending;
    loader_pending.delete(&pid_tgid);
    if ((unsigned long)args->ret >= (unsigned long)-TETRA_MAX_ERRNO)
        return 0;  /* the mapping failed: nothing was loaded */

    __u32 zero = 0;
    struct tetra_loader_scratch *scratch = loader_scratch.lookup(&zero);
    if (!scratch)
        return 0;
    struct tetra_loader *ev = (struct tetra_loader *)scratch->buf;
    void *task = (void *)bpf_get_current_task();
    void *file = tetra_fd_file(task, fd);  /* the mapping holds the file: the descriptor still names it */
    void *dentry = tetra_read_ptr(file, TETRA_OFF_FILE_F_PATH_DENTRY);
    void *mnt = tetra_read_ptr(file, TETRA_OFF_FILE_F_PATH_MNT);
    if (!dentry || !mnt) {
        tetra_count(TETRA_OP_LOADER, TETRA_STAT_LOST);  /* closed by another thread meanwhile: lost, and said so */
        return 0;
    }
    tetra_fill_header(&ev->h, TETRA_OP_LOADER, pid_tgid);
    ev->ino = tetra_read_u64(tetra_read_ptr(file, TETRA_OFF_FILE_F_INODE), TETRA_OFF_INODE_INO);
    ev->loader_flags = 0;
    void *fs = tetra_read_ptr(task, TETRA_OFF_TASK_FS);
    void *root_dentry = tetra_read_ptr(fs, TETRA_OFF_FS_ROOT_DENTRY);
    void *root_mnt = tetra_read_ptr(fs, TETRA_OFF_FS_ROOT_MNT);
    struct tetra_path_walk walk = tetra_walk_path(scratch->buf + sizeof(*ev), dentry, mnt, root_dentry, root_mnt);
    if (walk.truncated)
        ev->loader_flags |= TETRA_LOADER_TRUNC_PATH;
    __u32 len = walk.len;
    TETRA_BOUND(len, TETRA_PATH_MAX);
    ev->path_len = len;
    tetra_emit(ev, sizeof(*ev) + len, TETRA_OP_LOADER);
    return 0;
}
