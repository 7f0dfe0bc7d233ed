"""``tetra tracingpolicy``: TracingPolicy files; ``validate`` checks them without root.

The group is where every policy subcommand lives (add one with
``@tracingpolicy.command()``). ``validate`` reads each file with the same loader
the agent uses, so a file it calls ok is one the agent will load; it prints
every problem as ``file:line:col: path: message`` (warnings say ``warning:``),
colored only on a terminal, and exits 1 when any file has an error.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import click
import orjson
from rich.console import Console
from rich.text import Text

from tetra.policy import PolicyErrors, PolicyIssue, load_policies_report


@dataclass
class FileReport:
    """What validating one file found."""

    file: str
    policies: list[str] = field(default_factory=list)
    errors: list[PolicyIssue] = field(default_factory=list)
    warnings: list[PolicyIssue] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.errors


def validate_file(file: str) -> FileReport:
    try:
        policies, warnings = load_policies_report(file)
    except PolicyErrors as err:
        return FileReport(file, errors=err.errors, warnings=err.warnings)
    return FileReport(file, [policy.name for policy in policies], warnings=warnings)


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else (plural or word + 's')}"


_STYLES = {"error": "red", "warning": "yellow"}


def _issue_line(issue: PolicyIssue) -> Text:
    """``str(issue)`` with the location in bold and the message colored (plain text off a terminal)."""
    line = Text(f"{issue.loc}: ", style="bold")
    if issue.loc.path:
        line.append(f"{issue.loc.path}: ", style="cyan")
    if issue.severity == "warning":
        line.append("warning: ", style="bold yellow")
    line.append(issue.message, style=_STYLES[issue.severity])
    return line


def _render_text(reports: list[FileReport]) -> None:
    console = Console(highlight=False, soft_wrap=True)
    for report in reports:
        for issue in sorted(report.errors + report.warnings, key=lambda issue: (issue.loc.line, issue.loc.column)):
            console.print(_issue_line(issue))
        if report.valid:
            names = f": {', '.join(report.policies)}" if report.policies else ""
            summary = Text(f"{report.file}: ")
            summary.append("ok", style="bold green")
            summary.append(f" ({_plural(len(report.policies), 'policy', 'policies')}{names})")
        else:
            summary = Text(f"{report.file}: ")
            summary.append("invalid", style="bold red")
            summary.append(f" ({_plural(len(report.errors), 'error')}"
                           + (f", {_plural(len(report.warnings), 'warning')})" if report.warnings else ")"))
        console.print(summary)


def _render_json(reports: list[FileReport]) -> None:
    document = {"files": [{
        "file": report.file,
        "valid": report.valid,
        "policies": report.policies,
        "errors": [issue.as_dict() for issue in report.errors],
        "warnings": [issue.as_dict() for issue in report.warnings],
    } for report in reports]}
    click.echo(orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE), nl=False)


_RENDERERS: dict[str, Callable[[list[FileReport]], None]] = {"text": _render_text, "json": _render_json}


@click.group()
def tracingpolicy() -> None:
    """Work with Tetragon TracingPolicy files, and with the policies of a running agent."""


@tracingpolicy.command()
@click.argument("files", nargs=-1, required=True)
@click.option("-o", "--output", type=click.Choice(list(_RENDERERS)), default="text", show_default=True,
              help="Report format.")
def validate(files: tuple[str, ...], output: str) -> None:
    """Check TracingPolicy files and report every problem with its file:line:col.

    Exits 0 when every file is valid (warnings allowed), 1 otherwise.
    """
    reports = [validate_file(file) for file in files]
    _RENDERERS[output](reports)
    if not all(report.valid for report in reports):
        raise SystemExit(1)
