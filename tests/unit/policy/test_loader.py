"""Good policies become the model with Tetragon's values, defaults and exact locations."""

import dataclasses
from pathlib import Path

import pytest

import tetra.policy.loader
from tetra.errors import TetraError
from tetra.policy import (KProbe, Location, PolicyErrors, TracingPolicy, load_policies, load_policies_report,
                          load_policies_text)

HERE = Path(__file__).parent
GOOD = sorted((HERE / "good").glob("*.yaml"))


def load_good(name: str, monkeypatch: pytest.MonkeyPatch) -> list[TracingPolicy]:
    monkeypatch.chdir(HERE)
    return load_policies(f"good/{name}")


@pytest.mark.parametrize("fixture", GOOD, ids=lambda path: path.stem)
def test_good_policies_load_without_errors_or_warnings(fixture: Path) -> None:
    policies, warnings = load_policies_report(fixture)
    assert policies
    assert warnings == []


def test_at_least_eight_good_policies() -> None:
    assert len(GOOD) >= 8


def test_fd_install_round_trips_with_values_and_locations(monkeypatch: pytest.MonkeyPatch) -> None:
    [policy] = load_good("fd_install.yaml", monkeypatch)
    assert (policy.api_version, policy.kind, policy.name, policy.namespace) == (
        "cilium.io/v1alpha1", "TracingPolicy", "fd-install", None)
    assert policy.loc == Location("good/fd_install.yaml", 1, 1, "")
    [kprobe] = policy.spec.kprobes
    assert (kprobe.call, kprobe.syscall, kprobe.return_, kprobe.message) == ("fd_install", False, False, None)
    assert kprobe.loc == Location("good/fd_install.yaml", 7, 5, "spec.kprobes[0]")
    assert [(arg.index, arg.type) for arg in kprobe.args] == [(0, "int"), (1, "file")]
    assert kprobe.args[1].loc == Location("good/fd_install.yaml", 12, 7, "spec.kprobes[0].args[1]")
    first, second = kprobe.selectors
    [match] = first.match_args
    assert (match.index, match.args, match.operator, match.values) == (1, (), "Equal",
                                                                        ("/etc/passwd", "/etc/shadow"))
    assert match.loc == Location("good/fd_install.yaml", 16, 9, "spec.kprobes[0].selectors[0].matchArgs[0]")
    [binaries] = first.match_binaries
    assert (binaries.operator, binaries.values, binaries.follow_children) == (
        "NotIn", ("/usr/bin/passwd", "/usr/sbin/chpasswd"), False)
    [pids] = second.match_pids
    assert (pids.operator, pids.values, pids.follow_forks, pids.is_namespace_pid) == ("NotIn", (0, 1), True, True)
    assert first.match_actions == () and first.match_return_args == () and first.match_data == ()


def test_defaults_are_tetragons(monkeypatch: pytest.MonkeyPatch) -> None:
    [policy] = load_good("lists_enforcer.yaml", monkeypatch)
    syscalls, ftrace = policy.spec.kprobes
    assert syscalls.syscall is True  # Tetragon's default
    assert ftrace.syscall is False and ftrace.ignore_call_not_found is True
    assert syscalls.ignore_call_not_found is False and syscalls.tags == () and syscalls.return_arg is None
    [policy] = load_policies_text(
        "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata: {name: d}\nspec:\n"
        "  kprobes:\n  - call: sys_read\n    args: [{index: 1}]\n"
        "    selectors:\n    - matchCapabilities: [{operator: In, values: [cap_sys_admin]}]\n"
        "      matchActions: [{action: Post, rateLimit: 5}]\n")
    [arg] = policy.spec.kprobes[0].args
    assert (arg.type, arg.return_copy, arg.max_data, arg.size_arg_index, arg.label) == ("auto", False, False,
                                                                                        None, None)
    [selector] = policy.spec.kprobes[0].selectors
    [caps] = selector.match_capabilities
    assert (caps.type, caps.is_namespace_capability, caps.values) == ("Effective", False, ("CAP_SYS_ADMIN",))
    [post] = selector.match_actions
    assert (post.rate_limit, post.rate_limit_scope, post.kernel_stack_trace, post.arg_sig) == ("5", None, False,
                                                                                               None)
    assert policy.spec.loader is False and policy.spec.fentries == () and policy.spec.pod_selector is None


def test_values_stay_strings_and_yaml_integers_become_their_decimal(monkeypatch: pytest.MonkeyPatch) -> None:
    [policy] = load_good("file_monitoring.yaml", monkeypatch)
    mmap = policy.spec.kprobes[1]
    assert [match.values for match in mmap.selectors[0].match_args] == [("/etc/",), ("2",), ("1",)]
    [policy] = load_policies_text(
        "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata: {name: r}\nspec:\n"
        "  kprobes:\n  - call: sys_read\n    args: [{index: 2, type: int}]\n"
        "    selectors: [{matchArgs: [{index: 2, operator: NotInRange, values: [1:5, 0x10:0x20]}]}]\n")
    # YAML 1.1 would read 1:5 as the base-60 number 65; a range must stay a range.
    assert policy.spec.kprobes[0].selectors[0].match_args[0].values == ("1:5", "0x10:0x20")


def test_several_documents_and_empty_ones_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    cluster, scoped = load_good("multi_document.yaml", monkeypatch)
    assert (cluster.kind, cluster.name, cluster.namespace) == ("TracingPolicy", "mount-example", None)
    assert dict(cluster.spec.host_selector or {}) == {"matchLabels": {}, "matchExpressions": ()}
    assert (scoped.kind, scoped.name, scoped.namespace) == ("TracingPolicyNamespaced", "web-exec", "shop")
    assert scoped.loc.line == 23
    pods = scoped.spec.pod_selector
    assert pods is not None and dict(pods["matchLabels"]) == {"app": "web"}
    assert [dict(requirement) for requirement in pods["matchExpressions"]] == [
        {"key": "tier", "operator": "NotIn", "values": ("debug",)}]


def test_each_policy_keeps_its_own_document_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    """The YAML `tetra bugtool` puts in its archive: each document alone, lines and comments as written."""
    cluster, scoped = load_good("multi_document.yaml", monkeypatch)
    lines = (HERE / "good" / "multi_document.yaml").read_text().splitlines(keepends=True)
    assert scoped.text == "".join(lines[scoped.loc.line - 1:]).rstrip() + "\n"
    assert cluster.text.startswith("apiVersion:") and "mount-example" in cluster.text
    assert "web-exec" not in cluster.text and "mount-example" not in scoped.text
    assert dataclasses.replace(cluster, text="") == cluster  # the text is not part of the policy's identity


def test_lists_are_kept_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    """The loader keeps ``list:NAME`` calls and the lists; the compiler expands them
    (generated ones from the running kernel: tests/unit/compiler/test_lists.py)."""
    [policy] = load_good("lists_enforcer.yaml", monkeypatch)
    spec = policy.spec
    assert [kprobe.call for kprobe in spec.kprobes] == ["list:dups", "list:ksys"]
    [dups_list] = [spec_list for spec_list in spec.lists if spec_list.name == "dups"]
    assert (dups_list.type, dups_list.values) == ("syscalls", ("sys_dup", "sys_dup2"))
    [ksys_list] = [spec_list for spec_list in spec.lists if spec_list.name == "ksys"]
    assert (ksys_list.type, ksys_list.pattern, ksys_list.values) == ("generated_ftrace", "^ksys_*", ())
    assert [enforcer.calls for enforcer in spec.enforcers] == [("list:dups",)]


def test_policy_mode_comes_from_options(monkeypatch: pytest.MonkeyPatch) -> None:
    [monitoring] = load_good("lists_enforcer.yaml", monkeypatch)
    assert monitoring.policy_mode == "monitor"  # "monitoring" in the file: the same mode
    assert monitoring.spec.option("disable-kprobe-multi") == "1"
    assert monitoring.spec.option("absent") is None
    [default] = load_good("fd_install.yaml", monkeypatch)
    assert default.policy_mode == "enforce"


def test_macros_and_merge_keys_are_expanded(monkeypatch: pytest.MonkeyPatch) -> None:
    [policy] = load_good("usdt_macros.yaml", monkeypatch)
    unlink, rename = policy.spec.kprobes
    assert (unlink.call, rename.call) == ("sys_unlinkat", "sys_renameat2")
    for kprobe in (unlink, rename):
        [selector] = kprobe.selectors
        [binaries] = selector.match_binaries
        assert (binaries.operator, binaries.values) == ("NotPrefix", ("/usr/lib/systemd/",))
        assert binaries.loc.path == "spec.selectorsMacros.not-system.matchBinaries[0]"
    assert rename.loc.path == "spec.kprobes[1]"
    [usdt] = policy.spec.usdts
    [set_action] = usdt.selectors[0].match_actions
    assert (set_action.action, set_action.arg_index, set_action.arg_value) == ("Set", 0, 1)


def test_tracepoint_lsm_and_uprobe_models(monkeypatch: pytest.MonkeyPatch) -> None:
    [openat] = load_good("tracepoint_openat.yaml", monkeypatch)
    [tracepoint] = openat.spec.tracepoints
    assert (tracepoint.subsystem, tracepoint.event, tracepoint.raw) == ("syscalls", "sys_enter_openat", False)
    assert tracepoint.message == "openat under /etc"
    [lsm] = load_good("lsm_file_open.yaml", monkeypatch)
    file_open = lsm.spec.lsmhooks[0]
    override, post = file_open.selectors[0].match_actions
    assert (override.action, override.arg_error, post.action, post.ima_hash) == ("Override", -1, "Post", True)
    [bash] = load_good("uprobe_bash_readline.yaml", monkeypatch)
    [uprobe] = bash.spec.uprobes
    assert (uprobe.path, uprobe.symbols, uprobe.offsets, uprobe.return_) == ("/bin/bash", ("readline",), (), True)
    assert uprobe.return_arg is not None and uprobe.return_arg.type == "string"
    assert uprobe.tags == ("interactive",)


def test_warnings_are_returned_not_raised(tmp_path: Path) -> None:
    source = tmp_path / "warn.yaml"
    source.write_text("apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata: {name: w}\nspec:\n"
                      "  options: [{name: frobnicate, value: '1'}]\n"
                      "  kprobes:\n  - call: sys_read\n    args: [{index: 0, type: int}]\n"
                      "    selectors: [{matchArgs: [{index: 0, operator: gt, values: ['1']}]}]\n")
    [policy], warnings = load_policies_report(source)
    assert policy.spec.kprobes[0].selectors[0].match_args[0].operator == "GT"
    assert [str(warning) for warning in warnings] == [
        f"{source}:5:20: spec.options[0].name: warning: unknown option 'frobnicate': it is ignored; known: "
        "disable-kprobe-multi, disable-uprobe-multi, policy-mode, cgroup-path, enforce-protected-processes, "
        "observe-agent",
        f"{source}:9:51: spec.kprobes[0].selectors[0].matchArgs[0].operator: warning: 'gt' is read as 'GT' "
        "(Kubernetes only accepts 'GT')",
    ]


def test_errors_carry_every_issue_and_the_warnings(tmp_path: Path) -> None:
    source = tmp_path / "two.yaml"
    source.write_text("apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata: {name: Bad_Name}\nspec:\n"
                      "  kprobes: [{call: sys_read, syscal: true}]\n"
                      "  options: [{name: frobnicate}]\n")
    with pytest.raises(PolicyErrors) as caught:
        load_policies(source)
    err = caught.value
    assert isinstance(err, TetraError)
    assert [issue.loc.line for issue in err.errors] == [3, 5]
    assert [issue.severity for issue in err.warnings] == ["warning"]
    assert str(err).splitlines() == [str(issue) for issue in err.errors]
    assert err.errors[0].as_dict() == {"file": str(source), "line": 3, "column": 18, "path": "metadata.name",
                                       "message": err.errors[0].message, "severity": "error"}


def test_empty_file_and_missing_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n---\n")
    assert load_policies(empty) == []
    with pytest.raises(PolicyErrors) as caught:
        load_policies(tmp_path / "absent.yaml")
    assert str(caught.value) == f"{tmp_path / 'absent.yaml'}:1:1: cannot read: No such file or directory"


def test_an_unexpected_exception_is_still_a_located_policy_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(policy: TracingPolicy) -> list[object]:
        raise KeyError("surprise")

    monkeypatch.setattr(tetra.policy.loader, "check_policy", broken)
    with pytest.raises(PolicyErrors) as caught:
        load_policies_text("# a comment\n" + (HERE / "good" / "fd_install.yaml").read_text(), "x.yaml")
    assert str(caught.value) == ("x.yaml:2:1: internal error while validating this document (KeyError: "
                                 "'surprise'); please report it")


def test_model_is_immutable(monkeypatch: pytest.MonkeyPatch) -> None:
    [policy] = load_good("fd_install.yaml", monkeypatch)
    kprobe: KProbe = policy.spec.kprobes[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        kprobe.call = "other"  # type: ignore[misc]
    assert isinstance(kprobe.selectors, tuple) and isinstance(kprobe.args, tuple)
    assert str(kprobe.loc) == "good/fd_install.yaml:7:5"


def test_rawtracepoints_are_raw_tracepoints() -> None:
    """Tetragon's spec.rawtracepoints is tracepoints with raw: true (its examples/tracingpolicy/rawtp.yaml)."""
    text = ("apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: rawtp\nspec:\n"
            "  tracepoints:\n  - subsystem: sched\n    event: sched_switch\n"
            "  rawtracepoints:\n  - subsystem: sched\n    event: sched_process_exec\n"
            "    args:\n    - index: 2\n      type: linux_binprm\n")
    [policy] = tetra.policy.loader.load_policies_text(text, "rawtp.yaml")
    assert [(tp.event, tp.raw) for tp in policy.spec.tracepoints] == [("sched_switch", False),
                                                                      ("sched_process_exec", True)]
    assert policy.spec.tracepoints[1].loc.path == "spec.rawtracepoints[0]"
