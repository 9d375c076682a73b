"""The log's entry format: requests of many events are stored zstd-compressed, small ones as they are, and both
read back to the same events (whole, or one event by its index)."""

from __future__ import annotations

from ingest.log import F_DATA, F_VERSION, PLAIN, ZSTD, entry_event_at, entry_events, entry_fields
from ingest.schema import encode_events

from .factories import make_events


def test_a_request_of_many_events_is_stored_compressed_and_reads_back_the_same():
    events = make_events(40, seed=3)
    fields = entry_fields("ws_x", events)
    assert fields[F_VERSION] == ZSTD
    assert len(fields[F_DATA]) * 2 < len(encode_events(events))
    assert entry_events(fields[F_VERSION], fields[F_DATA]) == events
    assert entry_event_at(fields[F_VERSION], fields[F_DATA], 17) == events[17]


def test_a_single_small_event_is_stored_as_it_is():
    (event,) = make_events(1, seed=4)
    fields = entry_fields("ws_x", [event])
    assert fields[F_VERSION] == PLAIN and fields[F_DATA] == encode_events([event])
    assert entry_event_at(fields[F_VERSION], fields[F_DATA], 0) == event


def test_an_unknown_version_is_refused():
    try:
        entry_events(b"9", b"")
    except ValueError as exc:
        assert "version" in str(exc)
    else:
        raise AssertionError("an unknown version must not decode")
