# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Policy events straight from ring records to JSON lines, compiled.

The pure-Python path costs ~20 function calls per policy event (decode, cache,
event object, sinks, encoders); at an open firehose that is the agent's whole
budget. This module walks a batch of ring records in C (from the ring's mmap, or
from a list of recorded records) and, for a policy event whose hook and process
it can handle, writes the JSON line itself from parts made once:

    record header + args ──> opening(kind) + process/parent JSON (memo per pid, tid)
                             + hook fields + args (per-hook specs) + action + ends
                             + node + RFC 3339 time (formatted here)

Anything else -- exec, clone, exit, an unknown process, a hook with argument
types it has no spec for, stack traces, malformed records -- goes to the Python
path (``on_record``) in order: the lines made so far are sent first. Which hooks
it handles, and their byte pieces, are decided in Python (tetra/agent/line_path.py);
this file only executes them, so both paths write the same bytes.
"""

from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int32_t, int64_t
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memcpy, memset
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE

cdef extern from *:
    """
    #include <time.h>
    #include <string.h>
    #include <stdio.h>
    #include <stdint.h>
    static inline uint64_t tetra_load_u64(const unsigned char *p) {
        return __atomic_load_n((const uint64_t *)p, __ATOMIC_ACQUIRE);
    }
    static inline uint32_t tetra_load_u32(const unsigned char *p) {
        return __atomic_load_n((const uint32_t *)p, __ATOMIC_ACQUIRE);
    }
    static inline void tetra_store_u64(unsigned char *p, uint64_t v) {
        __atomic_store_n((uint64_t *)p, v, __ATOMIC_RELEASE);
    }
    static inline uint64_t tetra_u64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }
    static inline uint32_t tetra_u32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
    static inline uint16_t tetra_u16(const unsigned char *p) { uint16_t v; memcpy(&v, p, 2); return v; }
    static inline int64_t tetra_boottime_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_BOOTTIME, &ts);
        return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    }
    static inline int tetra_utc_seconds(int64_t secs, char *out) {
        time_t t = (time_t)secs;
        struct tm tm;
        if (!gmtime_r(&t, &tm)) return 0;
        return (int)strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    }
    /* decimal digits without printf's format parsing (it was a tenth of the line's cost) */
    static inline int tetra_fmt_u64(char *out, uint64_t v) {
        char tmp[24];
        int n = 0, i;
        do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v);
        for (i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
        return n;
    }
    static inline int tetra_fmt_i64(char *out, int64_t v) {
        if (v >= 0) return tetra_fmt_u64(out, (uint64_t)v);
        out[0] = '-';
        return 1 + tetra_fmt_u64(out + 1, (uint64_t)0 - (uint64_t)v);
    }
    /* "." and v with leading zeros to ``digits`` digits (v < 10**digits) */
    static inline int tetra_fmt_frac(char *out, uint64_t v, int digits) {
        int i;
        out[0] = '.';
        for (i = digits; i > 0; i--) { out[i] = (char)('0' + v % 10); v /= 10; }
        return digits + 1;
    }
    """
    uint64_t tetra_load_u64(const uint8_t *p) nogil
    uint32_t tetra_load_u32(const uint8_t *p) nogil
    void tetra_store_u64(uint8_t *p, uint64_t v) nogil
    uint64_t tetra_u64(const uint8_t *p) nogil
    uint32_t tetra_u32(const uint8_t *p) nogil
    uint16_t tetra_u16(const uint8_t *p) nogil
    int64_t tetra_boottime_ns() nogil
    int tetra_utc_seconds(int64_t secs, char *out) nogil
    int tetra_fmt_i64(char *out, int64_t v) nogil
    int tetra_fmt_u64(char *out, uint64_t v) nogil
    int tetra_fmt_frac(char *out, uint64_t v, int digits) nogil

# struct tetra_generic (tetra/wire/layouts.py GENERIC); tetra/_speed/__init__.py checks these
# against the layout before the module is used.
GENERIC_OFFSETS = {"opcode": 0, "ktime": 8, "pid": 16, "tid": 20, "policy_id": 24, "hook_id": 28,
                   "action": 32, "kernel_stack_id": 36, "user_stack_id": 40, "args_len": 44,
                   "gen_flags": 47, "ret": 48}
GENERIC_SIZE = 56

cdef enum:
    _SIZE = 56
    _HEADER = 8
    _PUBLISH_EVERY = 256
    _GEN_RETURN = 0x01
    _GEN_MONITOR = 0x02
    _GEN_PROTECTED = 0x04
    _ARG_LEN_MASK = 0x00FFFFFF
    _MAX_ACTIONS = 64
    _MAX_BUCKETS = 32
    CODE_INT = 0
    CODE_INT_TEXT = 1
    CODE_TEXT = 2

cdef uint32_t _BUSY = 0x80000000
cdef uint32_t _DISCARDED = 0x40000000

# ArgLine.code
INT = CODE_INT  # an integer as a JSON number
INT_TEXT = CODE_INT_TEXT  # a 64-bit integer as a JSON string (protojson): opening and closing hold the quotes
TEXT = CODE_TEXT  # a length-prefixed string: text, JSON-escaped


cdef class ArgLine:
    """One argument's encoder: ``opening`` value ``closing``, the value read as ``code`` says."""

    cdef readonly int code
    cdef readonly int bits
    cdef readonly bint unsigned
    cdef readonly bytes opening, closing

    def __init__(self, int code, int bits, bint unsigned, bytes opening, bytes closing):
        self.code, self.bits, self.unsigned, self.opening, self.closing = code, bits, unsigned, opening, closing


cdef class HookLine:
    """One hook's line pieces, made at load from its plan (tetra/agent/line_path.py), and its counts
    since they were last published: events, and per mode (GEN_MONITOR set or not) per action."""

    cdef readonly str kind, policy
    cdef readonly bytes opening, fields, ends
    cdef readonly tuple args
    cdef readonly object ret  # ArgLine, or None: the hook returns nothing the line shows
    cdef readonly bint ret_unsupported  # a return value only the Python path encodes
    cdef long events
    cdef long actions[2][_MAX_ACTIONS + 1]

    def __init__(self, str kind, str policy, bytes opening, bytes fields, bytes ends, tuple args, object ret,
                 bint ret_unsupported):
        self.kind, self.policy, self.opening, self.fields, self.ends = kind, policy, opening, fields, ends
        self.args, self.ret, self.ret_unsupported = args, ret, ret_unsupported
        self.events = 0
        memset(self.actions, 0, sizeof(self.actions))


cdef class _Buf:
    cdef char *data
    cdef Py_ssize_t length, capacity

    def __cinit__(self):
        self.capacity = 4096
        self.data = <char *>malloc(self.capacity)
        if self.data == NULL:
            raise MemoryError()
        self.length = 0

    def __dealloc__(self):
        free(self.data)

    cdef int reserve(self, Py_ssize_t more) except -1:
        cdef Py_ssize_t want = self.length + more
        cdef char *grown
        if want <= self.capacity:
            return 0
        while self.capacity < want:
            self.capacity *= 2
        grown = <char *>realloc(self.data, self.capacity)
        if grown == NULL:
            raise MemoryError()
        self.data = grown
        return 0

    cdef inline int put(self, const char *text, Py_ssize_t n) except -1:
        self.reserve(n)
        memcpy(self.data + self.length, text, n)
        self.length += n
        return 0

    cdef inline int put_bytes(self, bytes text) except -1:
        return self.put(PyBytes_AS_STRING(text), PyBytes_GET_SIZE(text))


cdef class LineEncoder:
    """Records to lines for one pipeline; counts what it handles into the pipeline's stats."""

    cdef object by_pid, parent_of, hook_line, text_json, stats, action_key
    cdef dict hooks  # policy_id << 32 | hook_id -> HookLine, or None (the Python path's)
    cdef dict memo  # pid << 32 | tid -> the process's JSON and its parent's
    # the last hook and process looked up: a storm's records mostly repeat them
    cdef uint64_t last_hook_key, last_process_key
    cdef object last_hook, last_process
    cdef bytes closing
    cdef int64_t epoch_ns
    cdef int64_t second
    cdef char prefix[32]
    cdef int prefix_len
    cdef list action_json
    cdef list action_names
    cdef tuple mode_names
    cdef int n_actions
    cdef double bounds[_MAX_BUCKETS]
    cdef int n_bounds
    cdef long latency[_MAX_BUCKETS + 1]
    cdef double latency_total
    cdef long records
    cdef int generic_op
    cdef _Buf buf

    def __init__(self, *, by_pid, parent_of, hook_line, text_json, stats, action_key, tuple mode_names,
                 bytes closing, int64_t epoch_ns, list action_names, list action_json, tuple latency_bounds,
                 int generic_op):
        """``hook_line(policy_id, hook_id)``: the hook's HookLine or None; ``text_json(bytes)``: a
        string argument's JSON as the Python path writes it (for what is not plain ASCII);
        ``action_names``/``action_json``: per kernel action number, the last for any other;
        ``action_key(policy, mode, action)``: the key of ``stats.actions``, ``mode`` one of
        ``mode_names`` (without GEN_MONITOR, with it)."""
        self.by_pid, self.parent_of, self.hook_line, self.text_json, self.stats = (
            by_pid, parent_of, hook_line, text_json, stats)
        if len(mode_names) != 2:
            raise ValueError("two mode names: without GEN_MONITOR, with it")
        self.action_key, self.mode_names = action_key, mode_names
        self.hooks, self.memo = {}, {}
        self.last_hook = self.last_process = None
        self.closing, self.epoch_ns, self.second, self.prefix_len = closing, epoch_ns, -1, 0
        if len(action_names) > _MAX_ACTIONS + 1 or len(action_names) != len(action_json):
            raise ValueError("action tables do not fit")
        if len(latency_bounds) > _MAX_BUCKETS:
            raise ValueError("too many latency buckets")
        self.action_names, self.action_json, self.n_actions = action_names, action_json, len(action_names) - 1
        self.n_bounds = len(latency_bounds)
        for i, bound in enumerate(latency_bounds):
            self.bounds[i] = bound
        self.generic_op = generic_op
        self.buf = _Buf()
        self._reset_counts()

    cdef void _reset_counts(self):
        cdef int i
        for i in range(_MAX_BUCKETS + 1):
            self.latency[i] = 0
        self.latency_total = 0.0
        self.records = 0

    def forget_hooks(self):
        """The loaded policies changed: hooks are looked up again (their counts published first)."""
        self.publish()
        self.hooks.clear()
        self.last_hook = None

    def publish(self):
        """Add what was counted here to the pipeline's stats (as the Python path counts)."""
        cdef int i, mode
        cdef HookLine hook
        stats = self.stats
        stats.records += self.records
        stats.compiled_lines += self.records
        for hook in self.hooks.values():
            if hook is not None and hook.events:
                stats.events[hook.kind] += hook.events
                hook.events = 0
                for mode in range(2):
                    for i in range(self.n_actions + 1):
                        if hook.actions[mode][i]:
                            stats.actions[self.action_key(hook.policy, self.mode_names[mode],
                                                          self.action_names[i])] += hook.actions[mode][i]
                            hook.actions[mode][i] = 0
        counts = stats.latency.counts
        for i in range(self.n_bounds + 1):
            if self.latency[i]:
                counts[i] += self.latency[i]
        stats.latency.total += self.latency_total
        self._reset_counts()

    cdef inline void _forget_processes(self):
        self.memo.clear()
        self.last_process = None

    cdef inline HookLine _hook(self, uint32_t policy_id, uint32_t hook_id):
        cdef uint64_t key = (<uint64_t>policy_id << 32) | hook_id
        if self.last_hook is not None and key == self.last_hook_key:
            return <HookLine>self.last_hook
        hook = self.hooks.get(key, False)
        if hook is False:
            hook = self.hooks[key] = self.hook_line(policy_id, hook_id)
        if hook is None:
            return None
        self.last_hook, self.last_hook_key = hook, key
        return <HookLine>hook

    cdef inline object _process(self, uint32_t pid, uint32_t tid):
        """The process's JSON and its parent's (``,"parent":...``), or None if the cache lacks it."""
        cdef uint64_t key = (<uint64_t>pid << 32) | tid
        if self.last_process is not None and key == self.last_process_key:
            return self.last_process
        part = self.memo.get(key)
        if part is not None:
            self.last_process, self.last_process_key = part, key
            return part
        proc = self.by_pid(pid)
        if proc is None:
            return None
        parent = self.parent_of(proc)
        part = proc.json_bytes(tid)
        if parent is not None:
            part = part + b',"parent":' + parent.json_bytes()
        self.memo[key] = part
        self.last_process, self.last_process_key = part, key
        return part

    cdef int _time(self, uint64_t ktime) except -1:
        """Protojson's RFC 3339 digits of boot time ``ktime`` (tetra/node.py BootClock.rfc3339)."""
        cdef int64_t total = self.epoch_ns + <int64_t>ktime
        cdef int64_t secs = total // 1000000000
        cdef uint64_t nanos = <uint64_t>(total - secs * 1000000000)
        cdef char frac[32]
        cdef int n
        if secs != self.second:
            self.prefix_len = tetra_utc_seconds(secs, self.prefix)
            self.second = secs
        self.buf.put(self.prefix, self.prefix_len)
        if nanos == 0:
            n = 0
        elif nanos % 1000:
            n = tetra_fmt_frac(frac, nanos, 9)
        elif nanos % 1000000:
            n = tetra_fmt_frac(frac, nanos // 1000, 6)
        else:
            n = tetra_fmt_frac(frac, nanos // 1000000, 3)
        self.buf.put(frac, n)
        self.buf.put(b"Z", 1)
        return 0

    cdef int _int(self, ArgLine arg, uint64_t raw) except -1:
        cdef char digits[32]
        cdef int n
        cdef uint64_t value
        if arg.bits < 64:
            value = raw & ((<uint64_t>1 << arg.bits) - 1)
            if not arg.unsigned and value >> (arg.bits - 1):
                n = tetra_fmt_i64(digits, <int64_t>value - (<int64_t>1 << arg.bits))
            else:
                n = tetra_fmt_u64(digits, value)
        elif arg.unsigned:
            n = tetra_fmt_u64(digits, raw)
        else:
            n = tetra_fmt_i64(digits, <int64_t>raw)
        self.buf.put_bytes(arg.opening)
        self.buf.put(digits, n)
        self.buf.put_bytes(arg.closing)
        return 0

    cdef int _text(self, ArgLine arg, const uint8_t *data, Py_ssize_t n) except -1:
        """Plain ASCII is escaped here; anything else as the Python path does it."""
        cdef Py_ssize_t i
        cdef uint8_t c
        cdef _Buf buf = self.buf
        buf.put_bytes(arg.opening)
        for i in range(n):
            c = data[i]
            if c < 0x20 or c >= 0x7f:
                buf.put_bytes(self.text_json(PyBytes_FromStringAndSize(<const char *>data, n)))
                buf.put_bytes(arg.closing)
                return 0
        buf.reserve(2 * n + 2)
        buf.data[buf.length] = b'"'
        buf.length += 1
        for i in range(n):
            c = data[i]
            if c == b'"' or c == b'\\':
                buf.data[buf.length] = b'\\'
                buf.length += 1
            buf.data[buf.length] = <char>c
            buf.length += 1
        buf.data[buf.length] = b'"'
        buf.length += 1
        buf.put_bytes(arg.closing)
        return 0

    cdef object line(self, const uint8_t *rec, Py_ssize_t size, int64_t now):
        """The record's JSON line, or None when the Python path must take it."""
        cdef uint32_t pid, tid, policy_id, hook_id, action, head, length
        cdef int32_t kstack, ustack
        cdef uint16_t args_len
        cdef uint8_t flags
        cdef uint64_t ktime
        cdef Py_ssize_t at, end, i
        cdef HookLine hook
        cdef ArgLine arg
        cdef double seconds
        cdef int bucket
        if size < _SIZE or rec[0] != self.generic_op:
            return None
        kstack, ustack = <int32_t>tetra_u32(rec + 36), <int32_t>tetra_u32(rec + 40)
        if kstack >= 0 or ustack >= 0:  # symbolized in Python
            return None
        args_len = tetra_u16(rec + 44)
        if _SIZE + <Py_ssize_t>args_len > size:
            return None
        policy_id, hook_id = tetra_u32(rec + 24), tetra_u32(rec + 28)
        hook = self._hook(policy_id, hook_id)
        if hook is None:
            return None
        flags = rec[47]
        if flags & _GEN_RETURN and hook.ret_unsupported:
            return None
        pid, tid = tetra_u32(rec + 16), tetra_u32(rec + 20)
        process = self._process(pid, tid)
        if process is None:
            return None
        ktime = tetra_u64(rec + 8)
        action = tetra_u32(rec + 32)
        if action > <uint32_t>self.n_actions:
            action = self.n_actions
        cdef _Buf buf = self.buf
        buf.length = 0
        buf.put_bytes(hook.opening)
        buf.put_bytes(<bytes>process)
        buf.put_bytes(hook.fields)
        at, end = _SIZE, _SIZE + args_len
        for i in range(len(hook.args)):
            arg = <ArgLine>hook.args[i]
            buf.put(b',"args":[' if i == 0 else b",", 9 if i == 0 else 1)
            if arg.code == CODE_TEXT:
                if at + 4 > end:
                    return None
                head = tetra_u32(rec + at)
                length = head & _ARG_LEN_MASK
                if at + 4 + length > end:
                    return None
                self._text(arg, rec + at + 4, length)
                at += 4 + length
            else:
                if at + 8 > end:
                    return None
                self._int(arg, tetra_u64(rec + at))
                at += 8
        if hook.args:
            buf.put(b"]", 1)
        if flags & _GEN_RETURN and hook.ret is not None:
            buf.put(b',"return":', 10)
            self._int(<ArgLine>hook.ret, tetra_u64(rec + 48))
        buf.put_bytes(<bytes>self.action_json[action])
        if flags & _GEN_MONITOR:
            buf.put(b',"policy_mode":"monitor"', 24)
        if flags & _GEN_PROTECTED:
            buf.put(b',"protected_process":true', 25)
        buf.put_bytes(hook.ends)
        buf.put_bytes(self.closing)
        self._time(ktime)
        buf.put(b'"}\n', 3)
        # counted as Pipeline._on_generic and _emit count
        hook.events += 1
        hook.actions[1 if flags & _GEN_MONITOR else 0][action] += 1
        self.records += 1
        seconds = (now - <int64_t>ktime) / 1e9
        bucket = 0
        while bucket < self.n_bounds and seconds > self.bounds[bucket]:
            bucket += 1
        self.latency[bucket] += 1
        self.latency_total += seconds
        return PyBytes_FromStringAndSize(buf.data, buf.length)

    def feed(self, list records, on_record, send):
        """Recorded records (bytes) in order: lines to ``send(list)``, the rest to ``on_record``."""
        cdef list lines = []
        cdef bytes raw
        cdef int64_t now = tetra_boottime_ns()
        self._forget_processes()
        try:
            for raw in records:
                line = self.line(<const uint8_t *>PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw), now)
                if line is not None:
                    lines.append(line)
                    continue
                if lines:
                    send(lines)
                    lines = []
                on_record(raw)
                self._forget_processes()  # the Python path may have changed the cache
                now = tetra_boottime_ns()
            if lines:
                send(lines)
        finally:
            self.publish()
        return len(records)

    def drain_ring(self, const uint8_t[::1] ring, uint8_t[::1] consumer, Py_ssize_t data, uint64_t mask,
                   on_record, send, tee=None):
        """tetra/observer/ringbuf.py's drain, here: returns the records delivered. ``tee``: told of
        each record made a line here, after it (the ring recorder; ``on_record`` records the rest)."""
        cdef const uint8_t *base = &ring[0]
        cdef uint8_t *cons = &consumer[0]
        cdef uint64_t position = tetra_load_u64(cons)
        cdef uint64_t end = tetra_load_u64(base)
        cdef uint32_t length
        cdef Py_ssize_t at, size
        cdef long done = 0
        cdef list lines = []
        cdef int64_t now = tetra_boottime_ns()
        self._forget_processes()
        try:
            while position < end:
                at = data + <Py_ssize_t>(position & mask)
                length = tetra_load_u32(base + at)
                if length & _BUSY:  # a writer has reserved it and not submitted yet
                    break
                size = length & ~(_BUSY | _DISCARDED)
                if not length & _DISCARDED:
                    line = self.line(base + at + _HEADER, size, now)
                    if line is not None:
                        lines.append(line)
                        if tee is not None:
                            tee(PyBytes_FromStringAndSize(<const char *>(base + at + _HEADER), size))
                    else:
                        if lines:
                            send(lines)
                            lines = []
                        on_record(PyBytes_FromStringAndSize(<const char *>(base + at + _HEADER), size))
                        self._forget_processes()
                        now = tetra_boottime_ns()
                    done += 1
                position += (size + _HEADER + 7) & ~(<uint64_t>7)
                if done % _PUBLISH_EVERY == 0:
                    if lines:  # the kernel may reuse the space: the lines are copies already
                        send(lines)
                        lines = []
                    tetra_store_u64(cons, position)
                    now = tetra_boottime_ns()
                if position >= end:
                    end = tetra_load_u64(base)  # writers went on meanwhile
            if lines:
                send(lines)
        finally:
            tetra_store_u64(cons, position)
            self.publish()
        return done
