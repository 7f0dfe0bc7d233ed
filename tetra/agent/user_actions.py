"""GetUrl and DnsLookup: the requests a matching selector asks the agent to make.

Tetragon uses them as canaries and notification hooks (a webhook hit when a
honeypot file is opened). The kernel only posts the event, its action
KPROBE_ACTION_GETURL / KPROBE_ACTION_DNSLOOKUP; the URL or name never reaches
the generated C: it stays in the policy the agent holds, found by the record's
(policy, hook, selector). Tetragon makes the request in its event reader; here
the reader never waits on the network:

    reader thread ── submit ──> token bucket of the action ──> bounded queue ──> one worker thread
                                 └ over the rate: rate_limited   └ full: dropped_queue_full   ├ done
                                                                                               └ failed
    close: what is still queued is dropped_at_close

so an attacker who can trigger the hook cannot make the agent a flood source,
and every request not made is counted (status, /metrics). Tetragon has no
metric for these.

What a request is, and why:
- GetUrl: HTTP GET with a timeout (per socket operation), redirects not followed
  (a 3xx answer is done: the named server was reached), at most BODY_BYTES of the
  body read, and no proxy from the environment: the request goes where the policy
  says, not where an inherited HTTP_PROXY of the agent would send it. A 4xx/5xx
  answer or no answer is failed.
- DnsLookup: the node's own resolver (getaddrinfo), its timeouts those of
  resolv.conf; Tetragon asks 1.1.1.1 directly, which a node without Internet
  cannot, and which bypasses the operator's DNS.
- The policy's monitor mode does not stop them: they are not enforcement, and
  Tetragon's monitor mode only elides enforcement actions.
- A replay (``tetra replay``) makes none: the pipeline there has no UserActions.
"""

import http.client
import logging
import queue
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tetra import __version__
from tetra.compiler.plan import HookPlan
from tetra.policy.model import Action

log = logging.getLogger(__name__)

QUEUE_SIZE = 256  # requests waiting for the worker
TIMEOUT_S = 5.0  # of each socket operation of a GET
BODY_BYTES = 4096  # of a GET's answer read before it is closed
PER_SECOND = 1.0  # requests one action of a policy may make a second, after its burst
BURST = 5  # requests one action may make at once
# (policy id, hook id, selector index, action index): one action of one loaded policy
ActionId = tuple[int, int, int, int]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect ends the request: its 3xx answer is the result (urllib raises it as an HTTPError)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


# no ProxyHandler of the environment's proxies: an empty one replaces the default
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def get_url(url: str, timeout: float) -> None:
    """An HTTP GET of url; raises OSError (urllib's errors are ones) when it failed."""
    request = urllib.request.Request(url, headers={"User-Agent": f"tetra/{__version__}"})
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            response.read(BODY_BYTES)
    except urllib.error.HTTPError as answer:
        answer.close()
        if answer.code >= 400:
            raise


def dns_lookup(fqdn: str, timeout: float) -> None:
    """The node's resolver's addresses of fqdn; raises OSError (socket.gaierror) when it has none.
    getaddrinfo takes no timeout: resolv.conf's apply."""
    socket.getaddrinfo(fqdn, None, proto=socket.IPPROTO_TCP)


# action word -> (what it does, the policy's value it does it with)
PERFORMERS: dict[str, tuple[Callable[[str, float], None], Callable[[Action], str | None]]] = {
    "GetUrl": (get_url, lambda action: action.arg_url),
    "DnsLookup": (dns_lookup, lambda action: action.arg_fqdn),
}


def agent_actions(hook: HookPlan) -> tuple[tuple[Action, ...], ...]:
    """Each selector's GetUrl and DnsLookup actions, by selector index (the record's ``selector``);
    empty when no selector has one (the hook's events need nothing more)."""
    by_selector = tuple(tuple(a for a in sel.match_actions if a.action in PERFORMERS) for sel in hook.selectors)
    return by_selector if any(by_selector) else ()


@dataclass
class _Bucket:
    """A token bucket: BURST tokens, refilled at PER_SECOND."""

    tokens: float
    last: float


@dataclass(frozen=True)
class _Request:
    word: str
    target: str


class UserActions:
    """The worker that makes the requests, its queue, rate limits and counters.

    ``submit`` runs on the agent thread (with the policies' listener calls); the worker
    thread only takes from the queue. The counters are shared, under a lock."""

    def __init__(self, queue_size: int = QUEUE_SIZE, timeout: float = TIMEOUT_S, per_second: float = PER_SECOND,
                 burst: int = BURST, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout = timeout
        self.per_second = per_second
        self.burst = burst
        self.clock = clock
        self._queue: queue.Queue[_Request] = queue.Queue(queue_size)
        self._buckets: dict[ActionId, _Bucket] = {}
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="tetra-user-actions", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop; what is still queued is counted as dropped_at_close. A request being made is not
        waited for long (the agent's stop would wait on a slow server): it is counted when it ends."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(min(self.timeout, 1.0))
        while True:
            try:
                request = self._queue.get_nowait()
            except queue.Empty:
                break
            self._count(request.word, "dropped_at_close")

    def submit(self, policy_id: int, hook_id: int, selector: int, actions: Sequence[Action]) -> None:
        """The actions of the selector a record matched: queued, or counted as not made. Never blocks."""
        now = self.clock()
        for index, action in enumerate(actions):
            value = PERFORMERS[action.action][1](action)
            if value is None:  # the loader requires it; a policy made in code might not have it
                continue
            if not self._admit((policy_id, hook_id, selector, index), now):
                self._count(action.action, "rate_limited")
                continue
            try:
                self._queue.put_nowait(_Request(action.action, value))
            except queue.Full:
                self._count(action.action, "dropped_queue_full")

    def counts(self) -> Mapping[tuple[str, str], int]:
        """(action word, outcome) -> requests so far; a copy."""
        with self._lock:
            return dict(self._counts)

    def policy_added(self, policy_id: int, name: str, hooks: Sequence[HookPlan]) -> None:
        pass

    def policy_removed(self, policy_id: int) -> None:
        """Its buckets go with it (a policy id is not reused while the agent runs, but memory would grow)."""
        for key in [key for key in self._buckets if key[0] == policy_id]:
            del self._buckets[key]

    def _admit(self, key: ActionId, now: float) -> bool:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.last) * self.per_second)
        bucket.last = now
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

    def _count(self, word: str, outcome: str) -> None:
        with self._lock:
            self._counts[word, outcome] += 1

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                request = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            perform, _ = PERFORMERS[request.word]
            try:
                perform(request.target, self.timeout)
            except (OSError, ValueError, http.client.HTTPException) as err:  # urllib's errors are OSErrors
                log.debug("%s %s failed: %s", request.word, request.target, err)
                self._count(request.word, "failed")
            else:
                self._count(request.word, "done")
