"""Tetragon's vocabulary: every name a TracingPolicy may use, in one place.

Taken from Tetragon's CRD (``cilium.io_tracingpolicies.yaml``), its reference
documentation and its selector parser (``pkg/selectors/kernel.go``). Where
Tetragon's parser accepts more spellings than the CRD (``lt`` for ``LT``,
``sigkill`` for ``Sigkill``), the extra spellings are listed as aliases: the
loader accepts them, stores the CRD spelling, and warns, because ``kubectl
apply`` would reject them.
"""

ARG_TYPES = (
    "auto", "int", "sint8", "int8", "uint8", "sint16", "int16", "uint16", "uint32", "sint32", "int32", "ulong",
    "unsigned long",
    "uint64", "size_t", "long", "sint64", "int64", "char_buf", "char_iovec", "skb", "sock", "sockaddr", "socket",
    "sockaddr_un", "string", "fd", "file", "filename", "path", "nop", "bpf_attr", "perf_event", "bpf_map",
    "user_namespace", "capability", "kiocb", "iov_iter", "cred", "const_buf", "load_info", "module", "syscall64",
    "kernel_cap_t", "cap_inheritable", "cap_permitted", "cap_effective", "linux_binprm", "data_loc", "net_device",
    "bpf_cmd", "dentry", "bpf_prog",
)

# Integer argument types and the values they hold (matchArgs values are checked against these).
_S8, _S16, _S32, _S64 = ((-(2 ** (n - 1)), 2 ** (n - 1) - 1) for n in (8, 16, 32, 64))
_U8, _U16, _U32, _U64 = ((0, 2 ** n - 1) for n in (8, 16, 32, 64))
INT_TYPE_RANGES: dict[str, tuple[int, int]] = {
    "int": _S32, "sint32": _S32, "int32": _S32, "sint8": _S8, "int8": _S8, "sint16": _S16, "int16": _S16,
    "long": _S64, "sint64": _S64, "int64": _S64, "syscall64": _S64, "size_t": _U64,
    "uint8": _U8, "uint16": _U16, "uint32": _U32, "ulong": _U64, "unsigned long": _U64, "uint64": _U64,
}
# Types whose value Tetragon reads as a string (paths, buffers, names).
STRING_TYPES = frozenset({"string", "char_buf", "char_iovec", "fd", "file", "filename", "path", "dentry",
                          "linux_binprm", "data_loc", "net_device", "const_buf"})
SOCKET_TYPES = frozenset({"sock", "skb", "sockaddr", "socket"})
CAPABILITY_TYPES = frozenset({"kernel_cap_t", "cap_inheritable", "cap_permitted", "cap_effective"})
# Arguments whose size may come from another argument, and which may be read at return.
BUFFER_TYPES = frozenset({"char_buf", "char_iovec"})

ARG_OPERATORS = (
    "Equal", "NotEqual", "Prefix", "NotPrefix", "Postfix", "NotPostfix", "GreaterThan", "LessThan", "GT", "LT",
    "Mask", "SPort", "NotSPort", "SPortPriv", "NotSportPriv", "DPort", "NotDPort", "DPortPriv", "NotDPortPriv",
    "SAddr", "NotSAddr", "DAddr", "NotDAddr", "Protocol", "Family", "State", "InMap", "NotInMap",
    "CapabilitiesGained", "InRange", "NotInRange", "SubString", "SubStringIgnCase", "FileType", "NotFileType",
)
# Spellings Tetragon's selector parser takes besides the CRD's.
OPERATOR_ALIASES = {
    "gt": "GT", "lt": "LT", "eq": "Equal", "neq": "NotEqual", "prefix": "Prefix", "notprefix": "NotPrefix",
    "postfix": "Postfix", "notpostfix": "NotPostfix", "mask": "Mask", "saddr": "SAddr", "Saddr": "SAddr",
    "daddr": "DAddr", "Daddr": "DAddr", "notsaddr": "NotSAddr", "NotSaddr": "NotSAddr", "notdaddr": "NotDAddr",
    "NotDaddr": "NotDAddr", "sport": "SPort", "Sport": "SPort", "dport": "DPort", "Dport": "DPort",
    "protocol": "Protocol", "notsport": "NotSPort", "NotSport": "NotSPort", "notdport": "NotDPort",
    "NotDport": "NotDPort", "sportpriv": "SPortPriv", "SportPriv": "SPortPriv", "dportpriv": "DPortPriv",
    "DportPriv": "DPortPriv", "notsportpriv": "NotSportPriv", "NotSPortPriv": "NotSportPriv",
    "notdportpriv": "NotDPortPriv", "NotDportPriv": "NotDPortPriv", "family": "Family", "state": "State",
}
PORT_OPERATORS = frozenset({"SPort", "NotSPort", "DPort", "NotDPort"})
PRIV_PORT_OPERATORS = frozenset({"SPortPriv", "NotSportPriv", "DPortPriv", "NotDPortPriv"})
ADDR_OPERATORS = frozenset({"SAddr", "NotSAddr", "DAddr", "NotDAddr"})
SOCKET_OPERATORS = PORT_OPERATORS | PRIV_PORT_OPERATORS | ADDR_OPERATORS | {"Protocol", "Family", "State"}
# What a sockaddr argument supports (Tetragon: "[not]saddr, [not]sport[priv], and family").
SOCKADDR_OPERATORS = frozenset({"SAddr", "NotSAddr", "SPort", "NotSPort", "SPortPriv", "NotSportPriv", "Family"})
STRING_OPERATORS = frozenset({"Prefix", "NotPrefix", "Postfix", "NotPostfix"})
SUBSTRING_OPERATORS = frozenset({"SubString", "SubStringIgnCase"})
NUMERIC_OPERATORS = frozenset({"GreaterThan", "LessThan", "GT", "LT", "Mask", "InRange", "NotInRange", "InMap",
                               "NotInMap"})
FILE_TYPE_OPERATORS = frozenset({"FileType", "NotFileType"})
# Operators that take no values.
VALUELESS_OPERATORS = PRIV_PORT_OPERATORS | {"CapabilitiesGained"}

SET_OPERATORS = ("In", "NotIn")
BINARY_OPERATORS = ("In", "NotIn", "Prefix", "NotPrefix", "Postfix", "NotPostfix")

NAMESPACES = ("Uts", "Ipc", "Mnt", "Pid", "PidForChildren", "Net", "Time", "TimeForChildren", "Cgroup", "User")
HOST_NS = "host_ns"
CAPABILITY_SETS = ("Effective", "Inheritable", "Permitted")

# Linux capabilities by number (include/uapi/linux/capability.h).
CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)

ADDRESS_FAMILIES = {
    "AF_UNSPEC": 0, "AF_UNIX": 1, "AF_LOCAL": 1, "AF_INET": 2, "AF_AX25": 3, "AF_IPX": 4, "AF_APPLETALK": 5,
    "AF_NETROM": 6, "AF_BRIDGE": 7, "AF_ATMPVC": 8, "AF_X25": 9, "AF_INET6": 10, "AF_ROSE": 11, "AF_DECnet": 12,
    "AF_NETBEUI": 13, "AF_SECURITY": 14, "AF_KEY": 15, "AF_NETLINK": 16, "AF_ROUTE": 16, "AF_PACKET": 17,
    "AF_ASH": 18, "AF_ECONET": 19, "AF_ATMSVC": 20, "AF_RDS": 21, "AF_SNA": 22, "AF_IRDA": 23, "AF_PPPOX": 24,
    "AF_WANPIPE": 25, "AF_LLC": 26, "AF_IB": 27, "AF_MPLS": 28, "AF_CAN": 29, "AF_TIPC": 30, "AF_BLUETOOTH": 31,
    "AF_IUCV": 32, "AF_RXRPC": 33, "AF_ISDN": 34, "AF_PHONET": 35, "AF_IEEE802154": 36, "AF_CAIF": 37,
    "AF_ALG": 38, "AF_NFC": 39, "AF_VSOCK": 40, "AF_KCM": 41, "AF_QIPCRTR": 42, "AF_SMC": 43, "AF_XDP": 44,
    "AF_MCTP": 45,
}
IP_PROTOCOLS = {
    "IPPROTO_IP": 0, "IPPROTO_ICMP": 1, "IPPROTO_IGMP": 2, "IPPROTO_IPIP": 4, "IPPROTO_TCP": 6, "IPPROTO_EGP": 8,
    "IPPROTO_PUP": 12, "IPPROTO_UDP": 17, "IPPROTO_IDP": 22, "IPPROTO_TP": 29, "IPPROTO_DCCP": 33,
    "IPPROTO_IPV6": 41, "IPPROTO_RSVP": 46, "IPPROTO_GRE": 47, "IPPROTO_ESP": 50, "IPPROTO_AH": 51,
    "IPPROTO_ICMPV6": 58, "IPPROTO_MTP": 92, "IPPROTO_BEETPH": 94, "IPPROTO_ENCAP": 98, "IPPROTO_PIM": 103,
    "IPPROTO_COMP": 108, "IPPROTO_L2TP": 115, "IPPROTO_SCTP": 132, "IPPROTO_UDPLITE": 136, "IPPROTO_MPLS": 137,
    "IPPROTO_ETHERNET": 143, "IPPROTO_RAW": 255, "IPPROTO_MPTCP": 262,
}
TCP_STATES = {
    "TCP_ESTABLISHED": 1, "TCP_SYN_SENT": 2, "TCP_SYN_RECV": 3, "TCP_FIN_WAIT1": 4, "TCP_FIN_WAIT2": 5,
    "TCP_TIME_WAIT": 6, "TCP_CLOSE": 7, "TCP_CLOSE_WAIT": 8, "TCP_LAST_ACK": 9, "TCP_LISTEN": 10,
    "TCP_CLOSING": 11, "TCP_NEW_SYN_RECV": 12, "TCP_BOUND_INACTIVE": 13,
}
FILE_TYPES = ("sock", "socket", "lnk", "link", "reg", "regular", "blk", "block", "dir", "chr", "char", "fifo",
              "pipe")

ACTIONS = ("Post", "FollowFD", "UnfollowFD", "Sigkill", "CopyFD", "Override", "GetUrl", "DnsLookup", "NoPost",
           "Signal", "TrackSock", "UntrackSock", "NotifyEnforcer", "CleanupEnforcerNotification", "Set")
DEPRECATED_ACTIONS = frozenset({"FollowFD", "UnfollowFD", "CopyFD"})
# Actions that stop or change what the traced process does.
ENFORCING_ACTIONS = frozenset({"Sigkill", "Signal", "Override", "NotifyEnforcer", "Set"})
RETURN_ARG_ACTIONS = ("Post", "TrackSock", "UntrackSock")
RATE_LIMIT_SCOPES = ("thread", "process", "global")

LIST_TYPES = ("syscalls", "generated_syscalls", "generated_ftrace")
GENERATED_LIST_TYPES = frozenset({"generated_syscalls", "generated_ftrace"})

# Tetragon's own spellings, then the long forms its documentation also uses.
POLICY_MODES = ("monitor", "enforce", "monitoring", "enforcement")
KINDS = ("TracingPolicy", "TracingPolicyNamespaced")
API_VERSION = "cilium.io/v1alpha1"
LABEL_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
# Keys of Kubernetes' ObjectMeta that may appear in an exported policy; only name,
# namespace, labels and annotations mean anything to tetra.
OTHER_METADATA_KEYS = ("uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
                       "deletionGracePeriodSeconds", "generateName", "ownerReferences", "finalizers",
                       "managedFields", "selfLink")
