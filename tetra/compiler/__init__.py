"""The policy compiler: a validated TracingPolicy -> BPF C + map contents.

    TracingPolicy (tetra/policy/model.py)
        │  plan.py       each hook: mechanism on this kernel (kprobe, fentry,
        │                tracepoint, raw tracepoint, uprobe, USDT, LSM), attach
        │                target, how each argument is read
        │  selectors.py  selectors -> C conditions; their values -> map entries
        │  codegen.py    one C function per hook around probes/generic/generic.h
        ▼
    CompiledPolicy: C text (printed by `tetra tracingpolicy compile --emit-c`),
    hooks to attach, map entries to load, and what user space needs to decode
    the events (tetra/decode/generic.py).

No value of a policy reaches the C text as text: strings, binaries and CIDRs
go into maps; integers are validated and printed as decimal literals; names
(functions, tracepoints, symbols) are checked against strict patterns and the
running kernel before use.
"""
