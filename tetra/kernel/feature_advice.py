"""What a feature ``tetra probe`` found missing means for tetra, and what the operator can do.

A ✘ alone leaves the operator to know which policies will then be refused: each
feature here says what is missing, what tetra does without it (a fallback, or
which hook types and actions are refused) and the remedy (a kernel option, a
boot parameter, a mount). The names are those of tetra.kernel.features' report.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Advice:
    missing: str  # what the kernel does not offer
    effect: str  # what tetra does without it: the hooks and actions refused, or the fallback
    remedy: str  # what the operator can do


ADVICE: dict[str, Advice] = {
    "BTF": Advice("kernel BTF (/sys/kernel/btf/vmlinux)",
                  "the agent cannot start: struct offsets come from BTF",
                  "run a kernel built with CONFIG_DEBUG_INFO_BTF=y (distribution kernels are)"),
    "kernel headers": Advice("kernel headers for bcc to compile against",
                             "nothing compiles: the agent cannot start, policies cannot be compiled",
                             "install linux-headers-$(uname -r), or run scripts/setup.sh (it links the "
                             "distribution's when the running kernel ships none)"),
    "cgroup v2": Advice("the unified cgroup hierarchy",
                        "no container ids or pods on events; pod-scoped policies (TracingPolicyNamespaced, "
                        "podSelector, containerSelector) apply to nothing; network deny is refused",
                        "boot with systemd.unified_cgroup_hierarchy=1, or mount -t cgroup2 none /sys/fs/cgroup"),
    "tracefs": Advice("tracefs (tracepoint formats, kprobe_events)",
                      "tracepoint hooks, syscall hooks and kprobes are refused",
                      "mount -t tracefs nodev /sys/kernel/tracing (scripts/setup.sh does)"),
    "lockdown": Advice("the lockdown state (securityfs is not mounted)",
                       "nothing by itself: the helper lines below show what lockdown refuses",
                       "mount -t securityfs securityfs /sys/kernel/security to read it"),
    "tracepoint": Advice("BPF programs on tracepoints",
                         "the agent cannot start (process exec and exit are tracepoints); tracepoint hooks "
                         "and syscall hooks without kprobes are refused",
                         "run a kernel with CONFIG_TRACEPOINTS and CONFIG_BPF_EVENTS"),
    "raw tracepoint": Advice("BPF programs on raw tracepoints",
                             "the agent cannot start (fork is a raw tracepoint); tracepoints with raw: true are "
                             "refused",
                             "run a kernel of 4.17 or later with CONFIG_BPF_EVENTS"),
    "kprobe": Advice("kprobes",
                     "kprobes on kernel functions use fentry instead, or are refused without it; syscall: true "
                     "kprobes use the syscalls tracepoints; Override on kprobes is refused",
                     "run a kernel with CONFIG_KPROBES and CONFIG_KPROBE_EVENTS, with tracefs and debugfs "
                     "mounted"),
    "kretprobe": Advice("kretprobes",
                        "return: true kprobes on kernel functions use fexit instead, or are refused without it",
                        "run a kernel with CONFIG_KPROBES and CONFIG_KPROBE_EVENTS"),
    "fentry": Advice("BPF fentry/fexit programs",
                     "kprobes on kernel functions are refused where kprobes are missing too; NotifyEnforcer "
                     "(fmod_ret) is refused",
                     "run a kernel with CONFIG_DEBUG_INFO_BTF, CONFIG_FUNCTION_TRACER and "
                     "CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS, not in lockdown confidentiality mode"),
    "BPF LSM": Advice("BPF LSM programs",
                      "lsmhooks are refused, and with them Override on LSM hooks (denying an open, an exec)",
                      "run a kernel with CONFIG_BPF_LSM=y and 'bpf' in the lsm= boot parameter "
                      "(cat /sys/kernel/security/lsm shows the active list)"),
    "uprobe": Advice("uprobes", "uprobe hooks are refused",
                     "run a kernel with CONFIG_UPROBES and CONFIG_UPROBE_EVENTS"),
    "cgroup sock_addr": Advice("BPF programs on cgroups' connect and bind",
                               "network deny (Override on connect through cgroup programs) is refused",
                               "run a kernel with CONFIG_CGROUP_BPF and cgroup v2 mounted"),
    "bpf_send_signal": Advice("the bpf_send_signal helper",
                              "the Sigkill and Signal actions are refused",
                              "run a kernel of 5.3 or later"),
    "bpf_override_return": Advice("the bpf_override_return helper",
                                  "Override on kprobes is refused (Override on LSM hooks works with BPF LSM)",
                                  "run a kernel with CONFIG_BPF_KPROBE_OVERRIDE=y, or hook the LSM hook instead "
                                  "(lsmhooks)"),
    "bpf_probe_write_user": Advice("the bpf_probe_write_user helper (lockdown refuses it)",
                                   "nothing: tetra's hooks do not use it",
                                   "nothing to do"),
    "ring buffer": Advice("BPF ring buffers",
                          "the agent cannot start: every event goes through one ring buffer",
                          "run a kernel of 5.8 or later"),
    "bpf_get_current_cgroup_id": Advice("the bpf_get_current_cgroup_id helper",
                                        "the agent cannot start: events carry their cgroup",
                                        "run a kernel with CONFIG_CGROUPS (4.18 or later)"),
    "bpf_ktime_get_boot_ns": Advice("the bpf_ktime_get_boot_ns helper",
                                    "the agent cannot start: event times are boot-clock times",
                                    "run a kernel of 5.8 or later"),
}
