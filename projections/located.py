"""What every projection folds: an event with its log position (`Located`), and how positions are written.

A log entry id `<ms>-<seq>` orders entries (`stream_id`); an event's position is (entry id, index in entry).
Index members hold the event's ULID as 16 bytes and its position short (`member_of`; `parse_member` reads them
back); receipt records (`record_of`) are the same facts at a fixed width, for the receipt-ordered strings.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ingest.schema import EVENT_KINDS, Event

DAY_MS = 86_400_000
ULID_LEN = 26  # characters of a ULID's text; 16 bytes as a number
# Crockford base32 (ULIDs) → the digits int(…, 32) reads, and back
_TO_BASE32 = str.maketrans("0123456789ABCDEFGHJKMNPQRSTVWXYZ", "0123456789abcdefghijklmnopqrstuv")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]  # 10 bits → 2 characters
# a receipt record: ULID, entry ms − ULID ms, entry sequence, index in the entry
RECORD = struct.Struct(">16sqII")
# a waiting record: a receipt record, then the event's timestamp
WAITING = struct.Struct(">32sq")


def stream_id(raw: bytes | str) -> tuple[int, int]:
    """A log entry id as (milliseconds, sequence): ids compare in log order."""
    s = raw.decode() if isinstance(raw, bytes) else raw
    ms, _, seq = s.partition("-")
    return int(ms), int(seq or 0)


def ulid_ms(ulid: str) -> int:
    """The millisecond a ULID carries (its first 10 characters)."""
    return int(ulid[:10].translate(_TO_BASE32), 32)


def ulid_bytes(ulid: str) -> bytes:
    """A ULID's 128 bits, big-endian: byte order is the text's order."""
    return int(ulid.translate(_TO_BASE32), 32).to_bytes(16, "big")


def ulid_text(raw: bytes) -> str:
    n = int.from_bytes(raw[:16], "big")
    return "".join([_PAIRS[(n >> s) & 1023] for s in range(120, -1, -10)])  # 13 pairs of characters


_ONE_BYTE = [bytes([n]) for n in range(0x80)]


def _varint(n: int) -> bytes:
    if n < 0x80:  # nearly always: an offset of a few ms, sequence 0, a small index
        return _ONE_BYTE[n]
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _read_varint(raw: bytes, at: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        b = raw[at]
        n |= (b & 0x7F) << shift
        at += 1
        if b < 0x80:
            return n, at
        shift += 7


def member_of(key: bytes, entry_id: str, index: int) -> bytes:
    """An index member: the event's 16-byte ULID, then its log position written short — the entry's
    milliseconds as an offset from the ULID's (an event is appended within milliseconds of being received, so
    the offset is small), the entry's sequence number and the index in the entry, as varints (the offset
    zigzag-encoded). Usually 19 bytes; members sort by ULID."""
    ms, _, seq = entry_id.partition("-")
    return member_at(key, int(ms), int(seq or 0), index)


def member_at(key: bytes, entry_ms: int, entry_seq: int, index: int) -> bytes:
    """`member_of` for an entry id already read as (milliseconds, sequence)."""
    offset = entry_ms - int.from_bytes(key[:6], "big")
    return key + _varint(offset * 2 if offset >= 0 else -offset * 2 - 1) + _varint(entry_seq) + _varint(index)


def parse_member(member: bytes) -> tuple[str, str, int]:
    """(ULID text, entry id, index) of an index member (`member_of`)."""
    zig, at = _read_varint(member, 16)
    seq, at = _read_varint(member, at)
    index, _ = _read_varint(member, at)
    offset = zig >> 1 if not zig & 1 else -((zig + 1) >> 1)
    ms = int.from_bytes(member[:6], "big") + offset
    return ulid_text(member), f"{ms}-{seq}", index


def record_of(key: bytes, entry_id: str, index: int) -> bytes:
    """A fixed-width receipt record (`RECORD`, 32 bytes) of an event: the same facts as its member."""
    ms, _, seq = entry_id.partition("-")
    return RECORD.pack(key, int(ms) - int.from_bytes(key[:6], "big"), int(seq or 0), index)


def member_of_record(record: bytes) -> bytes:
    """The index member of a receipt record."""
    key, offset, seq, index = RECORD.unpack(record)
    zig = offset * 2 if offset >= 0 else -offset * 2 - 1
    return key + _varint(zig) + _varint(seq) + _varint(index)


@dataclass(slots=True)
class Located:
    """An event with its log position, and the contact the identity projection resolved it to (if any): the
    fold sets `contact_id` once identity has run, before any other projection sees the event."""

    event: Event
    entry_id: str
    index: int
    contact_id: str | None = None
    ulid: str = field(init=False, repr=False, compare=False)  # the event id without `evt_`
    key: bytes = field(init=False, repr=False, compare=False)  # that ULID's 16 bytes
    member: bytes = field(init=False, repr=False, compare=False)  # its member in the indices
    entry_ms: int = field(init=False, repr=False, compare=False)  # the entry id, read once
    entry_seq: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.ulid = ulid = self.event.id[4:]
        self.key = key = ulid_bytes(ulid)
        ms, _, seq = self.entry_id.partition("-")
        self.entry_ms, self.entry_seq = int(ms), int(seq or 0)
        self.member = member_at(key, self.entry_ms, self.entry_seq, self.index)

    @property
    def record(self) -> bytes:
        """Its receipt record (`record_of`)."""
        key = self.key
        return RECORD.pack(key, self.entry_ms - int.from_bytes(key[:6], "big"), self.entry_seq, self.index)

    @property
    def waiting_record(self) -> bytes:
        """Its receipt record with its timestamp (`WAITING`)."""
        return WAITING.pack(self.record, self.event.timestamp)

    @property
    def version(self) -> list[int]:
        """[event timestamp, entry ms, entry seq, index]: last write by event time, ties by log position (a
        list, as the identity documents store it)."""
        return [self.event.timestamp, self.entry_ms, self.entry_seq, self.index]


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
