/* Event layouts on the wire from the kernel to tetra.
 *
 * The one C definition of what probes write into the ring buffer; its Python twin
 * is tetra/wire/layouts.py and tests/unit/test_wire_layouts.py compiles this file
 * with gcc to check that both agree on every offset and size. Plain C with
 * fixed-width types and explicit padding, so that clang (BPF) and gcc agree.
 *
 * Every record starts with struct tetra_header; its first byte is the opcode that
 * user space dispatches on.
 */
#ifndef TETRA_WIRE_H
#define TETRA_WIRE_H

#define TETRA_OP_EXEC  1
#define TETRA_OP_CLONE 2
#define TETRA_OP_EXIT  3
#define TETRA_OP_MAX   4

/* Per-opcode counters in the `stats` per-CPU array: slot = opcode * 2 + kind. */
#define TETRA_STAT_SENT 0   /* records handed to the ring buffer */
#define TETRA_STAT_LOST 1   /* records the ring buffer had no room for */
#define TETRA_STAT_SLOTS (TETRA_OP_MAX * 2)

/* exec_flags of struct tetra_exec */
#define TETRA_EXEC_TRUNC_ARGS     0x01  /* argv longer than TETRA_ARGS_MAX */
#define TETRA_EXEC_ARGS_ERROR     0x02  /* argv could not be read */
#define TETRA_EXEC_TRUNC_CWD      0x04  /* cwd deeper than TETRA_PATH_DEPTH */
#define TETRA_EXEC_CWD_ERROR      0x08  /* cwd could not be read */
#define TETRA_EXEC_TRUNC_FILENAME 0x10  /* filename longer than TETRA_PATH_MAX */

#define TETRA_PATH_MAX   4096   /* filename and cwd bytes */
#define TETRA_ARGS_MAX   16384  /* argv bytes */
#define TETRA_CGROUP_MAX 256    /* cgroup leaf name bytes */

struct tetra_header {
    __u8  opcode;
    __u8  flags;
    __u16 _pad;
    __u32 size;     /* bytes of the whole record */
    __u64 ktime;    /* bpf_ktime_get_boot_ns() when the event happened */
    __u32 pid;      /* thread group id */
    __u32 tid;      /* thread id */
};

/* Followed by filename[filename_len], cwd[cwd_len] (path components from the leaf
 * up, each NUL-terminated: the kernel walks dentries upwards and user space
 * reverses), args[args_len] (argv, NUL-separated, argv[0] included) and
 * cgroup[cgroup_len] (the cgroup v2 leaf name). */
struct tetra_exec {
    struct tetra_header h;
    __u32 ppid;
    __u32 uid;
    __u32 gid;
    __u32 auid;
    __u64 cgroup_id;
    __u16 filename_len;
    __u16 cwd_len;
    __u16 args_len;
    __u16 cgroup_len;
    __u32 exec_flags;
    __u32 _pad2;
};

/* A new process (not a thread): header pid/tid are the child's. */
struct tetra_clone {
    struct tetra_header h;
    __u32 ppid;
    __u32 _pad2;
    __u64 cgroup_id;
};

/* The last thread of a process exited. */
struct tetra_exit {
    struct tetra_header h;
    __u32 exit_code;  /* task->exit_code: status << 8 | signal (0x80 = core) */
    __u32 _pad2;
};

#endif
