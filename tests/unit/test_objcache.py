"""The compiled-object cache and the object format, without a kernel: what is trusted, what is refused.

The end-to-end behaviour (a second start from the cache, tampered files
rebuilt) is in tests/e2e/test_policy_cache.py; here every refusal is checked
one by one, with files made as an attacker would leave them.
"""

import os
import struct
import time
from pathlib import Path

import orjson
import pytest

from tetra.errors import SensorError
from tetra.sensors.bpfobj import LD_IMM64, MapSpec, ObjectSpec, ProgramSpec, Sentinels
from tetra.sensors.build import BuildRequest, batch_text, split_object
from tetra.sensors.objcache import MAX_AGE_S, CacheUnusable, ObjectCache, cache_key

SENTINEL = 0x7E7A1D05


def insn(code: int, imm: int, src: int = 0) -> bytes:
    return struct.pack("<BBhi", code, src << 4, 0, imm)


def spec() -> ObjectSpec:
    insns = insn(LD_IMM64, 7, src=1) + insn(0, 0) + insn(0xB7, SENTINEL) + insn(0x95, 0)
    return ObjectSpec("GPL", 0, (MapSpec("policy_mode", 2, 4, 4, 1, 0, '"int"', '"unsigned int"'),),
                      {"tetra_hook_0": ProgramSpec(insns, ((0, "policy_mode"),), {"policy_id": (2,)})})


def test_an_entry_round_trips(tmp_path: Path) -> None:
    cache = ObjectCache(str(tmp_path / "c"))
    cache.put("k", spec())
    assert cache.get("k") == spec()
    assert (tmp_path / "c").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "c" / "k.json").stat().st_mode & 0o077 == 0
    assert cache.get("other") is None


@pytest.mark.parametrize("damage, reason", [
    (lambda p: p.chmod(0o664), "writable by others (mode 664)"),
    (lambda p: p.write_bytes(p.read_bytes().replace(b'"GPL"', b'"BSD"')), "does not match its digest"),
    (lambda p: p.write_bytes(p.read_bytes()[:-10]), "malformed"),
    (lambda p: (p.rename(p.with_name("real")), p.symlink_to(p.with_name("real"))), "cannot open it"),
])
def test_a_damaged_entry_is_rejected_and_removed(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                 damage: object, reason: str) -> None:
    cache = ObjectCache(str(tmp_path))
    cache.put("k", spec())
    damage(tmp_path / "k.json")  # type: ignore[operator]
    assert cache.get("k") is None
    assert reason in caplog.text and "it is rebuilt" in caplog.text
    assert not (tmp_path / "k.json").exists() and not (tmp_path / "k.json").is_symlink()


def test_an_entry_of_another_key_is_rejected(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache = ObjectCache(str(tmp_path))
    cache.put("k", spec())
    (tmp_path / "k.json").rename(tmp_path / "j.json")
    assert cache.get("j") is None
    assert "written for another key" in caplog.text


def test_a_foreign_entry_is_rejected(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    if os.geteuid() != 0:
        pytest.skip("chown needs root")
    cache = ObjectCache(str(tmp_path))
    cache.put("k", spec())
    os.chown(tmp_path / "k.json", 65534, 65534)
    assert cache.get("k") is None
    assert "owned by uid 65534" in caplog.text


def test_a_directory_others_may_write_is_refused(tmp_path: Path) -> None:
    (tmp_path / "c").mkdir()
    (tmp_path / "c").chmod(0o777)
    with pytest.raises(CacheUnusable, match="writable by others"):
        ObjectCache(str(tmp_path / "c"))
    (tmp_path / "f").write_text("")
    with pytest.raises(CacheUnusable, match="File exists"):
        ObjectCache(str(tmp_path / "f"))


def test_a_readable_directory_is_made_root_only(tmp_path: Path) -> None:
    (tmp_path / "c").mkdir(mode=0o755)
    ObjectCache(str(tmp_path / "c"))
    assert (tmp_path / "c").stat().st_mode & 0o777 == 0o700


def test_the_key_changes_with_what_shapes_the_object() -> None:
    env = {"release": "6.18", "bcc": "0.26.0"}
    base = cache_key("int x;", ["-DA=1"], env)
    assert base == cache_key("int x;", ["-DA=1"], dict(env))
    assert len({base, cache_key("int y;", ["-DA=1"], env), cache_key("int x;", ["-DA=2"], env),
                cache_key("int x;", ["-DA=1"], {**env, "release": "6.19"})}) == 4


def test_an_object_referring_outside_its_instructions_is_refused() -> None:
    doc = spec().to_json()
    doc["programs"]["tetra_hook_0"]["maps"] = [[3, "policy_mode"]]  # the last slot: no room for LD_IMM64
    with pytest.raises(ValueError, match="map reference"):
        ObjectSpec.from_json(doc)
    doc = spec().to_json()
    doc["programs"]["tetra_hook_0"]["maps"] = [[0, "elsewhere"]]
    with pytest.raises(ValueError, match="map reference"):
        ObjectSpec.from_json(doc)
    doc = spec().to_json()
    del doc["maps"][0]["flags"]
    with pytest.raises(ValueError, match="malformed"):
        ObjectSpec.from_json(orjson.loads(orjson.dumps(doc)))


def test_sentinels_are_found_and_a_merged_one_refused() -> None:
    sentinels = Sentinels({"policy_id": SENTINEL})
    assert sentinels.sites(spec().programs["tetra_hook_0"].insns) == {"policy_id": (2,)}
    merged = insn(LD_IMM64, 3) + insn(0, SENTINEL) + insn(0x95, 0)  # (SENTINEL << 32) | 3: two fields at once
    with pytest.raises(SensorError, match="merged"):
        sentinels.sites(merged)


def request(body: str, head: str = "#define TETRA_POLICY_ID 1\n") -> BuildRequest:
    return BuildRequest(head, body, ("-DX=1",), ("tetra_events",), {"policy_id": SENTINEL})


def test_a_batch_compiles_each_policy_under_names_of_its_own() -> None:
    first = request("int tetra_hook_0(void *ctx) { return tetra_net_0(ctx, 0); }\nint tetra_hook_0_v6(void *c);\n")
    second = request("int tetra_hook_0(void *ctx) { tetra_hook_count(0, 1); return 0; }\nint tetra_ret_1(void *c);\n")
    assert first.batch_key == second.batch_key != request("", head="#define TETRA_NEED_RETURN\n").batch_key
    text = batch_text([first, second])
    assert text.count("#define TETRA_POLICY_ID 1") == 1
    assert "tetra_hook_0__b0(void *ctx) { return tetra_net_0__b0(ctx, 0)" in text
    assert "tetra_hook_0_v6__b0" in text and "tetra_ret_1__b1" in text
    assert "tetra_hook_0__b1(void *ctx) { tetra_hook_count(0, 1)" in text  # generic.h's names untouched
    assert batch_text([first]) == first.text


def test_usdt_argument_readers_are_renamed_apart_too() -> None:
    """Two policies with a USDT hook 0 each define tetra_usdt_0_0: one module must not define it twice."""
    body = "static __s64 tetra_usdt_0_0(struct pt_regs *ctx) { return 1; }\nint tetra_hook_0(void *ctx)" \
           " { return tetra_usdt_0_0(ctx); }\n"
    text = batch_text([request(body), request(body)])
    assert "tetra_usdt_0_0__b0(ctx)" in text and "tetra_usdt_0_0__b1(struct pt_regs" in text
    assert "tetra_usdt_0_0(" not in text


def test_a_batch_object_is_split_back_by_policy() -> None:
    program = spec().programs["tetra_hook_0"]
    module = ObjectSpec("GPL", 0, spec().maps, {"tetra_hook_0__b0": program, "tetra_ret_0__b1": program,
                                                 "tetra_hook_0__b1": program})
    first, second = split_object(module, 2)
    assert set(first.programs) == {"tetra_hook_0"} and set(second.programs) == {"tetra_hook_0", "tetra_ret_0"}
    assert first.maps == second.maps == module.maps
    stray = ObjectSpec("GPL", 0, spec().maps, {"tetra_hook_0__b0": program, "helper": program})
    with pytest.raises(SensorError, match="helper of a batch belongs to no policy"):
        split_object(stray, 2)


def test_entries_unused_for_long_are_pruned_and_used_ones_renewed(tmp_path: Path) -> None:
    cache = ObjectCache(str(tmp_path))
    cache.put("old", spec())
    cache.put("used", spec())
    (tmp_path / ".tmp-crashed").write_text("")
    month_ago = time.time() - MAX_AGE_S - 60
    for name in ("old.json", "used.json", ".tmp-crashed"):
        os.utime(tmp_path / name, (month_ago, month_ago))
    assert cache.get("used") == spec()  # renewed by the use
    ObjectCache(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["used.json"]
