/* Ring buffer support: bcc creates the map while it builds the module, so this
 * sits alone and a kernel without ring buffers fails only this check. */
BPF_RINGBUF_OUTPUT(probe_events, 1);

int helper_ringbuf_output(void *ctx) {
    u32 zero = 0;
    probe_events.ringbuf_output(&zero, sizeof(zero), 0);
    return 0;
}
