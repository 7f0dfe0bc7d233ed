"""Decoding: raw ring buffer records -> typed records, dispatched on the opcode.

    bytes ──first byte──> DECODERS[opcode] ──> ExecRecord | CloneRecord | ExitRecord

The same record types are built from /proc for processes that predate the agent
(tetra/process/procfs.py), so the cache has one path for both.
"""
