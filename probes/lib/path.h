/* Resolving a struct path (dentry + vfsmount) to its name, inside the kernel.
 *
 * bpf_d_path() is only allowed in fentry/LSM programs, which this project cannot
 * count on (see ../shared/KERNEL.md), so the walk is done by hand: from the dentry
 * up through d_parent, hopping to the parent mount at each mount root, until the
 * task's root (chroot or container root) or the global root.
 *
 * Two passes keep the verifier's work linear: the first only follows pointers
 * (every state at the loop head looks alike, so the verifier prunes the mount
 * hop and the plain step into one), the second copies the collected names.
 * The result is the path as text, "/a/b/c" ("/" for the root), without a NUL.
 */
#ifndef TETRA_PATH_H
#define TETRA_PATH_H

#ifndef TETRA_PATH_DEPTH
#define TETRA_PATH_DEPTH 40
#endif
#define TETRA_NAME_MAX 256

#define TETRA_WALK_HEAD_LOST 0x1  /* deeper than TETRA_PATH_DEPTH: the root was not reached */
#define TETRA_WALK_TAIL_LOST 0x2  /* longer than the buffer: the last names are missing */

struct tetra_path_walk {
    __u32 len;        /* bytes written */
    __u32 truncated;  /* TETRA_WALK_* bits, 0 when the path is whole */
};

struct tetra_path_names {
    const char *name[TETRA_PATH_DEPTH];
    __u64 count;  /* slots used by the first pass */
    __u64 len;    /* bytes written by the second pass */
};
BPF_PERCPU_ARRAY(path_names, struct tetra_path_names, 1);

/* Collect the d_name pointers from (dentry, vfsmnt) up to (root_dentry,
 * root_mnt); returns how many slots were used, or -1 when the walk did not reach
 * a root. A mount hop uses a slot too (with no name) so that the slot index is
 * the only thing that changes from one iteration to the next: the verifier then
 * sees one state per iteration instead of one per mix of hops and steps.
 *
 * canonical (a constant at each call site): a bind mount of part of the root
 * filesystem (same superblock as the task's root mount) is seen through: the
 * walk climbs on from the bind mount's root dentry inside the root mount, so
 * a file bind-mounted elsewhere keeps the name it has in the root filesystem.
 * Binaries are resolved this way, so that a bind mount of /usr/bin/cat (which
 * any user can make in a user and mount namespace of their own) is still
 * /usr/bin/cat to matchBinaries. Bind mounts of other filesystems keep the
 * path through the mount, as d_path() gives it. */
static __always_inline int tetra_collect_names(struct tetra_path_names *names, void *dentry,
                                               void *vfsmnt, void *root_dentry, void *root_mnt,
                                               int canonical)
{
    void *mnt = (char *)vfsmnt - TETRA_OFF_MOUNT_MNT;
    void *root_sb = canonical ? tetra_read_ptr(root_mnt, TETRA_OFF_VFSMOUNT_MNT_SB) : 0;

    for (int i = 0; i < TETRA_PATH_DEPTH; i++) {
        names->name[i] = 0;
        if (dentry == root_dentry && vfsmnt == root_mnt)
            return i;
        void *mnt_root = tetra_read_ptr(vfsmnt, TETRA_OFF_VFSMOUNT_MNT_ROOT);
        void *parent = tetra_read_ptr(dentry, TETRA_OFF_DENTRY_D_PARENT);
        if (canonical && dentry == mnt_root && dentry != parent && vfsmnt != root_mnt
            && tetra_read_ptr(vfsmnt, TETRA_OFF_VFSMOUNT_MNT_SB) == root_sb) {
            vfsmnt = root_mnt;  /* a bind mount of the root filesystem: go on inside it */
            mnt = (char *)vfsmnt - TETRA_OFF_MOUNT_MNT;
            names->name[i] = tetra_read_ptr(dentry, TETRA_OFF_DENTRY_D_NAME_NAME);
            dentry = parent;
        } else if (dentry == mnt_root || dentry == parent) {
            void *parent_mnt = tetra_read_ptr(mnt, TETRA_OFF_MOUNT_MNT_PARENT);
            if (parent_mnt == mnt || dentry != mnt_root)
                return i;  /* the global root, or a detached tree */
            dentry = tetra_read_ptr(mnt, TETRA_OFF_MOUNT_MNT_MOUNTPOINT);
            mnt = parent_mnt;
            vfsmnt = (char *)mnt + TETRA_OFF_MOUNT_MNT;
        } else {
            names->name[i] = tetra_read_ptr(dentry, TETRA_OFF_DENTRY_D_NAME_NAME);
            dentry = parent;
        }
    }
    return -1;
}

/* Write the path of (dentry, vfsmnt) relative to (root_dentry, root_mnt) into
 * buf[0 .. TETRA_PATH_MAX); canonical: see tetra_collect_names. */
static __always_inline struct tetra_path_walk
tetra_walk_path_as(char *buf, void *dentry, void *vfsmnt, void *root_dentry, void *root_mnt, int canonical)
{
    struct tetra_path_walk walk = { .len = 0, .truncated = TETRA_WALK_HEAD_LOST };
    __u32 zero = 0;
    struct tetra_path_names *names = path_names.lookup(&zero);
    if (!names)
        return walk;

    int count = tetra_collect_names(names, dentry, vfsmnt, root_dentry, root_mnt, canonical);
    if (count >= 0) {
        walk.truncated = 0;
    } else {
        walk.truncated = TETRA_WALK_HEAD_LOST;
        count = TETRA_PATH_DEPTH;
    }

    /* count and len live in map memory, not registers: the verifier then knows
     * nothing of them beyond the bounds checked at each use, so the states of
     * one iteration all look alike and are pruned (in registers, every mix of
     * component lengths would be a state of its own). Components were
     * collected leaf first; they are written root first, each after a '/'. */
    names->count = count;
    names->len = 0;
    for (int i = 0; i < TETRA_PATH_DEPTH; i++) {
        __u64 count_now = names->count;
        if (i >= count_now)
            break;
        __u64 j = count_now - 1 - i;
        TETRA_BOUND(j, TETRA_PATH_DEPTH - 1);
        const char *name = names->name[j];
        if (!name)
            continue;
        __u64 len = names->len;
        if (len > TETRA_PATH_MAX - TETRA_NAME_MAX - 1) {
            walk.truncated |= TETRA_WALK_TAIL_LOST;
            break;
        }
        TETRA_BOUND(len, TETRA_PATH_MAX - TETRA_NAME_MAX - 1);
        buf[len] = '/';
        long n = bpf_probe_read_kernel_str(buf + len + 1, TETRA_NAME_MAX, name);
        if (n > 1)
            names->len = len + n;  /* the NUL is overwritten by the next '/' */
    }
    __u64 total = names->len;
    if (total == 0) {
        buf[0] = '/';
        total = 1;
    }
    TETRA_BOUND(total, TETRA_PATH_MAX);
    walk.len = total;
    return walk;
}

/* The path as d_path() would give it (bind mounts named by where they are mounted). */
static __always_inline struct tetra_path_walk
tetra_walk_path(char *buf, void *dentry, void *vfsmnt, void *root_dentry, void *root_mnt)
{
    return tetra_walk_path_as(buf, dentry, vfsmnt, root_dentry, root_mnt, 0);
}

#endif
