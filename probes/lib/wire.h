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
#define TETRA_OP_GENERIC 4  /* an event of a TracingPolicy hook */
#define TETRA_OP_THROTTLE 5  /* --cgroup-rate: a CPU began throttling a cgroup */
#define TETRA_OP_LOADER 6   /* an executable file mapped (spec.loader) */
#define TETRA_OP_MAX   7

/* Per-opcode counters in the `stats` per-CPU array: slot = opcode * 2 + kind. */
#define TETRA_STAT_SENT 0   /* records handed to the ring buffer */
#define TETRA_STAT_LOST 1   /* records the ring buffer had no room for */
#define TETRA_STAT_SLOTS (TETRA_OP_MAX * 2)

/* exec_flags of struct tetra_exec */
#define TETRA_EXEC_TRUNC_ARGS     0x01  /* argv longer than TETRA_ARGS_MAX */
#define TETRA_EXEC_ARGS_ERROR     0x02  /* argv could not be read */
#define TETRA_EXEC_TRUNC_CWD      0x04  /* cwd deeper than TETRA_PATH_DEPTH */
#define TETRA_EXEC_CWD_ERROR      0x08  /* cwd could not be read */
#define TETRA_EXEC_TRUNC_FILENAME 0x10  /* binary path deeper than TETRA_PATH_DEPTH or longer than TETRA_PATH_MAX */
#define TETRA_EXEC_FILENAME_UNRESOLVED 0x20  /* no executable file to resolve: the name as exec'd */
#define TETRA_EXEC_CRED           0x40  /* a struct tetra_exec_cred follows struct tetra_exec */
#define TETRA_EXEC_NS             0x80  /* a struct tetra_ns follows (after the tetra_exec_cred, if any) */
#define TETRA_EXEC_ENV            0x100 /* a struct tetra_exec_env follows (after the context above), env[] ends the record */
#define TETRA_EXEC_TRUNC_ENV      0x200 /* the environment is longer than TETRA_ENV_MAX */
#define TETRA_EXEC_ENV_ERROR      0x400 /* the environment could not be read */

#define TETRA_PATH_MAX   4096   /* filename and cwd bytes */
#define TETRA_ARGS_MAX   16384  /* argv bytes */
#define TETRA_CGROUP_MAX 256    /* cgroup leaf name bytes */
#define TETRA_ENV_MAX    4096   /* environment bytes (--enable-process-environment-variables): the exec scratch
                                 * buffer, a per-CPU array value, holds 32 KiB at most */

struct tetra_header {
    __u8  opcode;
    __u8  flags;
    __u16 _pad;
    __u32 size;     /* bytes of the whole record */
    __u64 ktime;    /* bpf_ktime_get_boot_ns() when the event happened */
    __u32 pid;      /* thread group id */
    __u32 tid;      /* thread id */
};

/* Followed by the process context the agent asked for (struct tetra_exec_cred
 * if TETRA_EXEC_CRED, then struct tetra_ns if TETRA_EXEC_NS, then struct
 * tetra_exec_env if TETRA_EXEC_ENV), then by filename[filename_len], cwd[cwd_len] (the path, no NUL),
 * args[args_len] (argv, NUL-separated, argv[0] included), cgroup[cgroup_len]
 * (the cgroup v2 leaf name) and, with TETRA_EXEC_ENV, env[env_len] (the
 * environment block, NUL-separated NAME=value strings). */
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

/* --cgroup-rate (lib/cgroup_rate.h): a process event the kernel dropped, when
 * user space must hear of it (header flags below); the header's pid/tid are
 * the process whose event it was (a clone's: the child). With
 * TETRA_THROTTLE_START it is followed by cgroup[cgroup_len] (the cgroup v2
 * leaf name); otherwise cgroup_len is 0. */
#define TETRA_THROTTLE_START 0x1  /* this CPU began throttling the cgroup */
#define TETRA_THROTTLE_EXEC  0x2  /* an exec of pid was dropped: the image user space knows for it ended */
struct tetra_throttle {
    struct tetra_header h;
    __u64 cgroup_id;
    __u16 cgroup_len;
    __u16 _pad2;
    __u32 _pad3;
};

/* loader_flags of struct tetra_loader */
#define TETRA_LOADER_TRUNC_PATH 0x1  /* the path is deeper than TETRA_PATH_DEPTH or longer than TETRA_PATH_MAX */

/* A process mapped a file executable (mmap with PROT_EXEC and a file
 * descriptor); followed by path[path_len], the file's path (no NUL). */
struct tetra_loader {
    struct tetra_header h;
    __u64 ino;        /* the file's inode: user space reads its build id only from that file */
    __u32 path_len;
    __u32 loader_flags;
};

/* What a TracingPolicy hook did; user space names them KPROBE_ACTION_*. */
#define TETRA_ACTION_POST    0
#define TETRA_ACTION_NOPOST  1
#define TETRA_ACTION_SIGKILL 2
#define TETRA_ACTION_SIGNAL  3
#define TETRA_ACTION_OVERRIDE 4
#define TETRA_ACTION_NOTIFY_ENFORCER 5
#define TETRA_ACTION_GETURL  6  /* posted; the agent makes the HTTP GET */
#define TETRA_ACTION_DNSLOOKUP 7  /* posted; the agent makes the DNS lookup */

/* flags of struct tetra_generic */
#define TETRA_GEN_RETURN    0x01  /* ret holds the hook's return value */
#define TETRA_GEN_MONITOR   0x02  /* policy in monitoring mode: the action was not taken */
#define TETRA_GEN_PROTECTED 0x04  /* action withheld: the process is PID 1 or the agent */

/* Each argument in the blob after struct tetra_generic, in the hook's arg order:
 * integers are 8 bytes; strings, buffers and paths are a u32 (length in the low
 * 24 bits, TETRA_ARG_* flags above) followed by the bytes; socket addresses are
 * struct tetra_sockaddr. User space knows each hook's types and decodes them. */
#define TETRA_ARG_TRUNCATED 0x80000000u
#define TETRA_ARG_ERROR     0x40000000u
#define TETRA_ARG_LEN_MASK  0x00FFFFFFu

struct tetra_generic {
    struct tetra_header h;
    __u32 policy_id;
    __u32 hook_id;
    __u32 action;
    __s32 kernel_stack_id;  /* -1: none */
    __s32 user_stack_id;    /* -1: none */
    __u16 args_len;
    __u8  selector;         /* index of the matching selector, 0xff: none */
    __u8  gen_flags;
    __s64 ret;
};

struct tetra_sockaddr {
    __u16 family;
    __u16 port;     /* host byte order */
    __u32 _pad2;
    __u8  addr[16]; /* IPv4 in the first 4 bytes */
};

/* The connection part of a sock or skb argument (matched by SAddr, DPort, ...). */
struct tetra_tuple {
    __u16 family;
    __u16 sport;    /* host byte order */
    __u16 dport;
    __u8  protocol; /* IPPROTO_* */
    __u8  state;    /* TCP_* (sock only) */
    __u8  saddr[16];
    __u8  daddr[16];
};

struct tetra_sock {
    struct tetra_tuple t;
    __u16 type;     /* SOCK_* */
    __u16 _pad;
    __u32 _pad2;
};

struct tetra_skb {
    struct tetra_tuple t;
    __u32 len;
    __u32 priority;
    __u32 mark;
    __u32 _pad;
};

struct tetra_cred {
    __u32 uid;
    __u32 gid;
    __u32 suid;
    __u32 sgid;
    __u32 euid;
    __u32 egid;
    __u32 fsuid;
    __u32 fsgid;
    __u32 securebits;
    __u32 user_ns;  /* inode number */
    __u64 cap_permitted;
    __u64 cap_effective;
    __u64 cap_inheritable;
};

/* A cred argument of a policy hook (process_credentials_arg): the cred and
 * what Tetragon shows of the user namespace it belongs to. */
struct tetra_cred_arg {
    struct tetra_cred cred;
    __s32 userns_level;  /* 0: the initial user namespace */
    __u32 userns_owner;  /* uid that created the user namespace */
    __u32 userns_group;
    __u32 _pad;
};

/* The credentials of a process at exec (--enable-process-cred): its cred, what
 * Tetragon shows of the user namespace they belong to, and what tells how the
 * exec changed them (binary_properties): the executed file's inode and whether
 * the kernel ran the new image in secure mode (AT_SECURE). */
struct tetra_exec_cred {
    struct tetra_cred cred;
    __s32 userns_level;  /* 0: the initial user namespace */
    __u32 userns_owner;  /* uid that created the user namespace */
    __u32 userns_group;
    __u32 exe_nlink;     /* links of the executed file: 0 if deleted, or a memfd */
    __u64 exe_ino;
    __u32 exe_uid;
    __u32 exe_gid;
    __u32 exe_mode;      /* S_ISUID, S_ISGID, ... */
    __u32 secureexec;    /* AT_SECURE: setuid, setgid or file capabilities raised privileges */
};

/* The namespaces of a process at exec (--enable-process-ns): inode numbers, and
 * the process's pid inside its own pid namespace (1: that namespace's init). */
struct tetra_ns {
    __u32 uts;
    __u32 ipc;
    __u32 mnt;
    __u32 pid;
    __u32 pid_for_children;
    __u32 net;
    __u32 time;
    __u32 time_for_children;
    __u32 cgroup;
    __u32 user;
    __u32 pid_nr;
};

/* The environment of a process at exec (--enable-process-environment-variables):
 * how many of its bytes follow the cgroup name, out of how many the new image
 * has (mm->env_end - mm->env_start; more than env_len: TETRA_EXEC_TRUNC_ENV). */
struct tetra_exec_env {
    __u32 env_len;
    __u32 env_size;
};

#endif
