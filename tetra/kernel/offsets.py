"""The kernel struct offsets the probes read through, resolved from BTF.

Probes never name a struct member (the installed headers may be another
kernel's); they read ``base + TETRA_OFF_X``. This table is the one list of those
offsets: each define and the BTF path it comes from. A path ``a.b.c`` adds the
offsets of embedded members (no pointer is followed).
"""

from collections.abc import Mapping

from tetra.kernel.btf import Btf

OFFSET_PATHS: Mapping[str, str] = {
    "TETRA_OFF_TASK_PID": "task_struct.pid",
    "TETRA_OFF_TASK_TGID": "task_struct.tgid",
    "TETRA_OFF_TASK_REAL_PARENT": "task_struct.real_parent",
    "TETRA_OFF_TASK_MM": "task_struct.mm",
    "TETRA_OFF_TASK_FS": "task_struct.fs",
    "TETRA_OFF_TASK_LOGINUID": "task_struct.loginuid",
    "TETRA_OFF_TASK_EXIT_CODE": "task_struct.exit_code",
    "TETRA_OFF_TASK_SIGNAL": "task_struct.signal",
    "TETRA_OFF_TASK_CGROUPS": "task_struct.cgroups",
    "TETRA_OFF_SIGNAL_LIVE": "signal_struct.live",
    "TETRA_OFF_MM_ARG_START": "mm_struct.arg_start",
    "TETRA_OFF_MM_ARG_END": "mm_struct.arg_end",
    "TETRA_OFF_MM_ENV_START": "mm_struct.env_start",
    "TETRA_OFF_MM_ENV_END": "mm_struct.env_end",
    "TETRA_OFF_MM_EXE_FILE": "mm_struct.exe_file",
    "TETRA_OFF_FS_PWD_DENTRY": "fs_struct.pwd.dentry",
    "TETRA_OFF_FS_PWD_MNT": "fs_struct.pwd.mnt",
    "TETRA_OFF_FS_ROOT_DENTRY": "fs_struct.root.dentry",
    "TETRA_OFF_FS_ROOT_MNT": "fs_struct.root.mnt",
    "TETRA_OFF_DENTRY_D_PARENT": "dentry.d_parent",
    "TETRA_OFF_DENTRY_D_NAME_NAME": "dentry.d_name.name",
    "TETRA_OFF_MOUNT_MNT": "mount.mnt",
    "TETRA_OFF_MOUNT_MNT_PARENT": "mount.mnt_parent",
    "TETRA_OFF_MOUNT_MNT_MOUNTPOINT": "mount.mnt_mountpoint",
    "TETRA_OFF_VFSMOUNT_MNT_ROOT": "vfsmount.mnt_root",
    "TETRA_OFF_VFSMOUNT_MNT_SB": "vfsmount.mnt_sb",
    "TETRA_OFF_CSS_SET_DFL_CGRP": "css_set.dfl_cgrp",
    "TETRA_OFF_CGROUP_KN": "cgroup.kn",
    "TETRA_OFF_KERNFS_NODE_NAME": "kernfs_node.name",
    # generic hooks (probes/generic/generic.h)
    "TETRA_OFF_TASK_FILES": "task_struct.files",
    "TETRA_OFF_FILES_FDT": "files_struct.fdt",
    "TETRA_OFF_FDTABLE_MAX_FDS": "fdtable.max_fds",
    "TETRA_OFF_FDTABLE_FD": "fdtable.fd",
    "TETRA_OFF_FILE_F_PATH_DENTRY": "file.f_path.dentry",
    "TETRA_OFF_FILE_F_PATH_MNT": "file.f_path.mnt",
    "TETRA_OFF_TASK_CRED": "task_struct.cred",
    "TETRA_OFF_TASK_NSPROXY": "task_struct.nsproxy",
    "TETRA_OFF_TASK_THREAD_PID": "task_struct.thread_pid",
    "TETRA_OFF_PID_LEVEL": "pid.level",
    "TETRA_OFF_PID_NUMBERS": "pid.numbers",
    "TETRA_OFF_UPID_NR": "upid.nr",
    "TETRA_OFF_UPID_NS": "upid.ns",
    "TETRA_OFF_PID_NS_INUM": "pid_namespace.ns.inum",
    "TETRA_OFF_CRED_USER_NS": "cred.user_ns",
    "TETRA_OFF_USER_NS_INUM": "user_namespace.ns.inum",
    "TETRA_OFF_CRED_CAP_EFFECTIVE": "cred.cap_effective",
    "TETRA_OFF_CRED_CAP_PERMITTED": "cred.cap_permitted",
    "TETRA_OFF_CRED_CAP_INHERITABLE": "cred.cap_inheritable",
    "TETRA_OFF_LINUX_BINPRM_FILE": "linux_binprm.file",
    "TETRA_OFF_SK_FAMILY": "sock.__sk_common.skc_family",
    "TETRA_OFF_SK_STATE": "sock.__sk_common.skc_state",
    "TETRA_OFF_SK_NUM": "sock.__sk_common.skc_num",
    "TETRA_OFF_SK_DPORT": "sock.__sk_common.skc_dport",
    "TETRA_OFF_SK_RCV_SADDR": "sock.__sk_common.skc_rcv_saddr",
    "TETRA_OFF_SK_DADDR": "sock.__sk_common.skc_daddr",
    "TETRA_OFF_SK_V6_RCV_SADDR": "sock.__sk_common.skc_v6_rcv_saddr",
    "TETRA_OFF_SK_V6_DADDR": "sock.__sk_common.skc_v6_daddr",
    "TETRA_OFF_SK_PROTOCOL": "sock.sk_protocol",
    "TETRA_OFF_SK_TYPE": "sock.sk_type",
    "TETRA_OFF_SOCKET_SK": "socket.sk",
    "TETRA_OFF_SKB_LEN": "sk_buff.len",
    "TETRA_OFF_SKB_PRIORITY": "sk_buff.priority",
    "TETRA_OFF_SKB_MARK": "sk_buff.mark",
    "TETRA_OFF_SKB_HEAD": "sk_buff.head",
    "TETRA_OFF_SKB_NETWORK_HEADER": "sk_buff.network_header",
    "TETRA_OFF_SKB_TRANSPORT_HEADER": "sk_buff.transport_header",
    "TETRA_OFF_SKB_PROTOCOL": "sk_buff.protocol",
    "TETRA_OFF_CRED_UID": "cred.uid",
    "TETRA_OFF_CRED_GID": "cred.gid",
    "TETRA_OFF_CRED_SUID": "cred.suid",
    "TETRA_OFF_CRED_SGID": "cred.sgid",
    "TETRA_OFF_CRED_EUID": "cred.euid",
    "TETRA_OFF_CRED_EGID": "cred.egid",
    "TETRA_OFF_CRED_FSUID": "cred.fsuid",
    "TETRA_OFF_CRED_FSGID": "cred.fsgid",
    "TETRA_OFF_CRED_SECUREBITS": "cred.securebits",
    # process context at exec (probes/lib/context.h)
    "TETRA_OFF_USER_NS_LEVEL": "user_namespace.level",
    "TETRA_OFF_USER_NS_OWNER": "user_namespace.owner",
    "TETRA_OFF_USER_NS_GROUP": "user_namespace.group",
    "TETRA_OFF_MM_SAVED_AUXV": "mm_struct.saved_auxv",
    "TETRA_OFF_FILE_F_INODE": "file.f_inode",
    "TETRA_OFF_INODE_INO": "inode.i_ino",
    "TETRA_OFF_INODE_NLINK": "inode.i_nlink",
    "TETRA_OFF_INODE_MODE": "inode.i_mode",
    "TETRA_OFF_INODE_UID": "inode.i_uid",
    "TETRA_OFF_INODE_GID": "inode.i_gid",
    "TETRA_OFF_NSPROXY_UTS": "nsproxy.uts_ns",
    "TETRA_OFF_NSPROXY_IPC": "nsproxy.ipc_ns",
    "TETRA_OFF_NSPROXY_MNT": "nsproxy.mnt_ns",
    "TETRA_OFF_NSPROXY_PID_FOR_CHILDREN": "nsproxy.pid_ns_for_children",
    "TETRA_OFF_NSPROXY_NET": "nsproxy.net_ns",
    "TETRA_OFF_NSPROXY_TIME": "nsproxy.time_ns",
    "TETRA_OFF_NSPROXY_TIME_FOR_CHILDREN": "nsproxy.time_ns_for_children",
    "TETRA_OFF_NSPROXY_CGROUP": "nsproxy.cgroup_ns",
    "TETRA_OFF_UTS_NS_INUM": "uts_namespace.ns.inum",
    "TETRA_OFF_IPC_NS_INUM": "ipc_namespace.ns.inum",
    "TETRA_OFF_MNT_NS_INUM": "mnt_namespace.ns.inum",
    "TETRA_OFF_NET_NS_INUM": "net.ns.inum",
    "TETRA_OFF_TIME_NS_INUM": "time_namespace.ns.inum",
    "TETRA_OFF_CGROUP_NS_INUM": "cgroup_namespace.ns.inum",
}

# Sizes of structs the probes step over (arrays of them).
SIZE_NAMES: Mapping[str, str] = {
    "TETRA_SIZEOF_UPID": "upid",
}


def resolve_offsets(btf: Btf) -> dict[str, int]:
    """Every TETRA_OFF_* and TETRA_SIZEOF_* define with its value on the running kernel.

    Raises BtfError naming the first member the kernel does not have.
    """
    defines = {define: btf.offset_of(path) for define, path in OFFSET_PATHS.items()}
    defines.update({define: btf.size_of(name) for define, name in SIZE_NAMES.items()})
    return defines
