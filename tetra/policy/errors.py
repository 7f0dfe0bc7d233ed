"""What a policy file did wrong: located issues, and the exception that carries them all.

A policy file is checked as a whole, so a user sees every problem in one run
instead of fixing them one at a time; ``PolicyErrors`` is raised once, at the
end, holding all the errors (and the warnings found on the way).
"""

from dataclasses import dataclass
from typing import Literal

from tetra.errors import TetraError
from tetra.policy.model import Location

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class PolicyIssue:
    """One problem at one place: ``file:line:col: path: message``.

    A warning reads ``file:line:col: path: warning: message``; the path is left
    out for problems of a whole file or document (syntax, encoding).
    """

    loc: Location
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        where = f"{self.loc}: {self.loc.path}: " if self.loc.path else f"{self.loc}: "
        return where + ("warning: " if self.severity == "warning" else "") + self.message

    def as_dict(self) -> dict[str, object]:
        """The JSON shape used by ``tetra tracingpolicy validate -o json``."""
        return {"file": self.loc.file, "line": self.loc.line, "column": self.loc.column,
                "path": self.loc.path, "message": self.message, "severity": self.severity}


class PolicyErrors(TetraError):
    """A policy file is invalid; ``errors`` holds every error found, in file order."""

    def __init__(self, errors: list[PolicyIssue], warnings: list[PolicyIssue] | None = None) -> None:
        self.errors = errors
        self.warnings = warnings or []
        super().__init__("\n".join(str(issue) for issue in errors))
