"""The environment variables Tetragon shows with --enable-process-environment-variables.

    ExecRecord.env (kernel at exec, or /proc/PID/environ) ──> process.environment_variables
                        └ --filter-environment-variables: only the names listed

The kernel reads at most ENV_MAX bytes of the environment block of each exec
(tetra/wire/constants.py); a variable cut by that bound is left out and the
process is flagged ``truncEnv``. Environments hold secrets: keep only the names
you need with the filter, and mask values with --redaction-filters, whose
patterns also see each variable as ``NAME=value`` (tetra/filters/redact.py).
Each process renders its own list once, when it enters the cache; its events,
and those of its children that name it as parent, reuse it.
"""

from collections.abc import Iterable
from typing import Any

from tetra.decode.process import ExecRecord

Json = dict[str, Any]
KEY = "environment_variables"  # the Process member (Tetragon's EnvVar: Key, Value)


class EnvironmentVariables:
    """Makes a process's ``environment_variables`` from its ExecRecord."""

    def __init__(self, keep: Iterable[str] = ()) -> None:
        """``keep``: the names to show (none given: every variable)."""
        self.keep = frozenset(keep)

    def __call__(self, rec: ExecRecord) -> list[Json] | None:
        """Tetragon's EnvVar list in the block's order; None when there is none to show."""
        if not rec.env:
            return None
        keep = self.keep
        out = []
        for entry in rec.env:
            name, _, value = entry.partition("=")
            if not keep or name in keep:
                out.append({"Key": name, "Value": value} if value else {"Key": name})  # protojson omits ""
        return out or None
