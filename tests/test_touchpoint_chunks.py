"""The touchpoints projection's storage: chunked sorted sets stay small and listpack-encoded whatever their size,
their layout depends only on the order members were added, and ranges read back exactly; binary records
round-trip."""

from __future__ import annotations

import random

import pytest
from redis.asyncio import Redis

from ingest.ids import ulid
from ingest.settings import Settings
from projections.keyspace import Keyspace
from projections.located import Located, stream_id, ulid_bytes, ulid_text
from projections.touchpoints import keys
from projections.touchpoints.chunks import CHUNK_MAX, queue_adds, read_ranges
from projections.touchpoints.classify import Classified
from projections.touchpoints.records import (
    MAX_SORT_MS,
    MEMBER_MAX,
    ConversionRecord,
    anonymous_fields,
    classified,
    conversion_member,
    decode_ad_doc,
    decode_conversion_doc,
    event_key,
    key_of_text,
    key_text,
    position_offset,
    read_conversion_member,
    read_touch_member,
    touch_head,
    touch_member,
)
from projections.updates import Updates

from .attribution_helpers import page

N = 1500


def _members(n: int, seed: int) -> list[bytes]:
    """`n` members with keys of a few hundred distinct milliseconds (ties too) and tails of varied length."""
    rng = random.Random(seed)
    return [
        rng.randrange(400).to_bytes(6, "big") + rng.randbytes(16) + rng.randbytes(rng.randrange(0, 12))
        for _ in range(n)
    ]


def _sets(settings: Settings) -> keys.ChunkedSets:
    return keys.tp_chains(Keyspace(settings.key_prefix, 0), "ws_test")


async def _add(redis: Redis, sets: keys.ChunkedSets, name: str, members: list[bytes], batch: int) -> None:
    for i in range(0, len(members), batch):
        u = Updates()
        queue_adds(u, sets, {name: members[i : i + batch]})
        async with redis.pipeline(transaction=True) as pipe:
            u.queue(pipe)
            await pipe.execute()


async def _contents(redis: Redis, sets: keys.ChunkedSets, name: str) -> dict[str, list[bytes]]:
    """Every key of a set and its members."""
    first, directory = sets.first_key(name), sets.directory_key(name)
    out = {first: await redis.zrange(first, 0, -1), directory: await redis.zrange(directory, 0, -1)}
    for n in range(1, len(out[directory]) + 1):
        out[sets.chunk_key(name, n)] = await redis.zrange(sets.chunk_key(name, n), 0, -1)
    return out


@pytest.mark.parametrize("in_order", [True, False], ids=["appended in order", "added at random"])
async def test_a_big_set_is_kept_in_small_listpack_chunks(redis, settings, in_order):
    members = _members(N, 1)
    if in_order:
        members.sort()
    sets = _sets(settings)
    await _add(redis, sets, "v", members, 97)
    chunks = await _contents(redis, sets, "v")
    del chunks[sets.directory_key("v")]
    assert len(chunks) > N // CHUNK_MAX
    for key, held in chunks.items():
        assert 0 < len(held) <= CHUNK_MAX
        assert await redis.object("encoding", key) == b"listpack"
    assert sorted(m for held in chunks.values() for m in held) == sorted(members)
    assert await redis.smembers(sets.split) == {b"v"}
    if in_order:  # appending fills every chunk but the last
        assert sorted(map(len, chunks.values()))[1:] == [CHUNK_MAX] * (len(chunks) - 1)


async def test_layout_depends_only_on_the_order_members_came_in(redis, settings):
    members = _members(N, 2)
    sets = _sets(settings)
    await _add(redis, sets, "a", members, 1000)
    await _add(redis, sets, "b", members, 7)
    ca, cb = await _contents(redis, sets, "a"), await _contents(redis, sets, "b")
    assert list(ca.values()) == list(cb.values())


def _order(bound: bytes) -> tuple[int, bytes, int]:
    """Where a bound lies: lo must not lie above hi."""
    if bound in (b"-", b"+"):
        return (0 if bound == b"-" else 2, b"", 0)
    return (1, bound[1:], 0 if bound[:1] == b"[" else 1)


def _bound(rng: random.Random, members: list[bytes]) -> bytes:
    kind = rng.randrange(5)
    if kind == 0:
        return rng.choice([b"-", b"+"])
    m = rng.choice(members)
    x = m[: rng.choice([6, 22, len(m)])]  # a time prefix, a whole key, or a whole member
    return rng.choice([b"[", b"("]) + x


def _expected(members: list[bytes], lo: bytes, hi: bytes, rev: bool, count: int) -> list[bytes]:
    def above(m: bytes) -> bool:
        return lo == b"-" or (lo != b"+" and (m >= lo[1:] if lo[:1] == b"[" else m > lo[1:]))

    def below(m: bytes) -> bool:
        return hi == b"+" or (hi != b"-" and (m <= hi[1:] if hi[:1] == b"[" else m < hi[1:]))

    out = sorted((m for m in members if above(m) and below(m)), reverse=rev)
    return out if count < 0 else out[:count]


async def test_ranges_read_exactly_what_one_sorted_set_would_give(redis, settings):
    members = _members(N, 3)
    sets = _sets(settings)
    await _add(redis, sets, "big", members, 250)
    await _add(redis, sets, "small", members[:50], 250)
    held = {"big": members, "small": members[:50], "none": []}
    rng = random.Random(4)
    for _ in range(40):
        rev, count = rng.random() < 0.5, rng.choice([-1, 1, 5, 130, 400])
        ranges, expected = [], []
        for _ in range(8):
            name = rng.choice(["big", "big", "small", "none"])
            lo, hi = sorted([_bound(rng, members), _bound(rng, members)], key=_order)
            ranges.append((name, lo, hi))
            expected.append(_expected(held[name], lo, hi, rev, count))
        assert await read_ranges(redis, sets, ranges, rev=rev, count=count) == expected


def test_ulids_round_trip_through_their_16_bytes():
    for _ in range(1000):
        u = ulid()
        assert ulid_text(ulid_bytes(u)) == u
    assert ulid_bytes("00000000000000000000000000") == bytes(16)
    assert ulid_text(b"\xff" * 16) == "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"


def test_key_text_orders_like_the_key_bytes():
    keys_ = sorted(
        t.to_bytes(6, "big") + ulid_bytes(ulid()) for t in (0, 1, 10**12, MAX_SORT_MS) for _ in range(5)
    )
    texts = [key_text(k) for k in keys_]
    assert texts == sorted(texts)
    assert [key_of_text(t) for t in texts] == keys_
    assert key_of_text(texts[0] + "~") == keys_[0] + b"\xff"


def _located(ts: int, entry_ms_after: int = 0, seq: int = 0) -> Located:
    e = page(ts, "a1")
    entry_ms = int.from_bytes(ulid_bytes(e.id[4:])[:6], "big") + entry_ms_after
    return Located(e, f"{entry_ms}-{seq}", 3)


@pytest.mark.parametrize(
    "ts, entry_ms_after, seq",
    [(1_780_000_000_000, 0, 0), (1_780_000_000_000, 3, 2), (-5, 0, 0), (MAX_SORT_MS + 9, 7, 0)],
    ids=["plain", "later entry", "before 1970", "far future"],
)
def test_a_touchpoint_member_tells_its_time_source_and_log_position(ts, entry_ms_after, seq):
    loc = _located(ts, entry_ms_after, seq)
    member, doc = touch_member(event_key(loc), ts, position_offset(loc), touch_head(Classified("direct")))
    ref = read_touch_member(member)
    assert (ref.key[6:], ref.ts, ref.source, ref.entry) == (loc.key, ts, "direct", stream_id(loc.entry_id))
    assert doc is None and not ref.has_ad_fields
    if (ts, entry_ms_after, seq) == (1_780_000_000_000, 0, 0):
        assert len(member) == 23  # key and source byte: nothing else to say


def test_ad_hierarchy_fields_ride_in_the_member_when_they_fit_else_in_a_document():
    loc = _located(1_780_000_000_000)
    key, position = event_key(loc), position_offset(loc)
    short = Classified("google_ads", campaign_name="brand", ad_name="ad 7")
    member, doc = touch_member(key, 1_780_000_000_000, position, touch_head(short))
    ref = read_touch_member(member)
    assert doc is None and len(member) <= MEMBER_MAX
    assert ref.has_ad_fields and classified(ref.source, ref.ad) == short
    long = Classified("facebook_ads", campaign_id="120210000000000001", campaign_name="spring sale " * 4)
    member, doc = touch_member(key, 1_780_000_000_000, position, touch_head(long))
    ref = read_touch_member(member)
    assert doc is not None and len(member) <= MEMBER_MAX
    assert (
        ref.has_ad_fields and ref.ad is None and classified(ref.source, decode_ad_doc(doc.encode())) == long
    )


def test_a_conversion_too_big_for_a_member_keeps_its_record_in_a_document():
    key = event_key(_located(1_780_000_000_000))
    small = ConversionRecord(anonymous_id="anon-1", user_id="user-1", url=17)
    member, doc = conversion_member(key, small)
    assert doc is None and len(member) <= MEMBER_MAX
    assert read_conversion_member(member) == (key, small)
    big = ConversionRecord(
        anonymous_id="3f0c1e9a-5b7d-4c2e-9a1f-0e8d7c6b5a49", user_id="someone@example.com", url=3
    )
    member, doc = conversion_member(key, big)
    assert doc is not None and len(member) <= MEMBER_MAX
    assert read_conversion_member(member)[0] == key and read_conversion_member(member)[1].spilled
    assert decode_conversion_doc(doc.encode()) == big


def test_a_browser_uuid_anonymous_id_fits_in_the_member_and_reads_back_exactly():
    key = event_key(_located(1_780_000_000_000))
    for anonymous_id, packed in (
        ("3f0c1e9a-5b7d-4c2e-9a1f-0e8d7c6b5a49", True),  # analytics.js: lowercase UUID v4
        ("3F0C1E9A-5B7D-4C2E-9A1F-0E8D7C6B5A49", False),  # not as UUID() writes it: kept as sent
        ("{3f0c1e9a-5b7d-4c2e-9a1f-0e8d7c6b5a}", False),
        ("anon-1", False),
        (None, False),
    ):
        record = ConversionRecord(user_id="user-12345", url=3, **anonymous_fields(anonymous_id))
        assert (record.anonymous_uuid is not None) == packed and record.anonymous == anonymous_id
        member, doc = conversion_member(key, record)
        assert len(member) <= MEMBER_MAX
        if packed:
            # key, then the array: its header, the id (18 bytes, not 37), nil, the user id (11), the url id
            assert doc is None and len(member) == 22 + 1 + 18 + 1 + 11 + 1
        back = read_conversion_member(member)[1] if doc is None else decode_conversion_doc(doc.encode())
        assert back.anonymous == anonymous_id and back.user_id == "user-12345"
