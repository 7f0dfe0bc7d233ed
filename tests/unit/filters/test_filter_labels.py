"""Kubernetes label selector grammar, beyond what the allowlist tests show."""

import pytest

from tetra.filters.labels import parse_selector

LABELS = {"app.kubernetes.io/name": "xwing", "replicas": "3", "empty": "", "tier": "front"}


@pytest.mark.parametrize("selector, expected", [
    ("app.kubernetes.io/name=xwing", True),  # prefixed keys
    ("replicas>2", True),
    ("replicas>3", False),
    ("replicas<4", True),
    ("tier>1", False),  # not an integer: never matches, as in Kubernetes
    ("missing<100", False),
    ("empty=", True),  # an empty value
    ("empty", True),
    ("tier=", False),
    ("tier in (,front)", True),
    ("empty in (,front)", True),
    ("  tier  =  front  ,  replicas  ", True),  # spaces around tokens
    ("tier notin (back),!missing,replicas!=4", True),
])
def test_grammar(selector: str, expected: bool) -> None:
    assert parse_selector(selector).matches(LABELS) is expected


@pytest.mark.parametrize("selector, message", [
    ("!", "expected a label key after '!', found the end"),
    ("a in b", "expected '(' after 'in', found 'b'"),
    ("a notin (b c)", "expected ',' or ')' in the values of 'a', found 'c'"),
    ("a=b=c", "expected ',' between requirements, found '='"),
    ("a>", "expected an integer after '>', found the end"),
    ("-a=b", "invalid label key '-a': the name must be at most 63 letters, digits, '-', '_' or '.', starting and "
             "ending with a letter or digit"),
    ("a=" + "x" * 64, "invalid label value '" + "x" * 64 + "': at most 63 letters, digits, '-', '_' or '.', "
                      "starting and ending with a letter or digit"),
])
def test_errors(selector: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_selector(selector)
    assert str(caught.value) == message
