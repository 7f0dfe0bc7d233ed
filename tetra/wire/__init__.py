"""Event layouts on the wire from the kernel: the Python twin of probes/lib/wire.h."""
