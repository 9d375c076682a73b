"""Forgetting a person: after `DELETE /v1/contacts/{id}` is done, no endpoint returns any of them, stats equal a
recount of what remains, no Redis value and no archive file holds their email, user id or anonymous ids, a
rebuild reaches the live digest without bringing them back, later events of theirs are suppressed (other
people's in the same batch are kept), and a fold killed mid-way finishes the work once."""

from __future__ import annotations

import asyncio
import signal
import time

import httpx
import msgspec
import polars as pl
import pytest

from ingest import keys as log_keys
from ingest.archive import Archive
from ingest.log import entry_fields
from ingest.workspaces import WorkspaceRegistry
from projections.fold import keys as fold_keys
from projections.fold.archiver import archive_partition
from projections.fold.progress import wait_until_folded
from projections.fold.rebuild import rebuild_and_compare
from projections.keyspace import Keyspace
from projections.located import DAY_MS

from .conftest import WorkspaceKeys, fold_process, make_settings, new_workspace
from .factories import make_events
from .test_identity_scenario import m, send_scenario

ADA = [b"ada@engines.io", b"Ada@engines.io", b"u-ada", b"phone", b"laptop", b"hs-ada"]


@pytest.fixture
def settings(redis_url, tmp_path):
    return make_settings(redis_url, archive_dir=str(tmp_path / "archive"))


def keyspace(settings, ws: WorkspaceKeys) -> Keyspace:
    return Keyspace(settings.key_prefix, log_keys.partition_of(ws.id, settings.partitions))


async def ada_and_bob(client: httpx.AsyncClient, redis, settings, ws: WorkspaceKeys) -> None:
    """Ada: anonymous pages on her phone ten days ago (archived by now), then browsing on two devices, an
    identify on each, an email click, a CRM record with custom fields and a purchase. Bob: his own traffic."""
    ks = keyspace(settings, ws)
    stream = log_keys.log(settings.key_prefix, ks.partition)
    old = time.time_ns() // 1_000_000 - 10 * DAY_MS
    history = [
        msgspec.structs.replace(e, anonymous_id="phone", user_id=None)
        for e in make_events(5, seed=1, start_ms=old)
    ]
    await redis.xadd(stream, entry_fields(ws.id, history), id=f"{old}-0")
    bob = [
        msgspec.structs.replace(e, anonymous_id="bob-device", user_id="u-bob")
        for e in make_events(5, seed=2, start_ms=old)
    ]
    await redis.xadd(stream, entry_fields(ws.id, bob), id=f"{old}-1")
    await send_scenario(client, ws)
    auth = (ws.write_key, "")
    batch = {"batch": [
        m("track", 8000, userId="u-ada", event="purchase", properties={"revenue": 42, "order_id": "o-1"}),
        m("identify", 8001, userId="u-bob", anonymousId="bob-device", traits={"email": "bob@example.org"}),
        m("page", 8002, anonymousId="bob-device", properties={"url": "https://engines.io/pricing"}),
    ]}  # fmt: skip
    assert (await client.post("/v1/batch", json=batch, auth=auth)).status_code == 200
    crm = {"crm": "hubspot", "contacts": [{"email": "ada@engines.io", "external_id": "hs-ada", "profile_field_1": "champion",
                                          "updated_at": "2026-04-26T00:00:00Z"}]}  # fmt: skip
    assert (await client.post("/v1/sources/crm/sync", json=crm, auth=auth)).status_code == 200


async def wait_done(client, ws, admin: str, deletion_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        r = await client.get(f"/v1/deletions/{deletion_id}", headers={"Authorization": f"Bearer {admin}"})
        assert r.status_code == 200, r.text
        if r.json()["deletion"]["status"] == "done":
            return r.json()["deletion"]
        assert time.monotonic() < deadline, r.json()
        await asyncio.sleep(0.05)  # sleep-ok: polling the deletion's status, the condition we wait for


async def every_value(redis, prefix: str) -> list[bytes]:
    """Every key name and every value under the prefix, read by type (no compression in the way)."""
    out: list[bytes] = []
    async for key in redis.scan_iter(match=f"{prefix}:*", count=1000):
        out.append(key)
        t = (await redis.type(key)).decode()
        if t == "hash":
            out += [x for kv in (await redis.hgetall(key)).items() for x in kv]
        elif t == "zset":
            out += await redis.zrange(key, 0, -1)
        elif t == "set":
            out += list(await redis.smembers(key))
        elif t == "string":
            out.append(await redis.get(key) or b"")
        elif t == "list":
            out += await redis.lrange(key, 0, -1)
        elif t == "stream":
            for _, fields in await redis.xrange(key):
                from ingest.log import F_DATA, F_VERSION, entry_events

                out += list(fields.values())
                if F_DATA in fields and fields.get(b"v") in (b"1", b"2"):
                    out += [
                        msgspec.json.encode(e) for e in entry_events(fields.get(F_VERSION), fields[F_DATA])
                    ]
        out.append(await redis.dump(key) or b"")
    return out


async def test_a_forgotten_person_is_gone_everywhere_and_stays_gone(client, redis, settings, folded):
    ws = await new_workspace(settings, redis)
    admin = await WorkspaceRegistry(redis, settings).create_key(ws.id, ["admin"])
    await ada_and_bob(client, redis, settings, ws)
    await folded()
    ks = keyspace(settings, ws)
    archive = Archive(settings.archive_root)
    assert (
        await archive_partition(redis, settings.key_prefix, ks.partition, archive, after_days=3)
    ).days == 1
    h = {"Authorization": f"Bearer {ws.read_key}"}
    contacts = (await client.get("/v1/contacts", headers=h)).json()["contacts"]
    ada = next(c for c in contacts if "u-ada" in c["user_ids"])
    ada_events = [
        e["_id"]
        for e in (
            await client.get("/v1/events", params={"contact_id": ada["_id"], "limit": 100}, headers=h)
        ).json()["events"]
    ]
    assert len(ada_events) >= 8
    before = await every_value(redis, settings.key_prefix)
    assert all(
        any(x in v for v in before) for x in (b"u-ada", b"phone", b"ada@engines.io")
    )  # not a vacuous search

    # the wrong scope, an unknown id, another workspace's id
    assert (await client.delete(f"/v1/contacts/{ada['_id']}", headers=h)).status_code == 403
    a = {"Authorization": f"Bearer {admin}"}
    assert (await client.delete("/v1/contacts/ct_nobody", headers=a)).status_code == 404
    other = await new_workspace(settings, redis)
    other_admin = await WorkspaceRegistry(redis, settings).create_key(other.id, ["admin"])
    r = await client.delete(f"/v1/contacts/{ada['_id']}", headers={"Authorization": f"Bearer {other_admin}"})
    assert r.status_code == 404 and r.json()["status"] == "error"

    r = await client.delete(f"/v1/contacts/{ada['_id']}", headers=a)
    assert r.status_code == 202 and r.json()["status"] == "accepted"
    # suppressed from the moment the request is accepted, while the fold is still forgetting her
    during = {"batch": [m("track", 8999, userId="u-ada", event="during_deletion")]}
    assert (await client.post("/v1/batch", json=during, auth=(ws.write_key, ""))).status_code == 200
    done = await wait_done(client, ws, admin, r.json()["deletion_id"])
    assert done["log_events"] + done["archive_events"] >= 12 and done["archive_files"] == 1

    # no endpoint returns any of her
    assert (await client.get(f"/v1/contacts/{ada['_id']}", headers=h)).status_code == 404
    listed = (await client.get("/v1/events", params={"limit": 100}, headers=h)).json()
    assert listed["events"] and not {e["_id"] for e in listed["events"]} & set(ada_events)
    for eid in ada_events:
        assert (await client.get(f"/v1/events/{eid}", headers=h)).status_code == 404
    remaining = (await client.get("/v1/contacts", headers=h)).json()["contacts"]
    assert [c["user_ids"] for c in remaining] == [["u-bob"]]
    stats = (await client.get("/v1/events/stats", headers=h)).json()["stats"]
    assert stats["total"] == listed["pagination"]["total_items"] == sum(d["count"] for d in stats["by_day"])
    attribution_key = await WorkspaceRegistry(redis, settings).create_key(ws.id, ["attribution:read"])
    rows = (await client.get("/public-api/v1/events", params={"start_date": "2000-01-01 00:00:00", "end_date": "2100-01-01 00:00:00"},
                             headers={"Authorization": f"Bearer {attribution_key}"})).json()["data"]  # fmt: skip
    assert not {row["id"] for row in rows} & set(ada_events)
    exported = await client.get("/v1/export", headers=h)
    assert not any(x in exported.content for x in ADA)

    # no Redis value, no archive file holds her
    values = await every_value(redis, settings.key_prefix)
    assert not [v for v in values if any(x in v for x in ADA)]
    for path in archive.root.rglob("*.parquet"):
        assert not any(x in path.read_bytes() for x in ADA)
        text = pl.read_parquet(path).select(pl.all().cast(pl.String)).write_csv().encode()
        assert not any(x in text for x in ADA) and b"bob" in text

    # a rebuild (archive + log) reaches the live digest and does not bring her back
    live, rebuilt, _ = await rebuild_and_compare(redis, settings.key_prefix, ks.partition, archive=archive)
    assert live == rebuilt

    # her later events are suppressed; Bob's in the same batch are kept
    later = {"batch": [
        m("track", 9000, userId="u-ada", event="came_back"),
        m("page", 9001, anonymousId="laptop", properties={"url": "https://engines.io/again"}),
        m("track", 9002, userId="u-bob", event="stayed"),
    ]}  # fmt: skip
    assert (await client.post("/v1/batch", json=later, auth=(ws.write_key, ""))).status_code == 200
    await folded()
    names = {
        e["event"]
        for e in (await client.get("/v1/events", params={"limit": 100}, headers=h)).json()["events"]
    }
    assert "stayed" in names and not {"came_back", "during_deletion"} & names
    sup = (await client.get("/v1/suppressions", headers=a)).json()
    assert sup["dropped_events"] == 3 and len(sup["suppressions"]) >= 4
    assert not any(x.decode() in str(sup) for x in ADA)
    lifted = sup["suppressions"][0]["hash"]
    assert (await client.delete(f"/v1/suppressions/{lifted}", headers=a)).status_code == 200
    assert (await client.delete(f"/v1/suppressions/{lifted}", headers=a)).status_code == 404


async def test_a_fold_killed_mid_deletion_finishes_it_once(redis, settings):
    ws = await new_workspace(settings, redis)
    ks = keyspace(settings, ws)
    stream = log_keys.log(settings.key_prefix, ks.partition)
    now = time.time_ns() // 1_000_000
    for k in range(400):  # a long log, so the rewrite takes a while
        events = [
            msgspec.structs.replace(e, anonymous_id=f"a{k % 7}", user_id=f"u{k % 7}")
            for e in make_events(20, seed=k, start_ms=now)
        ]
        await redis.xadd(stream, entry_fields(ws.id, events), id=f"{now - 400 + k}-0")
    proc = fold_process(settings, batch_entries=50)
    try:
        await wait_until_folded(redis, settings.key_prefix, settings.partitions, timeout=120)
        from ingest.deletions import DeletionRequests
        from ingest.log import EventLog
        from projections.identity import read_contact_ids_of_events  # noqa: F401

        (contact,) = [c.decode() for c in await redis.zrange(f"{ks.base}:w:{ws.id}:ct:ix", 0, 0)]
        deletion_id = await DeletionRequests(redis, settings.key_prefix).request(
            EventLog(redis, settings), ws.id, contact, suppress=True, hashes={}
        )
        for _ in range(20_000):  # wait until the job is past identifying, then kill the fold
            raw = await redis.hget(fold_keys.forgetting(ks), deletion_id)
            if raw is not None and b'"step": "identify"' not in raw:
                break
            await asyncio.sleep(0.002)  # sleep-ok: polling the job's recorded step
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert await redis.hget(fold_keys.forgetting(ks), deletion_id) is not None, (
        "the kill came after the job ended"
    )
    proc = fold_process(settings, batch_entries=50)
    try:
        for _ in range(30_000):
            status = await DeletionRequests(redis, settings.key_prefix).status(ws.id, deletion_id)
            if status["status"] == "done":
                break
            await asyncio.sleep(0.005)  # sleep-ok: polling the deletion's status
        assert status["status"] == "done"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert await redis.hlen(fold_keys.forgetting(ks)) == 0
    live, rebuilt, _ = await rebuild_and_compare(redis, settings.key_prefix, ks.partition)
    assert live == rebuilt
    assert not await redis.zscore(f"{ks.base}:w:{ws.id}:ct:ix", contact)


async def test_the_cli_asks_for_a_deletion_and_refuses_an_unknown_contact(
    client, redis, settings, folded, capsys
):
    from api.cli import main as cli_main

    ws = await new_workspace(settings, redis)
    auth = (ws.write_key, "")
    assert (
        await client.post("/v1/identify", json=m("identify", 10, userId="u-x"), auth=auth)
    ).status_code == 200
    await folded()
    h = {"Authorization": f"Bearer {ws.read_key}"}
    (contact,) = (await client.get("/v1/contacts", headers=h)).json()["contacts"]
    base = [
        "--redis-url",
        settings.redis_url,
        "--key-prefix",
        settings.key_prefix,
        "--partitions",
        str(settings.partitions),
    ]
    assert await asyncio.to_thread(cli_main, ["contact", "delete", *base, ws.id, "ct_nobody"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert (
        await asyncio.to_thread(cli_main, ["contact", "delete", *base, ws.id, contact["_id"], "--wait"]) == 0
    )
    assert '"status": "done"' in capsys.readouterr().out
    assert (await client.get(f"/v1/contacts/{contact['_id']}", headers=h)).status_code == 404
