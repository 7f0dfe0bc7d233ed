"""Where the agent's policies get their compiled objects: the cache, else a build beside the agent.

A policy whose object is in the cache loads in tens of milliseconds, with no
clang; one that is not is built in a process of its own (tetra/sensors/build.py)
and the object kept for the next start. Without a usable cache (the flag
empty, the directory not root's alone), policies are compiled by bcc in the
agent as they always could be: the same programs, only slower.
"""

import logging
import os
from dataclasses import dataclass, field

from tetra.sensors.bpfobj import ObjectSpec
from tetra.sensors.build import Build, BuildRequest
from tetra.sensors.objcache import CacheUnusable, ObjectCache, cache_key, environment

log = logging.getLogger(__name__)


@dataclass
class PolicyObjects:
    """The cache (None: disabled or unusable) and the process sensor's shared map descriptors."""

    cache: ObjectCache | None
    shared: dict[str, int] = field(default_factory=dict)
    workers: int = max(1, os.cpu_count() or 1)  # builds at once
    _env: dict[str, str] | None = None

    @classmethod
    def open(cls, directory: str | None) -> "PolicyObjects":
        if not directory:
            log.info("policy cache off: policies are compiled in the agent at every start")
            return cls(None)
        try:
            return cls(ObjectCache(directory))
        except CacheUnusable as err:
            log.error("policy cache refused: %s; policies are compiled in the agent at every start", err)
            return cls(None)

    @property
    def usable(self) -> bool:
        return self.cache is not None and bool(self.shared)

    def key(self, request: BuildRequest) -> str:
        if self._env is None:
            self._env = environment()
        return cache_key(request.text, list(request.cflags), self._env)

    def get(self, key: str) -> ObjectSpec | None:
        assert self.cache is not None
        return self.cache.get(key)

    def put(self, key: str, spec: ObjectSpec) -> None:
        assert self.cache is not None
        self.cache.put(key, spec)

    @staticmethod
    def build(requests: list[BuildRequest]) -> Build:
        return Build(requests)
