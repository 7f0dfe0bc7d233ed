"""Inputs built to cost time or crash the loader: each is refused quickly, at its line and column.

The expansions (aliases, merge keys, selector macros) are counted while the
tree is read, so they stop at a budget instead of running for minutes (timed
in CPU seconds of this process: other work on the machine does not count); values
that Python cannot convert or that would recurse too deep are reported as such,
never as an "internal error at 1:1"; values echoed in messages are shortened.
"""

import time
from pathlib import Path

import pytest

import tetra.policy.loader
from tests.unit.policy.hostile import merge_bomb, merge_chain, policy
from tetra.cli.main import _register, cli
from tetra.policy import PolicyErrors, load_policies_text
from tetra.policy.limits import MAX_DEPTH, MAX_FILE_NODES, MAX_NODES
from tetra.policy.loader import load_policies_text_report

BUDGET = (f"this document expands to more than {MAX_NODES} YAML nodes (aliases are counted at each use): "
          "refusing to read it")


def column(text: str, needle: str, after: str = "") -> int:
    """The 1-based column of ``needle`` on the first line that has it (past ``after`` on that line)."""
    line = next(line for line in text.splitlines() if needle in line)
    return line.index(needle, line.index(after) if after else 0) + 1


def errors_of(text: str, filename: str = "x.yaml") -> list[str]:
    with pytest.raises(PolicyErrors) as caught:
        load_policies_text(text, filename)
    return [str(issue) for issue in caught.value.errors]


def test_a_merge_key_bomb_runs_out_of_budget_in_well_under_a_second() -> None:
    text = merge_bomb(levels=7, width=10)
    assert len(text) < 700
    started = time.process_time()
    assert errors_of(text) == [f"x.yaml:1:1: {BUDGET}"]
    assert time.process_time() - started < 1.0


def test_tracingpolicy_validate_refuses_the_merge_bomb_quickly(tmp_path: Path) -> None:
    from click.testing import CliRunner

    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(merge_bomb())
    _register()
    started = time.process_time()
    result = CliRunner().invoke(cli, ["tracingpolicy", "validate", str(bomb)], catch_exceptions=False)
    assert time.process_time() - started < 1.0
    assert result.exit_code == 1
    assert result.output.splitlines() == [f"{bomb}:1:1: {BUDGET}", f"{bomb}: invalid (1 error)"]


def test_a_merge_chain_deeper_than_the_nesting_limit_is_reported_where_it_goes_too_deep() -> None:
    # the kprobe (line 3007) merges the anchor of line 3006, which merges the one above it...: the
    # mapping that merge number MAX_DEPTH + 1 would bring in is reported, at its anchor
    assert errors_of(merge_chain(3000)) == [
        f"x.yaml:{3006 - MAX_DEPTH}:7: spec.kprobes[0]: merge keys (<<) nested more than {MAX_DEPTH} levels "
        "deep: a policy is never that deep"]


def test_merges_within_the_nesting_limit_still_work() -> None:
    [loaded] = load_policies_text(merge_chain(MAX_DEPTH - 1))  # MAX_DEPTH merges, the kprobe's included
    assert (loaded.spec.kprobes[0].call, loaded.spec.kprobes[0].message) == ("sys_read", "chained")


def test_an_integer_too_long_for_python_is_a_number_too_large_at_its_place() -> None:
    digits = "9" * 5000
    spec = (f"{{kprobes: [{{call: sys_read, args: [{{index: {digits}, type: int}}], selectors: [{{matchArgs: "
            f"[{{index: 0, operator: GT, values: [{digits}]}}]}}]}}]}}")
    text = policy("big", spec)
    too_large = "number too large (5000 digits): a policy's numbers fit in 64 bits"
    assert errors_of(text) == [
        f"x.yaml:5:{column(text, digits)}: spec.kprobes[0].args[0].index: {too_large}",
        f"x.yaml:5:{column(text, digits, 'values')}: spec.kprobes[0].selectors[0].matchArgs[0].values[0]: "
        f"{too_large}",
    ]
    rate = policy("big", f"{{kprobes: [{{call: sys_read, selectors: [{{matchActions: [{{action: Post, "
                         f"rateLimit: '{digits}'}}]}}]}}]}}")
    assert errors_of(rate) == [f"x.yaml:5:{column(rate, digits) - 1}: spec.kprobes[0].selectors[0].matchActions[0]"
                               f".rateLimit: rateLimit '{'9' * 80}…' is too large"]


def test_repeated_selector_macros_expand_in_linear_time() -> None:
    uses = ", ".join(["m"] * 100_000)  # 300 KB; appended macro by macro this took minutes
    spec = (f"{{selectorsMacros: {{m: {{matchActions: [{{action: Post}}]}}}}, kprobes: [{{call: sys_read, "
            f"selectors: [{{macros: [{uses}]}}]}}]}}")
    text = policy("macros", spec)
    started = time.process_time()
    assert errors_of(text) == [
        f"x.yaml:5:{column(text, '{macros')}: spec.kprobes[0].selectors[0]: 100000 matchActions, at most 3 are "
        "supported in one selector (counting those from macros)"]
    assert time.process_time() - started < 3.0


def test_the_documents_of_a_file_share_a_node_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tetra.policy.loader, "MAX_FILE_NODES", 150)  # each document below reads 43 nodes
    hooks = ", ".join(["{call: sys_read}"] * 10)
    text = "---\n".join(policy(f"p{i}", f"{{kprobes: [{hooks}]}}") for i in range(5))
    assert errors_of(text) == [  # the fourth document (line 19) runs out, the fifth is not read
        "x.yaml:19:1: the documents of this file expand to more than 150 YAML nodes together (aliases are "
        "counted at each use): refusing to read this one and the ones after it"]
    assert MAX_FILE_NODES >= 5 * MAX_NODES  # a bomb per document is still refused in a few seconds per file


def test_an_api_deadline_stops_the_walk() -> None:
    values = ", ".join(f'"/v{i}"' for i in range(1000))
    hook = f"{{call: sys_openat, args: [{{index: 1, type: string}}], selectors: [{{matchArgs: [{{index: 1, " \
           f"operator: Prefix, values: [{values}]}}]}}]}}"
    with pytest.raises(PolicyErrors) as caught:
        load_policies_text_report(policy("slow", f"{{kprobes: [{', '.join([hook] * 10)}]}}"), "api",
                                  deadline=time.monotonic())
    assert [str(issue) for issue in caught.value.errors] == [
        "api:1:1: validating took longer than the call allows (its deadline passed): refusing this document and "
        "the ones after it"]


def test_values_echoed_in_messages_are_shortened() -> None:
    key, call = "k" * 100_000, "x" * 100_000 + "-"
    problems = errors_of(policy("echo", f"\n  ? {key}\n  : 1\n  kprobes: [{{call: '{call}'}}]"))
    assert problems == [f"x.yaml:6:5: spec: unknown key '{'k' * 80}…'; allowed: containerSelector, enforcers, "
                        "fentries, hostSelector, kprobes, lists, loader, lsmhooks, options, podSelector, "
                        "rawtracepoints, selectorsMacros, tracepoints, uprobes, usdts",
                        f"x.yaml:8:20: spec.kprobes[0].call: '{'x' * 80}…' is not a kernel function name"]
