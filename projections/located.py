"""What every projection folds: an event with its log position (`Located`), and how positions are written.

A log entry id `<ms>-<seq>` orders entries (`stream_id`); an event's position is (entry id, index in entry).
Index members write the event id and its position short (`member_of`; `parse_member` reads them back).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ingest.schema import EVENT_KINDS, Event

ULID_LEN = 26
# Crockford base32 (ULIDs) → the digits int(…, 32) reads
_TO_BASE32 = str.maketrans("0123456789ABCDEFGHJKMNPQRSTVWXYZ", "0123456789abcdefghijklmnopqrstuv")


def stream_id(raw: bytes | str) -> tuple[int, int]:
    """A log entry id as (milliseconds, sequence): ids compare in log order."""
    s = raw.decode() if isinstance(raw, bytes) else raw
    ms, _, seq = s.partition("-")
    return int(ms), int(seq or 0)


def ulid_ms(ulid: str) -> int:
    """The millisecond a ULID carries (its first 10 characters)."""
    return int(ulid[:10].translate(_TO_BASE32), 32)


def member_of(ulid: str, entry_id: str, index: int) -> str:
    """`<ULID><ms offset>[,<seq>]:<index>`: the event id, then its log position written short — the entry's
    milliseconds as an offset from the id's (an event is appended within milliseconds of being received, so
    the offset is small and usually empty), its sequence number when not 0, and the index in the entry."""
    ms, _, seq = entry_id.partition("-")
    offset = int(ms) - ulid_ms(ulid)
    return f"{ulid}{offset or ''}{',' + seq if seq and seq != '0' else ''}:{index}"


def parse_member(member: bytes | str) -> tuple[str, str, int]:
    """(ulid, entry id, index) of an index member (`member_of`)."""
    m = member.decode() if isinstance(member, bytes) else member
    ulid = m[:ULID_LEN]
    position, _, idx = m[ULID_LEN:].rpartition(":")
    offset, _, seq = position.partition(",")
    return ulid, f"{ulid_ms(ulid) + int(offset or 0)}-{seq or 0}", int(idx)


@dataclass(slots=True)
class Located:
    """An event with its log position, and the contact the identity projection resolved it to (if any): the
    fold sets `contact_id` once identity has run, before any other projection sees the event."""

    event: Event
    entry_id: str
    index: int
    contact_id: str | None = None
    ulid: str = field(init=False, repr=False, compare=False)  # the event id without `evt_`
    member: str = field(init=False, repr=False, compare=False)  # its member in the indices

    def __post_init__(self) -> None:
        self.ulid = ulid = self.event.id[4:]
        self.member = member_of(ulid, self.entry_id, self.index)

    @property
    def version(self) -> list[int]:
        """[event timestamp, entry ms, entry seq, index]: last write by event time, ties by log position (a
        list, as the identity documents store it)."""
        ms, seq = stream_id(self.entry_id)
        return [self.event.timestamp, ms, seq, self.index]


def is_listed(event: Event) -> bool:
    """Only tracked interactions are events of the Events API; identify/group/alias feed identity."""
    return event.kind in EVENT_KINDS


def is_identified(located: Located) -> bool:
    """Whether an event counts as linked to a known contact (`identified_only`, `ix:idf`, the counters cube)."""
    return located.contact_id is not None


@dataclass(slots=True)
class ContactMoves:
    """What identity announces at the end of a fold batch, for the projections that keep events by contact:
    contacts of earlier batches merged away (→ their survivor), and anonymous ids linked to a contact for the
    first time (→ that contact), whose earlier anonymous events become the contact's."""

    merged: dict[str, str] = field(default_factory=dict)
    linked: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.merged or self.linked)
