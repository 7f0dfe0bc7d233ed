"""The README's commands name files that exist: a new operator copies them first."""

import re
from pathlib import Path

from tetra.policy import load_policies_report

ROOT = Path(__file__).resolve().parents[2]
POLICY_PATH = re.compile(r"(?<![\w/])(policies/[\w.-]+\.ya?ml)")


def test_every_policy_the_readme_names_exists_and_is_valid() -> None:
    named = set(POLICY_PATH.findall((ROOT / "README.md").read_text()))
    assert named, "the README names no policy file: the pattern is stale"
    for path in sorted(named):
        assert (ROOT / path).is_file(), f"README names {path}, which does not exist"
        policies, _ = load_policies_report(ROOT / path)
        assert policies, path
