"""`GET /metrics`: Prometheus counters after known traffic, latency by route template, the fold's counters, and the
fold lag and dead letters per partition read at scrape time.

Counters live for the whole test process, so every test compares a scrape after its traffic with one before it.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import subprocess
import sys
import time

import httpx
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.parser import text_string_to_metric_families

from api.metrics import INGEST_EVENTS, FoldMetrics
from ingest import keys as log_keys
from ingest.log import EventLog
from projections.fold.applier import Applier
from projections.fold.progress import wait_until_folded

from .conftest import WorkspaceKeys
from .factories import append_events, make_events


class Scrape:
    """One `/metrics` answer, parsed: `value(name, **labels)` is 0 for a series not shown (yet)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = [s for family in text_string_to_metric_families(text) for s in family.samples]

    def value(self, name: str, **labels: str) -> float:
        found = [s.value for s in self.samples if s.name == name and s.labels == labels]
        assert len(found) <= 1, (name, labels, found)
        return found[0] if found else 0.0

    def labels_of(self, name: str) -> list[dict[str, str]]:
        return [s.labels for s in self.samples if s.name == name]


async def scrape(client: httpx.AsyncClient) -> Scrape:
    r = await client.get("/metrics")  # no key
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return Scrape(r.text)


def changed(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
    return after.value(name, **labels) - before.value(name, **labels)


async def track(client: httpx.AsyncClient, ws: WorkspaceKeys, path: str = "/v1/track", **body: object) -> int:
    r = await client.post(path, json={"userId": "u1", "event": "signed_up", **body}, auth=(ws.write_key, ""))
    return r.status_code


async def test_ingest_counts_requests_and_events_by_source_and_rejections_by_code(
    client_without_fold, workspace
):
    c, ws = client_without_fold, workspace
    before = await scrape(c)
    for _ in range(4):
        assert await track(c, ws) == 200
    assert await track(c, ws, event="") == 400  # one invalid message: the whole request is rejected
    good = {"type": "track", "userId": "u2", "event": "clicked"}
    batch = [good, good, {"type": "track", "event": "no one"}, {**good, "properties": {"x": "y" * 40_000}}]
    r = await c.post("/v1/batch", json={"batch": batch}, auth=(ws.write_key, ""))
    assert r.json()["accepted"] == 2
    r = await c.post(f"/beacon/v1/batch?writeKey={ws.write_key}", json={"batch": [good, good, good]})
    assert r.status_code == 200
    assert (await c.post("/v1/track", json=good, auth=("wk_unknown", ""))).status_code == 401
    after = await scrape(c)

    assert changed(before, after, "streamfold_ingest_events_total", source="sdk", status="accepted") == 6
    assert changed(before, after, "streamfold_ingest_events_total", source="sdk", status="rejected") == 3
    assert changed(before, after, "streamfold_ingest_events_total", source="beacon", status="accepted") == 3
    rejected = "streamfold_ingest_rejected_events_total"
    assert changed(before, after, rejected, source="sdk", code="invalid_event") == 2
    assert changed(before, after, rejected, source="sdk", code="event_too_large") == 1
    requests = "streamfold_ingest_requests_total"
    assert changed(before, after, requests, source="sdk", status="200") == 5
    assert changed(before, after, requests, source="sdk", status="400") == 1
    assert changed(before, after, requests, source="sdk", status="401") == 1
    assert changed(before, after, requests, source="beacon", status="200") == 1


async def test_crm_syncs_and_email_webhooks_count_under_their_source(client_without_fold, workspace):
    c, ws = client_without_fold, workspace
    before = await scrape(c)
    body = {"crm": "hubspot", "contacts": [{"external_id": "a", "email": "a@x.io"}, {"firstname": "no id"}]}
    r = await c.post("/v1/sources/crm/sync", json=body, auth=(ws.write_key, ""))
    assert r.status_code == 200
    hook = [{"event": "delivered", "email": "a@x.io", "timestamp": 1_777_000_000, "sg_event_id": "sg-1"}]
    r = await c.post("/v1/sources/email/sendgrid", json=hook, auth=(ws.write_key, ""))
    assert r.status_code == 200
    after = await scrape(c)
    assert changed(before, after, "streamfold_ingest_events_total", source="crm", status="accepted") == 1
    rejected = "streamfold_ingest_rejected_events_total"
    assert changed(before, after, rejected, source="crm", code="invalid_record") == 1
    assert changed(before, after, "streamfold_ingest_events_total", source="email", status="accepted") == 1
    assert changed(before, after, "streamfold_ingest_requests_total", source="crm", status="200") == 1
    assert changed(before, after, "streamfold_ingest_requests_total", source="email", status="200") == 1


async def test_latency_is_labelled_by_route_template_never_by_raw_path(client_without_fold, workspace):
    c, ws = client_without_fold, workspace
    before = await scrape(c)
    headers = {"Authorization": f"Bearer {ws.read_key}"}
    for i in range(3):
        assert (await c.get(f"/v1/events/evt_{i:026d}", headers=headers)).status_code == 404
    assert (await c.get("/no/such/path-123")).status_code == 404
    assert await track(c, ws, path="/v1/t") == 200
    after = await scrape(c)
    count = "streamfold_http_request_duration_seconds_count"
    assert changed(before, after, count, route="/v1/events/{event_id}", method="GET") == 3
    assert changed(before, after, count, route="unmatched", method="GET") == 1
    assert changed(before, after, count, route="/v1/t", method="POST") == 1
    assert changed(before, after, "streamfold_ingest_requests_total", source="sdk", status="200") == 1
    routes = {labels["route"] for labels in after.labels_of(count)}
    assert not any("evt_" in r or "path-123" in r for r in routes)
    slow = after.value(
        "streamfold_http_request_duration_seconds_bucket", route="/v1/t", method="POST", le="+Inf"
    )
    assert slow >= 1  # every observation lands in a bucket


async def test_fold_lag_rises_while_the_fold_is_stopped_and_returns_to_zero_after_folding(
    client_without_fold, workspace, settings, redis
):
    c = client_without_fold
    p = str(log_keys.partition_of(workspace.id, settings.partitions))
    await append_events(EventLog(redis, settings), workspace.id, make_events(50, seed=1), per_entry=10)
    stopped = await scrape(c)
    assert stopped.value("streamfold_redis_up") == 1
    assert stopped.value("streamfold_fold_lag_entries", partition=p) == 5
    assert stopped.value("streamfold_fold_lag_seconds", partition=p) >= 0
    others = [str(q) for q in range(settings.partitions) if str(q) != p]
    assert all(stopped.value("streamfold_fold_lag_entries", partition=q) == 0 for q in others)

    applier = Applier(redis, settings, observer=FoldMetrics())
    await applier.start()
    try:
        await wait_until_folded(redis, settings.key_prefix, settings.partitions, timeout=60)
    finally:
        await applier.stop()
    folded = await scrape(c)
    assert folded.value("streamfold_fold_lag_entries", partition=p) == 0
    assert folded.value("streamfold_fold_lag_seconds", partition=p) == 0
    assert changed(stopped, folded, "streamfold_fold_events_total", partition=p) == 50
    assert changed(stopped, folded, "streamfold_fold_entries_total", partition=p) == 5
    assert changed(stopped, folded, "streamfold_fold_batch_duration_seconds_count") >= 1

    await append_events(EventLog(redis, settings), workspace.id, make_events(20, seed=2), per_entry=10)
    assert (await scrape(c)).value("streamfold_fold_lag_entries", partition=p) == 2


async def test_dead_letters_are_counted_per_partition(client, workspace, settings, redis, folded):
    p = log_keys.partition_of(workspace.id, settings.partitions)
    await redis.xadd(log_keys.log(settings.key_prefix, p), {b"w": workspace.id, b"v": b"99", b"d": b"\x90"})
    await folded()
    after = await scrape(client)
    assert [after.value("streamfold_dead_letters", partition=str(q)) for q in range(settings.partitions)] == [
        int(q == p) for q in range(settings.partitions)
    ]


async def test_metrics_answer_when_redis_does_not_and_say_so(settings, redis):
    from api.app import create_app
    from api.embedded import free_port

    dead = create_app(settings.with_(redis_url=f"redis://127.0.0.1:{free_port()}/0"), run_appliers=False)
    transport = httpx.ASGITransport(app=dead)
    async with (
        dead.router.lifespan_context(dead),
        httpx.AsyncClient(transport=transport, base_url="http://t") as c,
    ):
        out = await scrape(c)
    assert out.value("streamfold_redis_up") == 0
    assert out.labels_of("streamfold_fold_lag_entries") == []
    assert "streamfold_ingest_events_total" in out.text


def test_unknown_lag_is_not_a_number():
    from api.metrics import exposition
    from projections.fold.progress import PartitionLag

    body, _ = exposition([PartitionLag(0, "2-0", "1-0", None, 1.5, 0)])
    out = Scrape(body.decode())
    assert math.isnan(out.value("streamfold_fold_lag_entries", partition="0"))
    assert out.value("streamfold_fold_lag_seconds", partition="0") == 1.5


# ---------------------------------------------------------------- serve --workers: one sum over every process


def test_shared_metrics_is_a_fresh_directory_for_workers_and_an_emptied_one_when_given(tmp_path, monkeypatch):
    from api.multiprocess import MULTIPROC_ENV, shared_metrics

    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    with shared_metrics(1) as none:
        assert none is None and MULTIPROC_ENV not in os.environ
    with shared_metrics(2) as fresh:
        assert fresh is not None and fresh.is_dir() and os.environ[MULTIPROC_ENV] == str(fresh)
        assert list(fresh.iterdir()) == []
    assert not fresh.exists() and MULTIPROC_ENV not in os.environ

    given = tmp_path / "prom"
    given.mkdir()
    (given / "counter_123.db").write_bytes(b"an earlier run's values")
    (given / "keep.txt").write_text("not ours")
    monkeypatch.setenv(MULTIPROC_ENV, str(given))
    with shared_metrics(1) as used:
        assert used == given and sorted(p.name for p in given.iterdir()) == ["keep.txt"]
    assert given.is_dir()


def _sum(scrape: Scrape, name: str, **labels: str) -> float:
    return sum(s.value for s in scrape.samples if s.name == name and labels.items() <= s.labels.items())


async def test_serve_with_two_workers_sums_the_counters_of_every_process(
    settings, redis, workspace, tmp_path
):
    from api.embedded import free_port

    from .cli_helpers import clean_env, common_flags
    from .test_serve import _wait_healthy, _wait_ready

    shared = tmp_path / "prom"
    shared.mkdir()
    stale = MmapedDict(str(shared / "counter_1.db"))  # an earlier run's count, which serve must not add
    name = "streamfold_ingest_events"
    labels = (["source", "status"], ["sdk", "accepted"])
    stale.write_value(mmap_key(name, f"{name}_total", *labels, INGEST_EVENTS._documentation), 1000.0, 0.0)
    stale.close()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", *common_flags(settings), "--port", str(port), "--workers", "2"],
        env=clean_env(PROMETHEUS_MULTIPROC_DIR=str(shared)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )  # fmt: skip
    try:
        _wait_healthy(url, proc)
        _wait_ready(url, proc)
        n = 40
        for i in range(n):  # a new connection each: the kernel hands them to either worker
            r = httpx.post(
                f"{url}/v1/track", json={"userId": f"u{i}", "event": "e"}, auth=(workspace.write_key, "")
            )
            assert r.status_code == 200

        def totals() -> tuple[float, float, float]:
            out = Scrape(httpx.get(f"{url}/metrics", timeout=5).text)
            return (
                out.value("streamfold_ingest_events_total", source="sdk", status="accepted"),
                out.value("streamfold_ingest_requests_total", source="sdk", status="200"),
                _sum(out, "streamfold_fold_events_total"),  # counted by the fold child only
            )

        deadline = time.monotonic() + 30
        while totals() != (n, n, n):
            assert time.monotonic() < deadline, totals()
            time.sleep(0.1)  # sleep-ok: other workers add their counts within a second; the fold folds
        assert all(totals() == (n, n, n) for _ in range(8))  # whichever worker answers the scrape
        pids = {p.stem.rsplit("_", 1)[1] for p in shared.glob("*.db")}
        assert len(pids) >= 3  # two HTTP workers and the fold process count into the same directory
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "Traceback" not in err, err


def local_scrape() -> Scrape:
    from api.metrics import exposition

    return Scrape(exposition(None)[0].decode())


async def test_archived_days_entries_and_events_are_counted_per_partition(
    settings, redis, workspace, tmp_path
):
    from .test_archive import append_days, keyspace

    archiving = settings.with_(
        archive_dir=str(tmp_path / "archive"), archive_after_days=4, archive_interval_seconds=0.05
    )
    await append_days(redis, archiving, workspace, 10, end_ms=time.time_ns() // 1_000_000)
    p = keyspace(archiving, workspace).partition
    stream = log_keys.log(settings.key_prefix, p)
    before = local_scrape()
    applier = Applier(redis, archiving, observer=FoldMetrics())
    await applier.start()
    try:
        deadline = time.monotonic() + 60
        while await redis.xlen(stream) > 10:  # five days of two entries each leave the log
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)  # sleep-ok: the archive runs between lease renewals
    finally:
        await applier.stop()
    after = local_scrape()
    assert changed(before, after, "streamfold_archive_days_total", partition=str(p)) == 5
    assert changed(before, after, "streamfold_archive_entries_total", partition=str(p)) == 10
    assert changed(before, after, "streamfold_archive_events_total", partition=str(p)) > 0


async def test_events_streamed_by_the_export_endpoint_are_counted(
    client_without_fold, workspace, settings, redis
):
    await append_events(EventLog(redis, settings), workspace.id, make_events(30, seed=4), per_entry=10)
    before = await scrape(client_without_fold)
    r = await client_without_fold.get("/v1/export", headers={"Authorization": f"Bearer {workspace.read_key}"})
    assert r.status_code == 200
    lines = r.text.strip().splitlines()
    after = await scrape(client_without_fold)
    assert len(lines) == 30 and changed(before, after, "streamfold_export_events_total") == 30


async def test_a_fold_process_serves_its_own_counters_on_its_metrics_port(settings, redis, workspace):
    from api.embedded import free_port

    from .cli_helpers import clean_env, common_flags, streamfold

    n = 250
    await append_events(EventLog(redis, settings), workspace.id, make_events(n, seed=5))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "fold", *common_flags(settings), "--metrics-port", str(port)],
        env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        await wait_until_folded(redis, settings.key_prefix, settings.partitions, timeout=60)
        partition = str(log_keys.partition_of(workspace.id, settings.partitions))
        deadline = time.monotonic() + 30
        while True:
            try:
                out = Scrape(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text)
                if out.value("streamfold_fold_events_total", partition=partition) == n:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the fold process never showed its folded events"
            await asyncio.sleep(0.05)  # sleep-ok: polling for the server to listen and count
        assert out.value("streamfold_fold_entries_total", partition=partition) == 3
        assert _sum(out, "streamfold_fold_batch_duration_seconds_count") >= 1
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "Traceback" not in err, err
    # a port already taken is one line, not a traceback
    taken = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)  # sleep-ok: waiting for the squatter to listen
        r = streamfold("fold", *common_flags(settings), "--metrics-port", str(port))
        assert r.returncode == 2 and f"--metrics-port {port}" in r.stderr and "Traceback" not in r.stderr
    finally:
        taken.terminate()
        taken.wait(timeout=10)
