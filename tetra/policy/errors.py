"""What a policy file did wrong: located issues, and the exception that carries them all.

A policy file is checked as a whole, so a user sees every problem in one run
instead of fixing them one at a time; ``PolicyErrors`` is raised once, at the
end, holding all the errors (and the warnings found on the way).

A value echoed in a message is ``quoted``: cut to ``ECHO_CHARS`` characters.
Values come from whoever wrote the policy (or sent the API request), a key or
a name can be megabytes long, and the message goes to a terminal, a log line,
a Kubernetes status or a gRPC status (whose metadata is limited to 8 KiB).
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from tetra.errors import TetraError
from tetra.policy.model import Location

Severity = Literal["error", "warning"]
ECHO_CHARS = 80


def shortened(text: str) -> str:
    """``text`` itself, or its first ``ECHO_CHARS`` characters and an ellipsis."""
    return text if len(text) <= ECHO_CHARS else text[:ECHO_CHARS] + "…"


def quoted(text: str) -> str:
    """``'text'`` for a message, shortened."""
    return f"'{shortened(text)}'"


def listed(texts: Iterable[str], show: Callable[[str], str] = shortened, most: int = 5) -> str:
    """``a, b, c``: the first ``most`` of ``texts``, each ``show``n, and how many more there are."""
    items = list(texts)
    shown = ", ".join(show(text) for text in items[:most])
    return shown + (f" and {len(items) - most} more" if len(items) > most else "")


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
