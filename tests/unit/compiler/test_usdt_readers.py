"""The C that reads a USDT probe's arguments, for the forms a note can give that gcc does not make in
tests/usdt_program.py: a constant, memory with an index register, and a probe at several locations (told
apart by the instruction's offset in its page, the load address being unknown)."""

from tetra.compiler.usdt import UsdtArg, UsdtLocation, UsdtProbe


def test_one_location_reads_without_a_switch() -> None:
    probe = UsdtProbe("/bin/x", "p", "n", 0, (UsdtLocation(0x1062, (UsdtArg("__s64", constant=-3),)),))
    assert probe.readers_c(2) == [
        "static __always_inline __s64 tetra_usdt_2_0(struct pt_regs *ctx)", "{",
        "    return (__s64)(__s64)(-3LL);",
        "}"]
    assert probe.reader(2, 0) == "tetra_usdt_2_0(ctx)"


def test_locations_are_told_apart_by_their_page_offset() -> None:
    first = UsdtLocation(0x41062, (UsdtArg("__u16", register="ax"),))
    second = UsdtLocation(0x52f30, (UsdtArg("__s32", register="bp", offset=-20, index="cx", scale=8),))
    lines = UsdtProbe("/bin/x", "p", "n", 0, (first, second)).readers_c(0)
    assert lines[2:] == [
        "    switch (PT_REGS_IP(ctx) % 0x1000ULL) {",
        "    case 0x62ULL: return (__s64)(__u16)(ctx->ax);",
        "    case 0xf30ULL: { __s32 v = 0; bpf_probe_read_user(&v, sizeof(v), (void *)(ctx->bp + (-20LL) + "
        "ctx->cx * 8)); return (__s64)v; }",
        "    }",
        "    return 0;",
        "}"]
