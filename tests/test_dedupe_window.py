"""The messageId dedupe window: a resend within the window (of log time) is stored once, one after it is an event
again, the window's buckets are all the dedupe keeps, and any batching folds to the same digest."""

from __future__ import annotations

import msgspec

from ingest import keys as log_keys
from ingest.log import entry_fields
from projections.events import keys as event_keys
from projections.fold import keys as fold_keys
from projections.fold.fold import fold_entries
from projections.fold.rebuild import digest, rebuild_and_compare
from projections.fold.rules import FoldRules
from projections.keyspace import Keyspace
from projections.located import DAY_MS

from .factories import make_events

DAY0 = 20_600  # days since the epoch (2026-05-25)
WS = "ws_dedupe"


async def append_on_days(redis, settings, days_and_mids: list[tuple[int, str]]) -> Keyspace:
    """One log entry per (day, messageId), its entry id on that log day (as a live append would have it)."""
    ks = Keyspace(settings.key_prefix, log_keys.partition_of(WS, settings.partitions))
    events = make_events(len(days_and_mids), seed=9)
    for i, ((day, mid), e) in enumerate(zip(days_and_mids, events, strict=True)):
        e = msgspec.structs.replace(e, message_id=mid)
        await redis.xadd(
            log_keys.log(settings.key_prefix, ks.partition), entry_fields(WS, [e]), id=f"{day * DAY_MS + i}-0"
        )
    return ks


async def fold_in_chunks(redis, ks: Keyspace, size: int, rules: FoldRules) -> None:
    entries = await redis.xrange(log_keys.log(ks.prefix, ks.partition))
    for i in range(0, len(entries), size):
        await fold_entries(redis, ks, entries[i : i + size], fence=None, ack_group=None, rules=rules)


async def listed(redis, ks: Keyspace) -> int:
    return int(await redis.zcard(event_keys.index_all(ks, WS)))


async def test_a_resend_within_the_window_is_stored_once_and_after_it_again(settings, redis):
    rules = FoldRules(dedupe_window_days=7)
    ks = await append_on_days(
        redis, settings, [(DAY0, "a"), (DAY0 + 7, "a"), (DAY0 + 8, "b"), (DAY0 + 16, "b"), (DAY0 + 16, "c")]
    )
    await fold_in_chunks(redis, ks, 1, rules)
    # a on day 7 is within 7 days of day 0: a duplicate; b on day 16 is 8 days after its first: an event again
    assert await listed(redis, ks) == 4


async def test_the_dedupe_keeps_only_the_buckets_of_the_window(settings, redis):
    rules = FoldRules(dedupe_window_days=2)
    ks = await append_on_days(redis, settings, [(DAY0 + d, f"m{d}") for d in range(10)])
    await fold_in_chunks(redis, ks, 3, rules)
    # buckets of 2 days (DAY0 is even); the window of day 9 reaches back to day 7, so buckets 6–7 and 8–9 stay
    buckets = sorted(int(d) for d in await redis.zrange(fold_keys.message_id_days(ks, WS), 0, -1))
    assert buckets == [DAY0 + 6, DAY0 + 8]
    assert await redis.hgetall(fold_keys.message_ids(ks, WS, DAY0 + 6)) == {
        b"m6": str(DAY0 + 6).encode(),
        b"m7": str(DAY0 + 7).encode(),
    }
    for d in range(6):
        assert not await redis.exists(fold_keys.message_ids(ks, WS, DAY0 + d))


async def test_any_batching_folds_to_the_same_digest_as_a_rebuild(settings, redis):
    rules = FoldRules(dedupe_window_days=3)
    plan = [(DAY0 + d // 3, f"m{(d * 7) % 11}") for d in range(60)]  # messageIds coming back over 20 days
    ks = await append_on_days(redis, settings, plan)
    await fold_in_chunks(redis, ks, 4, rules)
    live, rebuilt, n = await rebuild_and_compare(redis, settings.key_prefix, ks.partition, rules=rules)
    assert n == 60 and live == rebuilt
    one_by_one = ks.rebuild_view("ones")
    entries = await redis.xrange(log_keys.log(ks.prefix, ks.partition))
    for e in entries:
        await fold_entries(redis, one_by_one, [e], fence=None, ack_group=None, rules=rules)
    assert await digest(redis, one_by_one) == live
    # without a retention a batch folds whole, however many log days it spans: still the same
    wide = ks.rebuild_view("wide")
    for i in range(0, len(entries), 17):
        await fold_entries(redis, wide, entries[i : i + 17], fence=None, ack_group=None, rules=rules)
    assert await digest(redis, wide) == live
