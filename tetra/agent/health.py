"""Whether the agent is alive: one verdict for the API's GetHealth and the HTTP /healthz of
--health-server-address, so a Kubernetes probe and ``tetra`` clients never disagree.

The agent loop drains its CommandQueue on every iteration (within one ring-buffer poll when
idle, between batches when busy), so the time since it last did tells a live loop from a stuck
one (a hung exporter, a deadlock), which a process-is-up check would not.
"""

import time
from typing import NamedTuple

from tetra.agent.commands import CommandQueue

STALLED_AFTER = 5.0  # seconds without a loop iteration before health says so


class Health(NamedTuple):
    status: str  # Tetragon's HealthStatusResult names: HEALTH_STATUS_RUNNING, _STOPPED, _ERROR
    details: str

    @property
    def running(self) -> bool:
        return self.status == "HEALTH_STATUS_RUNNING"


def check(commands: CommandQueue, stopping: bool) -> Health:
    idle = time.monotonic() - commands.last_run
    if stopping:
        return Health("HEALTH_STATUS_STOPPED", "the agent is stopping")
    if idle > STALLED_AFTER:
        return Health("HEALTH_STATUS_ERROR", f"the agent loop has not run for {idle:.0f}s")
    return Health("HEALTH_STATUS_RUNNING", "running")
