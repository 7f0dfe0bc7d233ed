/* Reading kernel structs through offsets taken from the running kernel's BTF.
 *
 * bcc compiles against whatever header tree is installed, which may belong to
 * another kernel version (on the development machines: Debian 6.1 headers on a
 * 6.18 kernel), so `task->real_parent` would read the wrong bytes. Probes never
 * dereference kernel structs by member name: tetra/kernel/offsets.py resolves each
 * TETRA_OFF_* below from /sys/kernel/btf/vmlinux and passes it as a -D define.
 */
#ifndef TETRA_KERNEL_H
#define TETRA_KERNEL_H


/* Clamp an offset right where it is used: clang may test one copy of a value
 * and index with another, and the verifier only trusts the register it saw
 * compared. The empty asm pins the value into one register. */
#define TETRA_BOUND(v, max) ({ asm volatile("" : "+r"(v)); if ((v) > (max)) (v) = (max); (v); })

static __always_inline void *tetra_read_ptr(const void *base, unsigned long off)
{
    void *value = 0;
    bpf_probe_read_kernel(&value, sizeof(value), (const char *)base + off);
    return value;
}

static __always_inline __u32 tetra_read_u32(const void *base, unsigned long off)
{
    __u32 value = 0;
    bpf_probe_read_kernel(&value, sizeof(value), (const char *)base + off);
    return value;
}

static __always_inline __u64 tetra_read_u64(const void *base, unsigned long off)
{
    __u64 value = 0;
    bpf_probe_read_kernel(&value, sizeof(value), (const char *)base + off);
    return value;
}

/* The thread group id of a task (its "process id"). */
static __always_inline __u32 tetra_task_tgid(const void *task)
{
    return tetra_read_u32(task, TETRA_OFF_TASK_TGID);
}

/* The tgid of the task's real parent. */
static __always_inline __u32 tetra_task_ppid(const void *task)
{
    return tetra_task_tgid(tetra_read_ptr(task, TETRA_OFF_TASK_REAL_PARENT));
}

#endif
