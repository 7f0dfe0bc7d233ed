"""What the running kernel offers: BTF offsets, capabilities."""
