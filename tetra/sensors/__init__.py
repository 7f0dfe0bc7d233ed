"""Sensors: BPF programs and their maps, compiled, loaded and attached as one unit.

A sensor knows its C source under probes/, the defines it is compiled with
(struct offsets from BTF, sizes), how to attach, and how to read its in-kernel
counters. The observer reads the ring buffer a sensor owns.
"""
