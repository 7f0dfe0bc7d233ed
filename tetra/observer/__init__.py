"""Observers: drain the kernel's ring buffers and hand raw records on."""
