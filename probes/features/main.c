/* Programs `tetra probe` loads by name with an explicit type (tetra/kernel/features.py).
 *
 * None starts with a prefix bcc attaches on its own (kprobe__, tracepoint__), and
 * none reads a kernel struct (the header tree may be another kernel's). The
 * helper_* programs are only loaded, never attached, so they never run: loading
 * is what asks the verifier whether the kernel allows the helper.
 */
#include <uapi/linux/bpf.h>

int on_tracepoint(void *ctx) { return 0; }
int on_raw_tracepoint(void *ctx) { return 0; }
int on_kprobe(struct pt_regs *ctx) { return 0; }
int on_kretprobe(struct pt_regs *ctx) { return 0; }
int on_uprobe(struct pt_regs *ctx) { return 0; }
int on_connect4(struct bpf_sock_addr *ctx) { return 1; /* allow */ }

/* SIGKILL, tetra's enforcement action; loaded only, never attached */
int helper_send_signal(void *ctx) { bpf_send_signal(9); return 0; }
/* -EPERM; loaded only, never attached */
int helper_override_return(struct pt_regs *ctx) { bpf_override_return(ctx, -1); return 0; }
/* writes to address 0, which would fault; loaded only, never attached */
int helper_probe_write_user(void *ctx) {
    u64 zero = 0;
    bpf_probe_write_user((void *)0, &zero, sizeof(zero));
    return 0;
}
int helper_current_cgroup_id(void *ctx) { return bpf_get_current_cgroup_id() == 0; }
int helper_ktime_boot_ns(void *ctx) { return bpf_ktime_get_boot_ns() == 0; }
