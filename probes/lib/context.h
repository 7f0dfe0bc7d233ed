/* The context of a task that Tetragon shows on its process: credentials,
 * capabilities and namespaces.
 *
 * Read at exec by the process sensor when the agent asks for them
 * (--enable-process-cred, --enable-process-ns), and by policy hooks for
 * cred arguments, matchNamespaces and the changes since exec. Every struct is reached through BTF offsets
 * (lib/kernel.h); a pointer that cannot be read leaves zeros, never garbage.
 */
#ifndef TETRA_CONTEXT_H
#define TETRA_CONTEXT_H

#define TETRA_AT_SECURE  23  /* the auxv entry the kernel sets from bprm->secureexec */
#define TETRA_AUXV_PAIRS 24  /* (type, value) pairs of mm->saved_auxv looked at; AT_SECURE comes early */

/* A struct cred: ids, securebits, capability sets, user namespace inode. */
static __always_inline void tetra_read_cred(struct tetra_cred *c, void *cred)
{
    c->uid = tetra_read_u32(cred, TETRA_OFF_CRED_UID);
    c->gid = tetra_read_u32(cred, TETRA_OFF_CRED_GID);
    c->suid = tetra_read_u32(cred, TETRA_OFF_CRED_SUID);
    c->sgid = tetra_read_u32(cred, TETRA_OFF_CRED_SGID);
    c->euid = tetra_read_u32(cred, TETRA_OFF_CRED_EUID);
    c->egid = tetra_read_u32(cred, TETRA_OFF_CRED_EGID);
    c->fsuid = tetra_read_u32(cred, TETRA_OFF_CRED_FSUID);
    c->fsgid = tetra_read_u32(cred, TETRA_OFF_CRED_FSGID);
    c->securebits = tetra_read_u32(cred, TETRA_OFF_CRED_SECUREBITS);
    c->cap_permitted = tetra_read_u64(cred, TETRA_OFF_CRED_CAP_PERMITTED);
    c->cap_effective = tetra_read_u64(cred, TETRA_OFF_CRED_CAP_EFFECTIVE);
    c->cap_inheritable = tetra_read_u64(cred, TETRA_OFF_CRED_CAP_INHERITABLE);
    c->user_ns = tetra_read_u32(tetra_read_ptr(cred, TETRA_OFF_CRED_USER_NS), TETRA_OFF_USER_NS_INUM);
}

/* The level and owner of the user namespace a cred belongs to. */
static __always_inline void tetra_read_userns(void *cred, __s32 *level, __u32 *owner, __u32 *group)
{
    void *userns = tetra_read_ptr(cred, TETRA_OFF_CRED_USER_NS);
    *level = tetra_read_u32(userns, TETRA_OFF_USER_NS_LEVEL);
    *owner = tetra_read_u32(userns, TETRA_OFF_USER_NS_OWNER);
    *group = tetra_read_u32(userns, TETRA_OFF_USER_NS_GROUP);
}

/* AT_SECURE of the new image: the kernel's verdict that the exec raised
 * privileges (setuid, setgid, file capabilities), kept in mm->saved_auxv. */
static __always_inline __u32 tetra_secureexec(void *mm)
{
    const char *auxv = (const char *)mm + TETRA_OFF_MM_SAVED_AUXV;
    __u64 pair[2];
#pragma unroll
    for (int i = 0; i < TETRA_AUXV_PAIRS; i++) {
        if (bpf_probe_read_kernel(pair, sizeof(pair), auxv + i * sizeof(pair)) < 0 || pair[0] == 0)
            return 0;  /* AT_NULL ends the vector */
        if (pair[0] == TETRA_AT_SECURE)
            return pair[1] != 0;
    }
    return 0;
}

/* The task's (effective) credentials, their user namespace's level and owner,
 * and the file the new image came from (mm->exe_file): its inode, links, owner
 * and mode, and AT_SECURE, from which user space tells setuid/setgid/file
 * capability privilege changes. */
static __always_inline void tetra_read_exec_cred(struct tetra_exec_cred *c, void *task)
{
    void *cred = tetra_read_ptr(task, TETRA_OFF_TASK_CRED);
    tetra_read_cred(&c->cred, cred);
    tetra_read_userns(cred, &c->userns_level, &c->userns_owner, &c->userns_group);
    void *mm = tetra_read_ptr(task, TETRA_OFF_TASK_MM);
    void *inode = tetra_read_ptr(tetra_read_ptr(mm, TETRA_OFF_MM_EXE_FILE), TETRA_OFF_FILE_F_INODE);
    c->exe_nlink = tetra_read_u32(inode, TETRA_OFF_INODE_NLINK);
    c->exe_ino = tetra_read_u64(inode, TETRA_OFF_INODE_INO);
    c->exe_uid = tetra_read_u32(inode, TETRA_OFF_INODE_UID);
    c->exe_gid = tetra_read_u32(inode, TETRA_OFF_INODE_GID);
    c->exe_mode = tetra_read_u32(inode, TETRA_OFF_INODE_MODE) & 0xFFFF;  /* umode_t: 16 bits */
    c->secureexec = mm ? tetra_secureexec(mm) : 0;
}

/* The upid of a task in the pid namespace it lives in (not the one for its
 * children): its pid's deepest level. */
static __always_inline const char *tetra_task_upid(void *task)
{
    void *pid = tetra_read_ptr(task, TETRA_OFF_TASK_THREAD_PID);
    __u32 level = tetra_read_u32(pid, TETRA_OFF_PID_LEVEL);
    TETRA_BOUND(level, 31);
    return (const char *)pid + TETRA_OFF_PID_NUMBERS + level * TETRA_SIZEOF_UPID;
}

/* The pid of a task as seen in its own pid namespace (1: the namespace's init). */
static __always_inline __u32 tetra_task_ns_pid(void *task)
{
    return tetra_read_u32(tetra_task_upid(task), TETRA_OFF_UPID_NR);
}

/* The pid namespace a task lives in. */
static __always_inline __u32 tetra_task_pid_ns_inum(void *task)
{
    void *ns = tetra_read_ptr(tetra_task_upid(task), TETRA_OFF_UPID_NS);
    return tetra_read_u32(ns, TETRA_OFF_PID_NS_INUM);
}

/* The inode number of the namespace at nsproxy + member (ns.inum at inum in its struct). */
static __always_inline __u32 tetra_ns_inum(void *nsproxy, unsigned long member, unsigned long inum)
{
    return tetra_read_u32(tetra_read_ptr(nsproxy, member), inum);
}

/* Every namespace of the task, as Tetragon's Namespaces lists them. */
static __always_inline void tetra_read_ns(struct tetra_ns *ns, void *task)
{
    void *nsproxy = tetra_read_ptr(task, TETRA_OFF_TASK_NSPROXY);
    void *cred = tetra_read_ptr(task, TETRA_OFF_TASK_CRED);
    ns->uts = tetra_ns_inum(nsproxy, TETRA_OFF_NSPROXY_UTS, TETRA_OFF_UTS_NS_INUM);
    ns->ipc = tetra_ns_inum(nsproxy, TETRA_OFF_NSPROXY_IPC, TETRA_OFF_IPC_NS_INUM);
    ns->mnt = tetra_ns_inum(nsproxy, TETRA_OFF_NSPROXY_MNT, TETRA_OFF_MNT_NS_INUM);
    ns->pid = tetra_task_pid_ns_inum(task);
    ns->pid_for_children = tetra_ns_inum(nsproxy, TETRA_OFF_NSPROXY_PID_FOR_CHILDREN, TETRA_OFF_PID_NS_INUM);
    ns->net = tetra_ns_inum(nsproxy, TETRA_OFF_NSPROXY_NET, TETRA_OFF_NET_NS_INUM);
    ns->time = tetra_ns_inum(nsproxy, TETRA_OFF_NSPROXY_TIME, TETRA_OFF_TIME_NS_INUM);
    ns->time_for_children = tetra_ns_inum(nsproxy, TETRA_OFF_NSPROXY_TIME_FOR_CHILDREN, TETRA_OFF_TIME_NS_INUM);
    ns->cgroup = tetra_ns_inum(nsproxy, TETRA_OFF_NSPROXY_CGROUP, TETRA_OFF_CGROUP_NS_INUM);
    ns->user = tetra_read_u32(tetra_read_ptr(cred, TETRA_OFF_CRED_USER_NS), TETRA_OFF_USER_NS_INUM);
    ns->pid_nr = tetra_task_ns_pid(task);
}

#endif
