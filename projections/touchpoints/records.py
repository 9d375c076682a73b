"""How the touchpoints projection writes its records: binary chain and conversion-index members, and the few
documents beside them. `chains` encodes them in the fold, `read` decodes them; nothing else knows the layout.

Every member starts with a 22-byte key, event time (6 bytes, big-endian ms) then the event's ULID (16 bytes),
so byte order is (time, id) order and BYLEX ranges on a time prefix select a window. What follows the key is
only what cannot be derived: a touchpoint's source (one byte), its ad hierarchy fields and its log position;
a conversion's visitors, page URL (an id into a per-workspace dictionary), order fields and log position. A log
position is written as an offset from the ULID's millisecond and a sequence number (usually both 0 or tiny),
like `projections.located.member_of` does for events; defaults are left out.
A member stays within MEMBER_MAX bytes so that the small keys holding it keep their listpack encoding; a
conversion that would not fit keeps its record in `keys.conversion_docs` ("spilled").
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import msgspec

from ..located import ULID_LEN, Located, ulid_bytes, ulid_text
from .classify import AD_FIELDS, SOURCES, Classified

KEY_LEN = 22  # time (6) + ULID (16)
MAX_SORT_MS = 9_999_999_999_999  # 13 digits: the cursor form of a key (`key_text`) keeps its width
MEMBER_MAX = 64  # the server's zset-max-listpack-value: a longer member turns its whole key into a skiplist
HAS_AD_FIELDS = (
    0x80  # in a touchpoint's source byte: it has ad hierarchy fields (in the member, or a document)
)
# The stored code of a source is its place in SOURCES: a source added to the vocabulary goes at the end
# (anywhere else, bump PROJECTION_FORMAT).
SOURCE_CODES = {s: i for i, s in enumerate(SOURCES)}
assert len(SOURCES) < HAS_AD_FIELDS


def time_key(ts: int) -> bytes:
    """The 6-byte time prefix of a key (BYLEX bounds of a time range): the time clamped to 0 … MAX_SORT_MS (a
    member whose event time lies outside carries the exact time too)."""
    return min(max(ts, 0), MAX_SORT_MS).to_bytes(6, "big")


def event_key(loc: Located) -> bytes:
    """An event's key: its time, then its ULID's 16 bytes."""
    return time_key(loc.event.timestamp) + loc.key


def key_text(key: bytes) -> str:
    """The text form of a key, `<13-digit ms><ULID>` (cursors and row keys): same order as the bytes."""
    return f"{int.from_bytes(key[:6], 'big'):013d}{ulid_text(key[6:KEY_LEN])}"


def key_of_text(text: str) -> bytes:
    """The bytes a `key_text` stands for, as a BYLEX bound: text past a whole key sorts after every member
    with that key (b'\\xff'); a text holding only the time gives the time prefix."""
    key = int(text[:13]).to_bytes(6, "big")
    if len(text) >= 13 + ULID_LEN:
        key += ulid_bytes(text[13 : 13 + ULID_LEN])
        if len(text) > 13 + ULID_LEN:
            key += b"\xff"
    return key


def ulid_bytes_ms(raw: bytes) -> int:
    """The millisecond in a ULID's bytes (its first 6)."""
    return int.from_bytes(raw[:6], "big")


def position_offset(loc: Located) -> tuple[int, int]:
    """(entry ms − the ULID's ms, entry sequence): the event's log position written short."""
    return loc.entry_ms - int.from_bytes(loc.key[:6], "big"), loc.entry_seq


# ---------------------------------------------------------------- touchpoints


class AdFields(msgspec.Struct, array_like=True, omit_defaults=True, frozen=True):
    """A touchpoint's ad hierarchy, in AD_FIELDS order: in its member when it fits, else in `keys.tp_ad_docs`
    (JSON)."""

    account_id: str | None = None
    account_name: str | None = None
    campaign_id: str | None = None
    campaign_name: str | None = None
    adset_id: str | None = None
    adset_name: str | None = None
    ad_id: str | None = None
    ad_name: str | None = None


assert AdFields.__struct_fields__ == AD_FIELDS


class TouchTail(msgspec.Struct, array_like=True, omit_defaults=True, frozen=True):
    """What a touchpoint member carries after its source byte, when anything is not the default."""

    entry_offset: int = 0
    entry_seq: int = 0
    ad: AdFields | None = None  # its ad hierarchy fields, when the member has room for them
    ts: int | None = None  # the exact event time when the key's is clamped


_enc = msgspec.msgpack.Encoder()
_json = msgspec.json.Encoder()
_DEFAULTS: dict[type, tuple[Any, ...]] = {}


def _trimmed(record: msgspec.Struct) -> list[Any]:
    """A record as the array its member stores, without its trailing default values (msgspec writes every field
    of an array-like struct, `omit_defaults` or not; its decoder gives omitted trailing fields their defaults)."""
    defaults = _DEFAULTS.get(type(record))
    if defaults is None:
        defaults = _DEFAULTS[type(record)] = tuple(f.default for f in msgspec.structs.fields(record))
    values = list(msgspec.structs.astuple(record))
    n = len(values)
    while n and values[n - 1] == defaults[n - 1] and type(values[n - 1]) is type(defaults[n - 1]):
        n -= 1
    del values[n:]
    for i, v in enumerate(values):
        if isinstance(v, msgspec.Struct):
            values[i] = _trimmed(v)
    return values


def _pack(record: msgspec.Struct) -> bytes:
    return _enc.encode(_trimmed(record))


_tail_dec = msgspec.msgpack.Decoder(TouchTail)
_ad_dec = msgspec.json.Decoder(AdFields)
_NO_AD = AdFields()


def touch_head(touch: Classified) -> tuple[bytes, AdFields | None]:
    """What a touchpoint member says of its classification: the source byte, and the ad fields (None: none)."""
    ad = AdFields(*(getattr(touch, f) for f in AD_FIELDS))
    if ad == _NO_AD:
        return bytes((SOURCE_CODES[touch.source],)), None
    return bytes((SOURCE_CODES[touch.source] | HAS_AD_FIELDS,)), ad


def touch_member(
    key: bytes, ts: int, position: tuple[int, int], head: tuple[bytes, AdFields | None]
) -> tuple[bytes, str | None]:
    """A touchpoint's chain member (`key`: `event_key`; `position`: `position_offset`; `head`: `touch_head`),
    and its ad hierarchy document when the fields do not fit in the member (JSON)."""
    code, ad = head
    exact_ts = None if 0 <= ts <= MAX_SORT_MS else ts
    if ad is not None:
        member = key + code + _pack(TouchTail(*position, ad, exact_ts))
        if len(member) <= MEMBER_MAX:
            return member, None
    doc = None if ad is None else _json.encode(ad).decode()
    if position == (0, 0) and exact_ts is None:
        return key + code, doc
    return key + code + _pack(TouchTail(*position, None, exact_ts)), doc


@dataclass(frozen=True, slots=True)
class TouchRef:
    """A touchpoint as its chain member tells it."""

    key: bytes  # KEY_LEN bytes: (time, ULID) order
    ts: int
    source: str
    entry: tuple[int, int]  # its log entry, as `stream_id` gives it
    has_ad_fields: bool
    ad: AdFields | None = None  # its ad hierarchy fields when the member holds them (else a document does)


def read_touch_member(m: bytes) -> TouchRef:
    key = m[:KEY_LEN]
    code = m[KEY_LEN]
    source, has_ad = SOURCES[code & ~HAS_AD_FIELDS], bool(code & HAS_AD_FIELDS)
    if len(m) == KEY_LEN + 1:
        return TouchRef(key, int.from_bytes(key[:6], "big"), source, (ulid_bytes_ms(key[6:]), 0), has_ad)
    t = _tail_dec.decode(m[KEY_LEN + 1 :])
    ts = t.ts if t.ts is not None else int.from_bytes(key[:6], "big")
    return TouchRef(key, ts, source, (ulid_bytes_ms(key[6:]) + t.entry_offset, t.entry_seq), has_ad, t.ad)


def decode_ad_doc(doc: bytes) -> AdFields:
    return _ad_dec.decode(doc)


_PLAIN = {s: Classified(s) for s in SOURCES}


def classified(source: str, ad: AdFields | None) -> Classified:
    """A touchpoint's source with its ad hierarchy fields."""
    if ad is None:
        return _PLAIN[source]
    return Classified(source, *(getattr(ad, f) for f in AD_FIELDS))


# ---------------------------------------------------------------- conversions


class ConversionRecord(msgspec.Struct, array_like=True, omit_defaults=True, frozen=True):
    """What a conversion-index member carries after its key (a msgpack array, trailing defaults left out: the
    fields most conversions have come first); a spilled one carries its position and `spilled` only, and
    `keys.conversion_docs` holds the whole record."""

    anonymous_uuid: bytes | None = None  # an anonymous id that is a UUID as browsers write them, in 16 bytes
    anonymous_id: str | None = None  # any other anonymous id
    user_id: str | None = None
    url: int = 0  # the page URL's id in `keys.conversion_urls` (0: none)
    entry_offset: int = 0
    entry_seq: int = 0
    amount: float = 0.0
    order_id: str | None = None
    order_name: str | None = None
    is_upsell: bool = False
    ts: int | None = None  # the exact event time when the key's is clamped
    spilled: bool = False

    @property
    def anonymous(self) -> str | None:
        """The anonymous id, whichever way it is stored."""
        if self.anonymous_uuid is not None:
            return str(uuid.UUID(bytes=self.anonymous_uuid))
        return self.anonymous_id


def anonymous_fields(anonymous_id: str | None) -> dict[str, Any]:
    """A `ConversionRecord`'s anonymous id fields: analytics.js writes a lowercase UUID (36 characters), kept in
    16 bytes so that the member keeps fitting in MEMBER_MAX; any other id as it is (exactly as sent)."""
    if anonymous_id is not None and len(anonymous_id) == 36:
        try:
            packed = uuid.UUID(anonymous_id)
        except ValueError:
            packed = None
        if packed is not None and str(packed) == anonymous_id:
            return {"anonymous_uuid": packed.bytes}
    return {"anonymous_id": anonymous_id}


_conv_dec = msgspec.msgpack.Decoder(ConversionRecord)
_conv_json_dec = msgspec.json.Decoder(ConversionRecord)


def conversion_member(key: bytes, record: ConversionRecord) -> tuple[bytes, str | None]:
    """A conversion's index member (`key`: `event_key`), and its spilled document (JSON; None: the member holds
    it all)."""
    member = key + _pack(record)
    if len(member) <= MEMBER_MAX:
        return member, None
    short = ConversionRecord(entry_offset=record.entry_offset, entry_seq=record.entry_seq, spilled=True)
    return key + _pack(short), _json.encode(record).decode()


def read_conversion_member(m: bytes) -> tuple[bytes, ConversionRecord]:
    """(key, record) of an index member; a spilled record is read from its document (`decode_conversion_doc`)."""
    return m[:KEY_LEN], _conv_dec.decode(m[KEY_LEN:])


def decode_conversion_doc(doc: bytes) -> ConversionRecord:
    return _conv_json_dec.decode(doc)
