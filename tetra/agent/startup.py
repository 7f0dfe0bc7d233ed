"""The policies named on the agent's command line, and whether the agent may run without some.

A policy given with --tracing-policy or --tracing-policy-dir that cannot be read,
parsed or loaded would leave the node unprotected while the agent runs and says
"ready": so the agent refuses to start, naming each failed policy with its
reason, unless --tracing-policy-keep-going says to run with the others. Failures
are known at two moments: reading, validating and compiling happen as the files
are named (before "ready"); the kernel's refusals (verifier, attach) come while
the policies load in the agent loop (by "policies settled"). Both are checked.

Policies added later (the API, Kubernetes objects) are not start-up policies:
their failures are answered to whoever added them, and the agent runs on.
"""

from collections.abc import Iterable

from tetra.agent.policies import PolicyState
from tetra.errors import TetraError
from tetra.status.model import PolicyLoadState

KEEP_GOING_FLAG = "--tracing-policy-keep-going"


class StartupPolicyFailed(TetraError):
    """A policy named on the command line did not load, and the operator did not ask to run without it."""


def first_line(text: str) -> str:
    """An error's first line, for one-line summaries (the log has the whole error above)."""
    return text.split("\n", 1)[0]


def failed_summary(states: Iterable[PolicyState]) -> str:
    """``"broken (p/broken.yaml:3:5: spec: ...), other (...)"``: which failed and why, on one line."""
    return ", ".join(f"{s.name} ({first_line(s.error)})" for s in states if s.state is PolicyLoadState.LOAD_ERROR)


def refuse_failed(states: list[PolicyState], keep_going: bool) -> None:
    """Raise StartupPolicyFailed naming every failed start-up policy and its whole error,
    unless ``keep_going``."""
    failed = [s for s in states if s.state is PolicyLoadState.LOAD_ERROR]
    if not failed or keep_going:
        return
    reasons = "\n".join(f"  {_label(s)}:\n    " + s.error.replace("\n", "\n    ") for s in failed)
    raise StartupPolicyFailed(
        f"refusing to run: {len(failed)} of {len(states)} start-up policies did not load (fix or remove them, "
        f"or pass {KEEP_GOING_FLAG} to run without them):\n{reasons}")


def _label(state: PolicyState) -> str:
    """The policy's name and where it came from (a file that did not parse has only its path)."""
    return state.name if state.name == state.source else f"{state.name} ({state.source})"
