"""Export filtering as Tetragon does it: which events leave the agent, and in what shape.

One event goes through the chain in this order (``ExportChain.process``)::

    event ──► redaction ──► allow/deny ──► rate limit ──► field filters ──► sink
              (arguments)   (ExportFilter)  (token bucket)  (include/exclude)
                 │               │                │
                 │               └ filtered_out   └ rate_limited, and a rate_limit_info
                 │                                  event once a minute (ExportChain.ticks)
                 └ here when a filter reads arguments, which must see them redacted
                   (Tetragon redacts in its process cache, before any filter); else
                   just after the rate limit, so dropped events cost no redaction

Each stage returns the event it was given when it changes nothing; a stage that
changes something builds new dicts along the changed paths only and shares the
rest with its input, which is never modified: events are shared between sinks.

Modules: ``events`` (filter lists: ``--export-allowlist``/``--export-denylist``)
with ``checks`` (one per key) and ``labels`` (Kubernetes label selectors);
``fields`` (``--field-filters``, ``-f``/``-F``); ``redact`` (``--redaction-filters``);
``ratelimit`` (``--export-rate-limit``); ``chain`` (all of them in order);
``clientside`` (``tetra getevents`` options); ``reader`` and ``eventtypes``
(reading flag values, event type names); ``cel`` and ``celvalues``
(``cel_expression``: bounded CEL over events typed by Tetragon's .proto).

Every configuration mistake is a ``FilterError`` carrying all problems found, each
as ``source:line: key: message``.
"""

from tetra.errors import TetraError


class FilterError(TetraError):
    """A filter flag's value is invalid; ``issues`` holds every problem found, in order.

    Defined before the submodules are imported below, because they raise it.
    """

    def __init__(self, issues: list[str]) -> None:
        self.issues = issues
        super().__init__("\n".join(issues))


from tetra.filters.chain import ExportChain  # noqa: E402
from tetra.filters.clientside import ClientFilter  # noqa: E402
from tetra.filters.events import EventFilter, ExportFilter, parse_filter_list  # noqa: E402
from tetra.filters.fields import FieldFilters, apply_fields, parse_field_filters  # noqa: E402
from tetra.filters.ratelimit import RateLimiter  # noqa: E402
from tetra.filters.redact import Redactor, parse_redaction_filters  # noqa: E402

__all__ = [
    "ClientFilter", "EventFilter", "ExportChain", "ExportFilter", "FieldFilters", "FilterError", "RateLimiter",
    "Redactor", "apply_fields", "parse_field_filters", "parse_filter_list", "parse_redaction_filters",
]
