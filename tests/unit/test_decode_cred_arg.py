"""A cred argument as Tetragon reports it: process_credentials_arg, the ProcessCredentials message
(tests/e2e/test_kernel_hooks.py reads one from commit_creds in the VM lane)."""

from tetra.decode.generic import _cred_arg
from tetra.wire import layouts

CRED_ARG = layouts.CRED_ARG.codec


def test_a_user_namespace_made_by_a_user_is_not_the_host() -> None:
    raw = CRED_ARG.pack(1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 0b10001, 4026532500,
                        1 << 21 | 1 << 1, 1 << 21, 0, 1, 1000, 1001, 0)
    assert _cred_arg(raw) == {"process_credentials_arg": {
        "uid": 1000, "gid": 1001, "suid": 1002, "sgid": 1003, "euid": 1004, "egid": 1005,
        "fsuid": 1006, "fsgid": 1007,
        "securebits": ["SecBitNoRoot", "SecBitKeepCaps"],
        "caps": {"permitted": ["DAC_OVERRIDE", "CAP_SYS_ADMIN"], "effective": ["CAP_SYS_ADMIN"]},
        "user_ns": {"level": 1, "uid": 1000, "gid": 1001, "ns": {"inum": 4026532500}},
    }}


def test_the_initial_user_namespace_is_the_host_and_zeros_stay() -> None:
    """Tetragon's ids and level are wrapper messages: a 0 is printed; empty lists and sets are not."""
    raw = CRED_ARG.pack(0, 0, 0, 0, 0, 0, 0, 0, 0, 4026531837, 0, 0, 0, 0, 0, 0, 0)
    assert _cred_arg(raw) == {"process_credentials_arg": {
        "uid": 0, "gid": 0, "suid": 0, "sgid": 0, "euid": 0, "egid": 0, "fsuid": 0, "fsgid": 0, "caps": {},
        "user_ns": {"level": 0, "uid": 0, "gid": 0, "ns": {"inum": 4026531837, "is_host": True}},
    }}
