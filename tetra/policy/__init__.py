"""Tetragon TracingPolicy YAML in, a validated immutable model out.

::

    loader      file -> YAML nodes -> schema walk -> model + issues -> cross-object checks
    yamltree    bytes/text -> node trees with line:col marks (size, UTF-8, syntax)
    walk        the schema language (kinds, fields, tables) and the walker with its node budget
    schema      the tables for every TracingPolicy object, Tetragon's keys and defaults
    values      the syntax of single values (ports, CIDRs, ranges, durations, names)
    checks      checks across objects of a built policy
    vocab       Tetragon's names: types, operators, actions, capabilities, ...
    limits      the bounds a policy must stay within
    model       the frozen dataclasses the compiler consumes
    errors      PolicyIssue (file:line:col: path: message) and PolicyErrors

Public API: ``load_policies``, ``load_policies_text``, ``load_policies_report``,
``PolicyErrors``, ``PolicyIssue`` and the model classes.
"""

from tetra.policy.errors import PolicyErrors, PolicyIssue
from tetra.policy.loader import load_policies, load_policies_report, load_policies_text
from tetra.policy.model import (Action, ArgSpec, Enforcer, KProbe, ListSpec, Location, LsmHook, MatchArg,
                                MatchBinaries, MatchCapabilities, MatchCapabilityChanges, MatchNamespaceChanges,
                                MatchNamespaces, MatchPIDs, Option, Selector, Spec, Tracepoint, TracingPolicy, UProbe,
                                Usdt)

__all__ = [
    "Action", "ArgSpec", "Enforcer", "KProbe", "ListSpec", "Location", "LsmHook", "MatchArg", "MatchBinaries",
    "MatchCapabilities", "MatchCapabilityChanges", "MatchNamespaceChanges", "MatchNamespaces", "MatchPIDs",
    "Option", "PolicyErrors", "PolicyIssue", "Selector", "Spec", "Tracepoint", "TracingPolicy", "UProbe", "Usdt",
    "load_policies", "load_policies_report", "load_policies_text",
]
