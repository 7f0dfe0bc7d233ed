"""Where the agent's policies get their compiled objects: the cache, else a build beside the agent.

A policy whose object is in the cache loads in tens of milliseconds, with no
clang; one that is not is built in a process of its own (tetra/sensors/build.py)
and the object kept for the next start. Builds run while cores are free,
policies that can share a module (same defines and flags) in batches spread
over them; a batch that fails is built again one policy at a time, so that one
policy's error is never another's. Without a usable cache (the flag empty, the
directory not root's alone), policies are compiled by bcc in the agent as they
always could be: the same programs, only slower.
"""

import logging
import os
from dataclasses import dataclass, field

from tetra.errors import TetraError
from tetra.sensors.bpfobj import ObjectSpec
from tetra.sensors.build import Build, BuildRequest
from tetra.sensors.objcache import CacheUnusable, ObjectCache, cache_key, environment

log = logging.getLogger(__name__)


@dataclass(eq=False)
class ObjectJob:
    """One policy's object: found in the cache, being built, waiting for a core, or failed (``error``)."""

    name: str
    request: BuildRequest
    key: str
    spec: ObjectSpec | None = None
    origin: str = "cache"  # cache | built | compiled (its build failed: bcc compiles it in the agent)
    building: bool = False
    solo: bool = False  # its batch failed: built alone
    error: str = ""

    @property
    def done(self) -> bool:
        return self.spec is not None or bool(self.error)


@dataclass
class PolicyObjects:
    """The cache (None: disabled or unusable), the process sensor's shared map descriptors, the builds."""

    cache: ObjectCache | None
    shared: dict[str, int] = field(default_factory=dict)
    workers: int = max(1, os.cpu_count() or 1)  # builds at once
    _env: dict[str, str] | None = None
    _running: list[tuple[Build, list[ObjectJob]]] = field(default_factory=list)

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

    def job(self, name: str, request: BuildRequest) -> ObjectJob:
        """The job of one policy, done already when its object is in the cache."""
        assert self.cache is not None
        if self._env is None:
            self._env = environment()
        key = cache_key(request.text, list(request.cflags), self._env)
        return ObjectJob(name, request, key, self.cache.get(key))

    def build_now(self, job: ObjectJob) -> None:
        """Build ``job`` and wait for it (the calls that answer only once the policy is in)."""
        job.origin = "built"
        try:
            (job.spec,) = Build([job.request]).wait()
        except TetraError as err:
            job.error = str(err)
        self._built(job)

    def start(self, jobs: list[ObjectJob]) -> None:
        """Builds for those of ``jobs`` that wait for one, while cores are free."""
        free = self.workers - len(self._running)
        waiting = [job for job in jobs if not job.done and not job.building]
        if free <= 0 or not waiting:
            return
        size = -(-len(waiting) // free)
        groups: dict[object, list[ObjectJob]] = {}
        for job in waiting:
            groups.setdefault(id(job) if job.solo else job.request.batch_key, []).append(job)
        batches = [group[i:i + size] for group in groups.values() for i in range(0, len(group), size)]
        for batch in batches[:free]:
            for job in batch:
                job.building, job.origin = True, "built"
            self._running.append((Build([job.request for job in batch]), batch))

    def poll(self) -> None:
        """Check the builds without waiting: the jobs of those over are done (or back to wait, alone)."""
        for build, batch in list(self._running):
            try:
                specs = build.poll()
            except TetraError as err:
                self._drop(build)
                self._failed(batch, str(err))
                continue
            if specs is not None:
                self._drop(build)
                for job, spec in zip(batch, specs):
                    job.building, job.spec = False, spec
                    self._built(job)

    def cancel(self, live: set[int]) -> None:
        """Stop the builds none of whose jobs is in ``live`` (ids of the jobs still wanted)."""
        for build, batch in list(self._running):
            if not any(id(job) in live for job in batch):
                build.cancel()
                self._drop(build)

    def _drop(self, build: Build) -> None:
        self._running = [r for r in self._running if r[0] is not build]

    def _failed(self, batch: list[ObjectJob], error: str) -> None:
        for job in batch:
            job.building = False
            if len(batch) > 1:
                job.solo = True
            else:
                job.error = error
                self._built(job)
        if len(batch) > 1:
            log.info("%d policies compiled together failed (%s); building them one by one", len(batch),
                     error.splitlines()[-1] if error else "")

    def _built(self, job: ObjectJob) -> None:
        """A build is over: its object into the cache, or the reason it failed into the log."""
        if job.spec is not None:
            assert self.cache is not None
            self.cache.put(job.key, job.spec)
        else:
            log.warning("policy %s: its object could not be built (%s); compiling it in the agent",
                        job.name, job.error.splitlines()[-1] if job.error else "")
            job.origin = "compiled"
