"""`streamfold dlq list|show|replay|drop`: dead letters with their reason; a replay after a fix gets the entry
folded, a replay of what this version still cannot read is refused; drop removes one for good."""

from __future__ import annotations

import asyncio
import json
import subprocess

from ingest import keys as log_keys
from ingest.schema import encode_events

from .cli_helpers import common_flags, streamfold
from .factories import make_events


async def dlq(settings, *args: str) -> subprocess.CompletedProcess[str]:
    """The command in a thread, so the test's applier keeps folding meanwhile."""
    return await asyncio.to_thread(streamfold, "dlq", *args, *common_flags(settings))


async def poison(redis, settings, workspace_id: str, *, seed: int = 1, n: int = 5) -> str:
    """Append an entry whose events are fine but whose format version no release knows; returns its log id."""
    p = log_keys.partition_of(workspace_id, settings.partitions)
    fields = {b"w": workspace_id.encode(), b"v": b"99", b"d": encode_events(make_events(n, seed=seed))}
    return (await redis.xadd(log_keys.log(settings.key_prefix, p), fields)).decode()


async def count(client, ws) -> int:
    r = await client.get("/v1/events", params={"count_only": "true"}, headers={"X-API-Key": ws.read_key})
    return r.json()["count"]


async def test_a_poison_entry_is_listed_with_its_reason_and_shown_with_its_fields(
    client, workspace, settings, redis, folded
):
    entry = await poison(redis, settings, workspace.id)
    await folded()
    p = log_keys.partition_of(workspace.id, settings.partitions)

    listed = await dlq(settings, "list")
    assert listed.returncode == 0, listed.stderr
    (line,) = listed.stdout.splitlines()
    ref = line.split()[0]
    assert ref.startswith(f"{p}/") and f"entry {entry}" in line and f"workspace {workspace.id}" in line
    assert "unknown log entry version b'99'" in line
    (doc,) = json.loads((await dlq(settings, "list", "--json")).stdout)
    assert (doc["ref"], doc["entry"], doc["workspace"]) == (ref, entry, workspace.id)

    shown = json.loads((await dlq(settings, "show", ref, "--json")).stdout)
    assert shown["fields"]["w"] == workspace.id and shown["fields"]["v"] == "99"
    assert shown["events"] is None and "unknown log entry version" in shown["decode_error"]
    text = await dlq(settings, "show", ref)
    assert text.returncode == 0 and "reason" in text.stdout and "cannot be decoded" in text.stdout


async def test_replay_after_a_fix_gets_the_entry_folded_and_removes_the_dead_letter(
    client, workspace, settings, redis, folded
):
    await poison(redis, settings, workspace.id, n=5)
    await folded()
    assert await count(client, workspace) == 0
    (doc,) = json.loads((await dlq(settings, "list", "--json")).stdout)

    refused = await dlq(settings, "replay", doc["ref"])  # this version cannot read it either
    assert refused.returncode == 1 and "still cannot be read" in refused.stderr
    assert refused.stderr.count("\n") == 1

    # the fix: here the dead letter's fields are rewritten as a release that can read them would see them
    p, dlq_key = doc["partition"], log_keys.dead_letters(settings.key_prefix, doc["partition"])
    ((_, fields),) = await redis.xrange(dlq_key)
    await redis.xdel(dlq_key, doc["id"])
    fixed = (await redis.xadd(dlq_key, {**fields, b"v": b"1"})).decode()

    replayed = await dlq(settings, "replay", f"{p}/{fixed}")
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout.startswith(f"replayed {p}/{fixed} as log entry {p}/")
    await folded()
    assert await count(client, workspace) == 5
    assert await redis.xlen(dlq_key) == 0
    assert (await dlq(settings, "list")).stdout.strip() == "no dead letters"


async def test_a_forced_replay_of_an_unreadable_entry_comes_back_as_a_new_dead_letter(
    client, workspace, settings, redis, folded
):
    await poison(redis, settings, workspace.id)
    await folded()
    (before,) = json.loads((await dlq(settings, "list", "--json")).stdout)
    forced = await dlq(settings, "replay", "--all", "--force")
    assert forced.returncode == 0, forced.stderr
    await folded()
    (after,) = json.loads((await dlq(settings, "list", "--json")).stdout)
    assert after["id"] != before["id"] and after["entry"] != before["entry"]
    assert after["reason"] == before["reason"]


async def test_drop_removes_dead_letters_with_yes_and_asks_otherwise(
    client, workspace, settings, redis, folded
):
    for seed in (1, 2, 3):
        await poison(redis, settings, workspace.id, seed=seed)
    await folded()
    refs = [d["ref"] for d in json.loads((await dlq(settings, "list", "--json")).stdout)]
    assert len(refs) == 3

    unasked = await dlq(settings, "drop", refs[0])  # no terminal to ask on
    assert unasked.returncode == 2 and "--yes" in unasked.stderr and unasked.stderr.count("\n") == 1
    dropped = await dlq(settings, "drop", refs[0], "--yes")
    assert dropped.returncode == 0 and dropped.stdout.strip() == f"dropped {refs[0]}"
    assert [d["ref"] for d in json.loads((await dlq(settings, "list", "--json")).stdout)] == refs[1:]

    again = await dlq(settings, "drop", refs[0], "--yes")
    assert again.returncode == 2 and again.stderr.strip() == f"error: no dead letter {refs[0]}"
    assert (await dlq(settings, "drop", "--all", "--yes")).returncode == 0
    assert (await dlq(settings, "list")).stdout.strip() == "no dead letters"


async def test_dlq_misuse_is_one_line_with_exit_code_2(settings, redis):
    for args, message in (
        (("show", "3-0"), "PARTITION/ID"),
        (("show", f"{settings.partitions}/1-0"), "outside"),
        (("replay",), "--all"),
        (("drop", "0/1-0", "--all"), "--all"),
        (("show", "0/1-0"), "no dead letter 0/1-0"),
        (("list", "--partition", "99"), "outside"),
    ):
        out = await dlq(settings, *args)
        assert out.returncode == 2 and out.stderr.count("\n") == 1 and message in out.stderr, (
            args,
            out.stderr,
        )
