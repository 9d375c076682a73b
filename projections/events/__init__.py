"""The events projection: time-ordered indices of every listed event (`indices`), the text index over page
URLs (`search`), the list query run server-side (`query`), and events read back from the log (`store`).

What other packages use is imported here; the rest is the package's own.
"""

from .expiry import KEEP_ALL, Expiry, Keep, apply_expiry, horizon_of, read_expiries
from .indices import MovedEvents, apply_contact_moves, apply_events
from .query import EventQuery, Facets, SortBy, count_by_type_and_domain, count_matching, find_event_page
from .search import apply_search, read_known_signatures
from .store import (
    event_ids_of,
    read_contact_event_counts,
    read_event,
    read_event_types,
    read_events_at,
    read_members,
)

__all__ = [
    "KEEP_ALL",
    "EventQuery",
    "Keep",
    "Expiry",
    "Facets",
    "MovedEvents",
    "SortBy",
    "apply_contact_moves",
    "apply_expiry",
    "apply_events",
    "apply_search",
    "count_by_type_and_domain",
    "count_matching",
    "event_ids_of",
    "find_event_page",
    "horizon_of",
    "read_expiries",
    "read_contact_event_counts",
    "read_event",
    "read_event_types",
    "read_events_at",
    "read_known_signatures",
    "read_members",
]
