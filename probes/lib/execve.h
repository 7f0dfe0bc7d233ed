/* The binary of every live process, for matchBinaries / matchParentBinaries.
 *
 * The process sensor (TETRA_EVENTS_OWNER) writes it at exec and clone, deletes
 * at exit, and user space seeds it from /proc for processes that predate the
 * agent; policy modules read it through bcc's shared tables. Binaries are the
 * path as exec'd (symlinks not resolved), as users write them in policies.
 */
#ifndef TETRA_EXECVE_H
#define TETRA_EXECVE_H

#define TETRA_BINARY_MAX 256
#ifndef TETRA_EXECVE_ENTRIES
#define TETRA_EXECVE_ENTRIES 32768
#endif

struct tetra_exec_info {
    __u32 binary_len;
    __u32 parent_binary_len;
    char binary[TETRA_BINARY_MAX];
    char parent_binary[TETRA_BINARY_MAX];
};

#ifdef TETRA_EVENTS_OWNER
BPF_TABLE_SHARED("lru_hash", __u32, struct tetra_exec_info, tetra_execve, TETRA_EXECVE_ENTRIES);
#else
BPF_TABLE("extern", __u32, struct tetra_exec_info, tetra_execve, TETRA_EXECVE_ENTRIES);
#endif

#endif
