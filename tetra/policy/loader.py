"""Loading TracingPolicy files: bytes in, validated policies (or every problem at once) out.

::

    file bytes ──yamltree.decode──> text            size cap, UTF-8, NUL and other forbidden characters
        ──yamltree.compose──> node trees            one per document; every node keeps its line:column
        ──walk over schema.DOCUMENT──> model        shape: keys, YAML types, enums, limits, value syntax
          + issues                                    (per document; an alias or merge-key bomb runs
                                                      out of its node budget, per document and per
                                                      file; an API call's walk stops at its deadline)
        ──checks.check_policy──> more issues        across objects: argument references, operator vs
                                                      type, actions vs hook kind, list references
        ──> errors ? raise PolicyErrors(errors, warnings) : return (policies, warnings)

Cross-object checks run only on documents whose shape is valid, so one typo
does not also show up as a dozen consequences. Any exception that escapes the
validation is a bug in tetra, but it still comes out as a ``PolicyErrors``
located at its document, never as a traceback.
"""

from dataclasses import replace
from pathlib import Path

from yaml.nodes import MappingNode, Node

from tetra.policy.checks import check_policy
from tetra.policy.errors import PolicyErrors, PolicyIssue, quoted, shortened
from tetra.policy.limits import MAX_DOCUMENTS, MAX_FILE_BYTES, MAX_FILE_NODES, MAX_NODES
from tetra.policy.model import Location, TracingPolicy
from tetra.policy.schema import DOCUMENT
from tetra.policy.walk import INVALID, BudgetExceeded, Obj, OutOfTime, Walk
from tetra.policy.yamltree import SourceProblem, compose, decode, describe


def load_policies(path: str | Path) -> list[TracingPolicy]:
    """Every policy of a YAML file, or ``PolicyErrors`` with every error in it."""
    return load_policies_report(path)[0]


def load_policies_text(text: str, filename: str = "<string>") -> list[TracingPolicy]:
    """Like ``load_policies``, for YAML already in memory (``filename`` is used in locations)."""
    return load_policies_text_report(text, filename)[0]


def load_policies_text_report(text: str, filename: str = "<string>", deadline: float | None = None
                              ) -> tuple[list[TracingPolicy], list[PolicyIssue]]:
    """Like ``load_policies_report``, for YAML already in memory.

    ``deadline`` (``time.monotonic``): an API call's, past which validating is refused rather than
    finished for a client that is no longer waiting.
    """
    return _load(text.encode("utf-8", "surrogateescape"), filename, deadline)


def load_policies_report(path: str | Path) -> tuple[list[TracingPolicy], list[PolicyIssue]]:
    """The policies of a file and its warnings; errors raise ``PolicyErrors`` (with the warnings too)."""
    filename = str(path)
    try:
        with open(path, "rb") as source:
            data = source.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        raise PolicyErrors([PolicyIssue(Location(filename, 1, 1, ""), f"cannot read: {err.strerror}")]) from None
    return _load(data, filename)


def _load(data: bytes, filename: str, deadline: float | None = None) -> tuple[list[TracingPolicy], list[PolicyIssue]]:
    try:
        text = decode(data)
        documents = compose(text)
    except SourceProblem as problem:
        raise PolicyErrors([PolicyIssue(Location(filename, problem.line, problem.column, ""),
                                        problem.message)]) from None
    issues: list[PolicyIssue] = []
    if len(documents) > MAX_DOCUMENTS:
        extra = documents[MAX_DOCUMENTS].start_mark
        issues.append(PolicyIssue(Location(filename, extra.line + 1, extra.column + 1, ""),
                                  f"{len(documents)} documents, at most {MAX_DOCUMENTS} are supported in one file"))
        documents = documents[:MAX_DOCUMENTS]
    policies: list[TracingPolicy] = []
    first: dict[tuple[str | None, str], TracingPolicy] = {}
    left = MAX_FILE_NODES
    for document in documents:
        walk = Walk(filename, min(MAX_NODES, left), deadline)
        policy, found = _load_document(document, walk)
        issues.extend(found)
        left -= walk.spent
        if left <= 0 or walk.out_of_time:
            break  # reported on this document; the ones after it are not read
        if policy is None:
            continue
        key = (policy.namespace, policy.name)
        if key in first:
            issues.append(PolicyIssue(Location(filename, policy.loc.line, policy.loc.column, "metadata.name"),
                                      f"policy {quoted(policy.name)} is defined twice in this file "
                                      f"(first at line {first[key].loc.line})"))
        first.setdefault(key, policy)
        policies.append(replace(policy, text=_document_text(text, document)))
    issues.sort(key=lambda issue: (issue.loc.line, issue.loc.column))
    errors = [issue for issue in issues if issue.severity == "error"]
    warnings = [issue for issue in issues if issue.severity == "warning"]
    if errors:
        raise PolicyErrors(errors, warnings)
    return policies, warnings


def _document_text(text: str, document: Node) -> str:
    """The lines of ``text`` that hold ``document`` (from the start of its first line, so that
    its indentation stays as written)."""
    start = text.rfind("\n", 0, document.start_mark.index) + 1
    return text[start:document.end_mark.index].rstrip() + "\n"


def _load_document(node: Node, walk: Walk) -> tuple[TracingPolicy | None, list[PolicyIssue]]:
    """One document: its policy (None when it has errors) and its issues."""
    try:
        if not isinstance(node, MappingNode):
            walk.report(node, "", f"a policy document must be a mapping, got {describe(node)}")
            return None, walk.issues
        policy = walk.read(Obj(DOCUMENT), node, "")
        if policy is INVALID or any(issue.severity == "error" for issue in walk.issues):
            return None, walk.issues
        issues = walk.issues + check_policy(policy)
    except BudgetExceeded:
        if walk.budget == MAX_NODES:
            walk.report(node, "", f"this document expands to more than {MAX_NODES} YAML nodes (aliases are "
                                  "counted at each use): refusing to read it")
        else:
            walk.report(node, "", f"the documents of this file expand to more than {MAX_FILE_NODES} YAML nodes "
                                  "together (aliases are counted at each use): refusing to read this one and "
                                  "the ones after it")
        return None, walk.issues
    except OutOfTime:
        walk.report(node, "", "validating took longer than the call allows (its deadline passed): refusing "
                              "this document and the ones after it")
        return None, walk.issues
    except Exception as err:  # a bug in tetra, still reported where it happened, never as a traceback
        walk.report(node, "", f"internal error while validating this document ({type(err).__name__}: "
                              f"{shortened(str(err))}); please report it")
        return None, walk.issues
    has_errors = any(issue.severity == "error" for issue in issues)
    return (None if has_errors else policy), issues
