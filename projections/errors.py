"""The fold's own failures, under the one root `StreamfoldError` (see `ingest/errors.py`)."""

from __future__ import annotations

from ingest.errors import StreamfoldError


class PoisonEntry(StreamfoldError):
    """A log entry the fold cannot decode or that violates an invariant; it goes to the dead-letter stream."""

    code = "poison_entry"


class FenceLost(StreamfoldError):
    """This applier no longer owns the partition; a newer owner holds the fence."""

    code = "fence_lost"
