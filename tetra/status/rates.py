"""Events per second, measured by the agent rather than by its clients.

The agent samples its counters every tick; a rate is the growth over the
last WINDOW seconds, so every reader of the status sees the same rate.
"""

from collections import deque
from collections.abc import Mapping

WINDOW = 10.0  # seconds of history behind a rate


class RateMeter:
    """Events per second by type over the last WINDOW seconds, from samples taken every tick."""

    def __init__(self, window: float = WINDOW) -> None:
        self.window = window
        self._samples: deque[tuple[float, dict[str, int]]] = deque()

    def sample(self, now: float, counts: Mapping[str, int]) -> None:
        self._samples.append((now, dict(counts)))
        while len(self._samples) > 1 and now - self._samples[1][0] >= self.window:
            self._samples.popleft()

    def rates(self, now: float, counts: Mapping[str, int]) -> dict[str, float]:
        if not self._samples or now <= self._samples[0][0]:
            return {kind: 0.0 for kind in counts}
        then, before = self._samples[0]
        return {kind: (count - before.get(kind, 0)) / (now - then) for kind, count in counts.items()}
