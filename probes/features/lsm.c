/* BPF LSM support: bcc loads and attaches lsm__ programs while it builds the
 * module, so this sits alone. The hook must match _LSM_HOOK in
 * tetra/kernel/features.py. */
LSM_PROBE(file_open)
{
    return 0;
}
