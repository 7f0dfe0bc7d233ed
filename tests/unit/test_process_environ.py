"""--enable-process-environment-variables: an exec's environment as process.environment_variables,
filtered by --filter-environment-variables, on the process and what forks from it."""

from tetra.decode.process import CloneRecord, ExecRecord
from tetra.node import BootClock
from tetra.process.cache import ProcessCache
from tetra.process.environ import EnvironmentVariables


def record(pid: int, env: list[str] | None, ppid: int = 1) -> ExecRecord:
    return ExecRecord(ktime=pid * 1000, pid=pid, tid=pid, ppid=ppid, uid=0, gid=0, auid=0, cgroup_id=0,
                      filename="/bin/x", cwd="/", argv=["x"], cgroup_name="", env=env)


def test_every_variable_in_order_by_default() -> None:
    show = EnvironmentVariables()
    assert show(record(5, ["HOME=/root", "A=b=c", "EMPTY="])) == [
        {"Key": "HOME", "Value": "/root"}, {"Key": "A", "Value": "b=c"}, {"Key": "EMPTY"}]
    assert show(record(5, None)) is None and show(record(5, [])) is None


def test_filter_keeps_only_the_names_listed() -> None:
    show = EnvironmentVariables(["LD_PRELOAD", "PATH"])
    assert show(record(5, ["HOME=/root", "LD_PRELOAD=/tmp/x.so", "PATHX=1"])) == [
        {"Key": "LD_PRELOAD", "Value": "/tmp/x.so"}]
    assert show(record(5, ["HOME=/root"])) is None  # none kept: no member at all


def test_cache_puts_them_on_the_process_and_its_forks_and_nothing_without_the_flag() -> None:
    cache = ProcessCache("node", BootClock(epoch_ns=0))
    plain = cache.add_exec(record(10, ["A=1"]))
    assert "environment_variables" not in plain.to_json()  # flag off: the JSON is what it was
    cache.process_env = EnvironmentVariables()
    proc = cache.add_exec(record(11, ["A=1"]))
    assert proc.to_json()["environment_variables"] == [{"Key": "A", "Value": "1"}]
    assert b'"environment_variables":[{"Key":"A","Value":"1"}]' in proc.json_bytes()
    child = cache.add_clone(CloneRecord(ktime=99_000, pid=12, tid=12, ppid=11, cgroup_id=0))
    assert child is not None and child.to_json()["environment_variables"] == [{"Key": "A", "Value": "1"}]
