"""The export chain: every filter flag of the agent, applied to each event in Tetragon's order.

Tetragon redacts arguments when a process enters its cache, filters with the
allow and deny lists, applies field filters, and rate-limits in the exporter
(pkg/server, pkg/exporter). The chain gives the same output with less work per
event:

* redaction runs first only when a filter reads arguments (``arguments_regex``,
  ``parent_arguments_regex``), which must see them redacted as Tetragon's do;
  otherwise it runs after the events dropped by filters or the rate limit are
  gone;
* the rate limit runs before field filters: it does not look at the event, so
  the same events pass, and dropped ones are not reshaped for nothing.

Stages not configured are skipped; with none the event comes back as it is.
``filtered_out`` and ``rate_limited`` count the events each stage dropped;
``cel_errors`` the filters' CEL evaluations that failed (each a non-match).
"""

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tetra.filters import FilterError
from tetra.filters.events import ExportFilter, parse_filter_list
from tetra.filters.fields import FieldFilters, parse_field_filters
from tetra.filters.ratelimit import RateLimiter
from tetra.filters.redact import Redactor, parse_redaction_filters

if TYPE_CHECKING:  # imported when an expression is compiled (tetra.filters.events)
    from tetra.filters.cel import Schema

Event = dict[str, Any]


class ExportChain:
    """Allow/deny, redaction, rate limit and field filters over the agent's event stream."""

    def __init__(self, export: ExportFilter | None = None, redactor: Redactor | None = None,
                 fields: FieldFilters | None = None, limiter: RateLimiter | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.export = export if export is not None and (export.allow or export.deny) else None
        redactor = redactor if redactor is not None and redactor.rules else None
        early = self.export is not None and self.export.reads_arguments
        self._redact_early = redactor if early else None
        self._redact_late = None if early else redactor
        self.fields = fields if fields is not None and fields.filters else None
        self.limiter = limiter
        self.clock = clock
        self.filtered_out = 0
        self.rate_limited = 0
        # Whether a stage looks at events (the rate limit only counts them): if none does,
        # an exporter takes events as the pipeline made them, without their dict (ChainSink).
        self.reads_events = (self.export is not None or redactor is not None or self.fields is not None)

    @classmethod
    def from_flags(cls, *, node_name: str, allowlist: str = "", denylist: str = "", field_filters: str = "",
                   redaction_filters: str = "", rate_limit: int = -1, enable_pid_set: bool = False,
                   cel_schema: "Schema | None" = None,
                   clock: Callable[[], float] = time.monotonic) -> "ExportChain":
        """The chain for the agent's flags, named as Tetragon names them.

        Empty strings configure nothing and ``rate_limit`` < 0 means no limit;
        ``cel_schema`` gives the event types of ``cel_expression`` (tetra.filters.cel).
        Problems in all the flags are reported together in one FilterError.
        """
        issues: list[str] = []

        def parse(parser: Callable[..., Any], text: str, *args: Any, **kwargs: Any) -> Any:
            try:
                return parser(text, *args, **kwargs)
            except FilterError as err:
                issues.extend(err.issues)
                return None

        allow = parse(parse_filter_list, allowlist, "--export-allowlist", enable_pid_set=enable_pid_set,
                      cel_schema=cel_schema)
        deny = parse(parse_filter_list, denylist, "--export-denylist", enable_pid_set=enable_pid_set,
                     cel_schema=cel_schema)
        redactor = parse(parse_redaction_filters, redaction_filters, "--redaction-filters",
                         enable_pid_set=enable_pid_set)
        fields = parse(parse_field_filters, field_filters, "--field-filters")
        if issues:
            raise FilterError(issues)
        limiter = RateLimiter(rate_limit, node_name, clock()) if rate_limit >= 0 else None
        return cls(ExportFilter(allow, deny), redactor, fields, limiter, clock)

    def process(self, event: Event) -> Event | None:
        """The event to export (a new dict if a stage changed it), or None if it is dropped."""
        if self._redact_early is not None:
            event = self._redact_early.apply(event)
        if self.export is not None and not self.export.accepts(event):
            self.filtered_out += 1
            return None
        if not self.admit():
            return None
        if self._redact_late is not None:
            event = self._redact_late.apply(event)
        if self.fields is not None:
            event = self.fields.apply(event)
        return event

    @property
    def cel_errors(self) -> int:
        return self.export.cel_errors if self.export is not None else 0

    def admit(self) -> bool:
        """The rate limit's verdict on the next event, counted; all a chain that does not
        read events (``reads_events``) does."""
        if self.limiter is not None and not self.limiter.admit(self.clock()):
            self.rate_limited += 1
            return False
        return True

    def ticks(self, now: float) -> list[Event]:
        """Events the chain itself emits when time passes: a rate_limit_info report after drops.

        They bypass the filters, as Tetragon's reporter writes them straight to the encoder.
        """
        report = self.limiter.report(now) if self.limiter is not None else None
        return [report] if report is not None else []
