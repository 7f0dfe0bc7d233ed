"""Linux constants that policies name: capabilities, address families, namespaces."""

# Index = capability number (include/uapi/linux/capability.h).
CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
    "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)
CAPABILITY_NUMBERS = {name: number for number, name in enumerate(CAPABILITIES)}

ADDRESS_FAMILIES = {"AF_UNSPEC": 0, "AF_UNIX": 1, "AF_LOCAL": 1, "AF_INET": 2, "AF_INET6": 10,
                    "AF_NETLINK": 16, "AF_PACKET": 17}
FAMILY_NAMES = {2: "AF_INET", 10: "AF_INET6", 1: "AF_UNIX", 0: "AF_UNSPEC", 16: "AF_NETLINK", 17: "AF_PACKET"}

# matchNamespaces name -> (nsproxy member, its struct, /proc/<pid>/ns entry).
# Pid and User are reached another way (see selectors.py).
NAMESPACES = {
    "Uts": ("uts_ns", "uts_namespace", "uts"),
    "Ipc": ("ipc_ns", "ipc_namespace", "ipc"),
    "Mnt": ("mnt_ns", "mnt_namespace", "mnt"),
    "Net": ("net_ns", "net", "net"),
    "Cgroup": ("cgroup_ns", "cgroup_namespace", "cgroup"),
    "Time": ("time_ns", "time_namespace", "time"),
    "TimeForChildren": ("time_ns_for_children", "time_namespace", "time_for_children"),
    "PidForChildren": ("pid_ns_for_children", "pid_namespace", "pid_for_children"),
}

PROTOCOLS = {"IPPROTO_IP": 0, "IPPROTO_ICMP": 1, "IPPROTO_TCP": 6, "IPPROTO_UDP": 17, "IPPROTO_ICMPV6": 58,
             "IPPROTO_SCTP": 132, "IPPROTO_RAW": 255}
PROTOCOL_NAMES = {number: name for name, number in PROTOCOLS.items()}
TCP_STATES = {"TCP_ESTABLISHED": 1, "TCP_SYN_SENT": 2, "TCP_SYN_RECV": 3, "TCP_FIN_WAIT1": 4, "TCP_FIN_WAIT2": 5,
              "TCP_TIME_WAIT": 6, "TCP_CLOSE": 7, "TCP_CLOSE_WAIT": 8, "TCP_LAST_ACK": 9, "TCP_LISTEN": 10,
              "TCP_CLOSING": 11, "TCP_NEW_SYN_RECV": 12}
TCP_STATE_NAMES = {number: name for name, number in TCP_STATES.items()}
SOCK_TYPE_NAMES = {1: "SOCK_STREAM", 2: "SOCK_DGRAM", 3: "SOCK_RAW", 4: "SOCK_RDM", 5: "SOCK_SEQPACKET",
                   6: "SOCK_DCCP", 10: "SOCK_PACKET"}
