"""The identity story end to end: anonymous browsing on two devices → form submit → identify → email click →
CRM sync adds the company; every projection agrees, and a fold killed mid-way then restarted equals a rebuild."""

from __future__ import annotations

import asyncio
import random
import signal
import uuid

import httpx
import pytest

from ingest import keys as log_keys
from ingest.ids import event_id, ulids
from ingest.log import EventLog
from ingest.schema import Event
from projections.counters import keys as counter_keys
from projections.events import keys as event_keys
from projections.fold.progress import checkpoints, log_heads, wait_until_folded
from projections.fold.rebuild import rebuild_and_compare
from projections.identity import keys as identity_keys
from projections.identity import membership_of, read_contact_ids_of_events, read_enrichments
from projections.identity.docs import decode_company, decode_contact
from projections.keyspace import Keyspace

from .conftest import WorkspaceKeys, fold_process, new_workspace

T0 = 1_777_000_000_000  # 2026-04-24


def m(kind: str, ts_s: int, **fields: object) -> dict[str, object]:
    ts = f"2026-04-24T{ts_s // 3600:02d}:{ts_s // 60 % 60:02d}:{ts_s % 60:02d}.000Z"
    return {"type": kind, "messageId": str(uuid.uuid4()), "timestamp": ts, **fields}


def page(anon: str, path: str, ts_s: int) -> dict[str, object]:
    return m("page", ts_s, anonymousId=anon, properties={"url": f"https://engines.io{path}", "path": path})


async def send_scenario(client: httpx.AsyncClient, ws: WorkspaceKeys) -> None:
    """Each step its own request, as the real sources send them."""
    auth = (ws.write_key, "")
    steps: list[tuple[str, object]] = [
        ("/v1/batch", {"batch": [page("phone", "/?utm_source=ads", 60), page("phone", "/pricing", 120)]}),
        ("/v1/batch", {"batch": [page("laptop", "/blog", 3600), page("laptop", "/docs", 3660)]}),
        ("/v1/track", m("track", 3700, anonymousId="laptop", event="form_submit", properties={"form": "demo"})),
        ("/v1/identify", m("identify", 3701, anonymousId="laptop", userId="u-ada",
                           traits={"email": "Ada@engines.io", "firstName": "Ada", "lastName": "Lovelace"})),
        ("/v1/identify", m("identify", 7200, anonymousId="phone", userId="u-ada")),  # she signs in on the phone
        ("/v1/sources/email/sendgrid", [{"email": "ada@engines.io", "event": "click", "sg_event_id": "sg-click-1",
                                         "timestamp": T0 // 1000 + 9000, "url": "https://engines.io/launch?utm_medium=email"}]),
        ("/v1/sources/crm/sync", {"crm": "hubspot",
                                  "companies": [{"external_id": "co-1", "name": "Analytical Engines", "domain": "engines.io"}],
                                  "contacts": [{"email": "ada@engines.io", "external_id": "hs-ada", "company_external_id": "co-1",
                                                "updated_at": "2026-04-25T00:00:00Z"}]}),
    ]  # fmt: skip
    for path, body in steps:
        r = await client.post(path, json=body, auth=auth)
        assert r.status_code == 200, (path, r.text)


async def check_every_projection(client: httpx.AsyncClient, ws: WorkspaceKeys) -> None:
    h = {"Authorization": f"Bearer {ws.read_key}"}

    async def get(path: str, **params: object) -> dict:
        r = await client.get(path, params=params, headers=h)
        assert r.status_code == 200, r.text
        return r.json()

    (ada,) = (await get("/v1/contacts"))["contacts"]
    assert (ada["firstname"], ada["lastname"], ada["email"]) == ("Ada", "Lovelace", "ada@engines.io")
    assert ada["anonymous_ids"] == ["laptop", "phone"] and ada["user_ids"] == ["u-ada"]
    assert ada["external_ids"] == ["hs-ada"]
    (co,) = (await get("/v1/companies"))["companies"]
    assert ada["company"] == {"_id": co["_id"], "name": "Analytical Engines", "domain": "engines.io"}
    # 4 page views + form_submit + email_click, the anonymous ones identified retroactively
    assert ada["events_count"] == 6
    assert (await get("/v1/events", count_only="true"))["count"] == 6
    assert (await get("/v1/events", identified_only="true", count_only="true"))["count"] == 6
    assert (await get("/v1/events", contact_id=ada["_id"], count_only="true"))["count"] == 6
    stats = (await get("/v1/events/stats", identified_only="true"))["stats"]
    assert stats["total"] == 6
    listing = (await get("/v1/events", sort_dir="asc"))["events"]
    assert [e["event"] for e in listing] == ["page_view"] * 4 + ["form_submit", "email_click"]
    for e in listing:
        assert e["internal_contact_id"] == ada["_id"]
        assert e["contact"] == {"_id": ada["_id"], "firstname": "Ada", "lastname": "Lovelace"}
        assert e["company"] == {"_id": co["_id"], "name": "Analytical Engines", "domain": "engines.io"}
    first = (await get(f"/v1/events/{listing[0]['_id']}"))["event"]
    assert first["contact"]["_id"] == ada["_id"] and first["company"]["_id"] == co["_id"]
    summary = (await get("/v1/events", fields="summary", limit=1))["events"][0]
    assert summary["contact_id"] == ada["_id"] and "contact" not in summary and "company" not in summary


def ks_of(settings, ws: WorkspaceKeys) -> Keyspace:
    return Keyspace(settings.key_prefix, log_keys.partition_of(ws.id, settings.partitions))


async def test_the_identity_story_reaches_every_projection(client, workspace, folded, settings, redis):
    await send_scenario(client, workspace)
    await folded()
    await check_every_projection(client, workspace)
    live, rebuilt, _ = await rebuild_and_compare(
        redis, settings.key_prefix, ks_of(settings, workspace).partition
    )
    assert live == rebuilt


async def test_the_story_folded_step_by_step_equals_it_folded_at_once(
    client, workspace, folded, settings, redis
):
    """Step by step the fold identifies earlier batches' events (moves); a rebuild does it inside one batch."""
    auth = (workspace.write_key, "")
    await send_scenario(client, workspace)
    await folded()
    for i in range(3):  # and once more through a merge: a second identity aliased into Ada's
        r = await client.post(
            "/v1/track", json=m("track", 9500 + i, anonymousId="tablet", event="read"), auth=auth
        )
        assert r.status_code == 200
        await folded()
    r = await client.post(
        "/v1/identify", json=m("identify", 9600, userId="ada-2", anonymousId="tablet"), auth=auth
    )
    await folded()
    r = await client.post("/v1/alias", json=m("alias", 9700, userId="u-ada", previousId="ada-2"), auth=auth)
    assert r.status_code == 200
    await folded()
    h = {"Authorization": f"Bearer {workspace.read_key}"}
    (ada,) = (await client.get("/v1/contacts", headers=h)).json()["contacts"]
    assert ada["events_count"] == 9 and ada["user_ids"] == ["ada-2", "u-ada"] and len(ada["merged_ids"]) == 1
    live, rebuilt, _ = await rebuild_and_compare(
        redis, settings.key_prefix, ks_of(settings, workspace).partition
    )
    assert live == rebuilt


# ---------------------------------------------------------------- crash in the middle of identity churn


def churn(n_entries: int, seed: int) -> list[list[Event]]:
    """Entries of 6 events mixing anonymous pages, tracks, identifies (shared emails), aliases, groups and
    email events: every identity rule fires many times, across and within batches."""
    rng = random.Random(seed)
    entries = []
    for k in range(n_entries):
        ids = ulids(6, T0 + k)
        events = []
        for i, u in enumerate(ids):
            anon = f"anon-{rng.randrange(150)}"
            user = f"user-{rng.randrange(40)}"
            ts = T0 + rng.randrange(0, 10 * 86_400_000)
            base = {"id": event_id(u), "message_id": f"m-{seed}-{k}-{i}", "timestamp": ts, "received_at": ts}
            roll = rng.random()
            if roll < 0.4:
                e = Event(
                    kind="page",
                    event="page_view",
                    anonymous_id=anon,
                    url="https://a.io/x",
                    domain="a.io",
                    **base,
                )
            elif roll < 0.6:
                e = Event(
                    kind="track",
                    event="click",
                    anonymous_id=anon,
                    user_id=user if rng.random() < 0.5 else None,
                    **base,
                )
            elif roll < 0.78:
                traits = {"email": f"p{rng.randrange(50)}@b{rng.randrange(4)}.io", "lastName": f"L{rng.randrange(9)}",
                          "profile_field_16": rng.randrange(100)}  # fmt: skip
                e = Event(kind="identify", event="identify", anonymous_id=anon,
                          user_id=user if rng.random() < 0.8 else None, traits=traits, **base)  # fmt: skip
            elif roll < 0.84:
                e = Event(
                    kind="alias", event="alias", user_id=user, previous_id=f"user-{rng.randrange(40)}", **base
                )
            elif roll < 0.9:
                e = Event(kind="group", event="group", user_id=user, group_id=f"g{rng.randrange(5)}",
                          traits={"name": f"G{rng.randrange(3)}", "domain": f"b{rng.randrange(4)}.io"}, **base)  # fmt: skip
            else:
                e = Event(kind="track", event="email_open", source="email:sendgrid",
                          email=f"p{rng.randrange(50)}@b{rng.randrange(4)}.io", **base)  # fmt: skip
            events.append(e)
        entries.append(events)
    return entries


async def consistent(redis, ks: Keyspace, ws: str) -> None:
    """Cross-projection invariants: every identified event has a contact, every contact's events are identified,
    and the identified counters equal the identified index."""
    idf = await redis.zcard(event_keys.index_identified(ks, ws))
    evc = await redis.hlen(identity_keys.event_contacts(ks, ws))
    assert idf == evc
    total_counted = identified_counted = 0
    for day in await redis.zrange(counter_keys.counter_days(ks, ws), 0, -1):
        for cell, n in (await redis.hgetall(counter_keys.counter_day(ks, ws, day.decode()))).items():
            assert int(n) > 0, "a counter cell at zero must be deleted"
            total_counted += int(n)
            identified_counted += int(n) if cell.endswith(b"1") else 0
    assert total_counted == await redis.zcard(event_keys.index_all(ks, ws))
    assert identified_counted == idf
    in_contacts = 0
    for cid in await redis.zrange(identity_keys.contact_list(ks, ws), 0, -1):
        in_contacts += await redis.zcard(event_keys.index_contact(ks, ws, cid.decode()))
    assert in_contacts == idf
    for raw in (
        await redis.hgetall(identity_keys.contacts(ks, ws))
    ).values():  # company members follow the documents
        doc = decode_contact(raw)
        where = membership_of(doc)
        if where is not None:
            assert await redis.zscore(identity_keys.company_members(ks, ws, where), doc.id) is not None


async def test_killing_the_fold_mid_way_through_identity_churn_changes_nothing(settings, redis):
    ws = await new_workspace(settings, redis)
    log = EventLog(redis, settings)
    for events in churn(400, seed=5):
        await log.append(ws.id, events)
    heads = await log_heads(redis, settings.key_prefix, settings.partitions)
    ks = ks_of(settings, ws)

    proc = fold_process(settings, batch_entries=3)
    try:
        for _ in range(6000):
            if (await checkpoints(redis, settings.key_prefix, settings.partitions)).get(ks.partition):
                break
            await asyncio.sleep(0.005)  # sleep-ok: polling the checkpoint, the condition we wait for
        else:
            pytest.fail("the applier never committed")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    ck = await checkpoints(redis, settings.key_prefix, settings.partitions)
    assert ck[ks.partition] != heads[ks.partition], "the kill came after the fold had finished"

    proc = fold_process(settings, batch_entries=3)
    try:
        await wait_until_folded(redis, settings.key_prefix, settings.partitions, timeout=120, targets=heads)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    live, rebuilt, n = await rebuild_and_compare(redis, settings.key_prefix, ks.partition)
    assert n == 400 and live == rebuilt
    await consistent(redis, ks, ws.id)
    assert await redis.zcard(identity_keys.contact_list(ks, ws.id)) > 10
    merged = [
        d for d in (await redis.hgetall(identity_keys.contacts(ks, ws.id))).values() if b'"merged_into"' in d
    ]
    assert merged, "the churn should have merged contacts"
    await enrichment_agrees_with_the_documents(redis, ks, ws.id)


async def enrichment_agrees_with_the_documents(redis, ks: Keyspace, ws: str) -> None:
    """The Events API's page enrichment (one script) names the contact and company the documents name: each
    event's contact followed to its survivor, and that contact's explicit company, else the company owning its
    email's domain (worked out here from the raw hashes, apart from the script)."""
    ids = sorted(f"evt_{k.decode()}" for k in await redis.hkeys(identity_keys.event_contacts(ks, ws)))
    ids.append("evt_01AAAAAAAAAAAAAAAAAAAAAAAA")  # an event without a contact
    enriched = await read_enrichments(redis, ks, ws, ids)
    by_event = await read_contact_ids_of_events(redis, ks, ws, ids)
    contacts = {
        k.decode(): decode_contact(v)
        for k, v in (await redis.hgetall(identity_keys.contacts(ks, ws))).items()
    }
    companies = {
        k.decode(): decode_company(v)
        for k, v in (await redis.hgetall(identity_keys.companies(ks, ws))).items()
    }
    company_map = {
        k.decode(): v.decode() for k, v in (await redis.hgetall(identity_keys.company_map(ks, ws))).items()
    }
    with_company = 0
    for eid in ids:
        c = contacts.get(by_event.get(eid, ""))
        while c is not None and c.merged_into:
            c = contacts.get(c.merged_into)
        co = None
        if c is not None:
            explicit = c.fields.get("company_id")
            email = c.fields.get("email")
            co_id = explicit or (company_map.get(f"d:{email.rpartition('@')[2]}") if email else None)
            co = companies.get(co_id or "")
        with_company += co is not None
        assert enriched[eid].contact_id == (c.id if c else None), eid
        assert (enriched[eid].company or {}).get("_id") == (co.id if co else None), eid
    assert enriched[ids[-1]].contact is None and with_company > 0
