"""Tag drift: how resources' tags changed since a baseline snapshot, how much it matters, and who did it.

``detect_drift`` compares two views of the same scope: the baseline's per-resource tag state (from
the store) and the current resources. It is pure given its inputs: who changed a tag comes from an
injected ``TagChangeEvents`` port (``CloudTrailTagEvents`` in production, an in-memory fake in
tests: moto does not implement CloudTrail ``LookupEvents``).

Severity is judged with the compliance engine under the policy given (the current one), on the
resource before and after the change:

- critical: a tag required for the resource's type now fails the policy because of this change
  (it was removed, its new value is invalid, or its key lost its exact case);
- warning: a required tag's valid value was replaced by another valid value, or a prohibited tag
  was added or changed;
- info: a required tag was fixed (it failed the policy before, it passes now), and every change
  to an optional tag or a tag the policy does not name.

A key that changed only in case (``environment`` -> ``Environment``) is one ``changed`` drift with
``previous_key`` set, not a removal plus an addition. Resources that appeared or disappeared since
the baseline are listed apart (``resources_added`` / ``resources_removed``): they are not tag drift.

``choose_baseline`` picks the snapshot to compare with: the latest one of the same scope taken at
or before ``now - lookback_days``.


One module per part; this package re-exports their public names.
"""

from .baseline import choose_baseline
from .detection import detect_drift
from .events import (
    CLOUDTRAIL_DELIVERY_NOTE,
    CLOUDTRAIL_RETENTION,
    MAX_REASON_CHARS,
    TAG_EVENT_NAMES,
    CloudTrailTagEvents,
    TagChangeEvent,
    TagChangeEvents,
    TagEventsIncompleteError,
    TagEventsUnavailableError,
    parse_cloudtrail_event,
    tag_event_names_for,
)
from .results import (
    SEVERITY_ORDER,
    Attribution,
    DriftChange,
    DriftResult,
    DriftSeverity,
    ResourceChange,
    TagDrift,
)

__all__ = [
    "CLOUDTRAIL_DELIVERY_NOTE",
    "CLOUDTRAIL_RETENTION",
    "MAX_REASON_CHARS",
    "SEVERITY_ORDER",
    "TAG_EVENT_NAMES",
    "Attribution",
    "CloudTrailTagEvents",
    "DriftChange",
    "DriftResult",
    "DriftSeverity",
    "ResourceChange",
    "TagChangeEvent",
    "TagChangeEvents",
    "TagDrift",
    "TagEventsIncompleteError",
    "TagEventsUnavailableError",
    "choose_baseline",
    "detect_drift",
    "parse_cloudtrail_event",
    "tag_event_names_for",
]
