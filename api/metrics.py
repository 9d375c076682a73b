"""Prometheus metrics: the one registry every part of a process counts into, and its exposition for `/metrics`.

Counted as things happen: HTTP latency per route template (`RequestMetrics`, an ASGI middleware), ingest requests
and events by source (`IngestMetrics`, the `Receiver`'s observer), folded batches and archived log days
(`FoldMetrics`, the appliers' observer). Read at scrape time: fold lag and dead letters per partition
(`exposition`, from `projections.fold.progress.read_fold_lag`). With `serve --workers N`, every process (HTTP
workers and the fold child) writes its values to files in `PROMETHEUS_MULTIPROC_DIR`, and whichever worker is
scraped sums them.

Exports over HTTP count their events (`EXPORTED_EVENTS`); a CLI job could count here too, but its counts reach
`/metrics` only when it shares a serving process's `PROMETHEUS_MULTIPROC_DIR`.
"""

from __future__ import annotations

import asyncio
import math
import os
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from time import perf_counter
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ingest.http import INGEST_ROUTES
from ingest.observe import SOURCES, IngestObserver
from projections.fold.fold import FoldResult
from projections.fold.observe import FoldObserver
from projections.fold.progress import PartitionLag

from .multiprocess import MULTIPROC_ENV

# The non-SDK sources' routes (ingest/sources/http.py); the SDK and beacon paths come from INGEST_ROUTES.
SOURCE_ROUTES = {"/v1/sources/crm/sync": "crm", "/v1/sources/email/{provider}": "email"}
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # the text format every Prometheus reads
UNMATCHED_ROUTE = "unmatched"  # requests no route answers (404s), so random paths never become labels
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

disable_created_metrics()  # `_created` series per child double the output and no dashboard reads them
REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_DURATION = Histogram(
    "streamfold_http_request_duration_seconds",
    "Time from a request's arrival to its last response byte, by route template and method.",
    ["route", "method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
INGEST_REQUESTS = Counter(
    "streamfold_ingest_requests",
    "Ingest requests answered, by source (sdk, beacon, crm, email) and HTTP status.",
    ["source", "status"],
    registry=REGISTRY,
)
INGEST_EVENTS = Counter(
    "streamfold_ingest_events",
    "Events of ingest requests: accepted (appended to the log, but forgotten people's) or rejected by index.",
    ["source", "status"],
    registry=REGISTRY,
)
INGEST_REJECTED = Counter(
    "streamfold_ingest_rejected_events",
    "Rejected events by the code of their rejection (invalid_event, event_too_large, invalid_record).",
    ["source", "code"],
    registry=REGISTRY,
)
FOLD_EVENTS = Counter(
    "streamfold_fold_events",
    "Events folded into the projections (after messageId dedupe); its rate is the fold's events/s.",
    ["partition"],
    registry=REGISTRY,
)
FOLD_ENTRIES = Counter(
    "streamfold_fold_entries",
    "Log entries folded (committed with the checkpoint).",
    ["partition"],
    registry=REGISTRY,
)
FOLD_DUPLICATES = Counter(
    "streamfold_fold_duplicates",
    "Events not folded because their messageId was folded before, within the dedupe window.",
    ["partition"],
    registry=REGISTRY,
)
FOLD_BATCH_DURATION = Histogram(
    "streamfold_fold_batch_duration_seconds",
    "Time to fold one batch: read the checkpoint, compute the updates, commit them (one MULTI/EXEC).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
ARCHIVED_DAYS = Counter(
    "streamfold_archive_days",
    "Log days written to verified archive files and trimmed from the log.",
    ["partition"],
    registry=REGISTRY,
)
ARCHIVED_ENTRIES = Counter(
    "streamfold_archive_entries", "Log entries moved to the archive.", ["partition"], registry=REGISTRY
)
ARCHIVED_EVENTS = Counter(
    "streamfold_archive_events", "Events moved to the archive.", ["partition"], registry=REGISTRY
)
EXPORTED_EVENTS = Counter("streamfold_export_events", "Events streamed by GET /v1/export.", registry=REGISTRY)


# ---------------------------------------------------------------- counting on the request path


class _Pending:
    """Counts the request path keeps as plain numbers (a Prometheus child costs 0.6 µs per `inc` and 1–1.5 µs per
    `observe` here, twice that with multiprocess files) and adds to the children in one go: about a second after
    the first count since the last flush, and before this process renders `/metrics`. Everything runs on the
    event loop's thread, so nothing here needs a lock."""

    def __init__(self) -> None:
        self.tallies: dict[tuple[Any, ...], _CounterTally | _HistogramTally] = {}
        self.scheduled = False

    def schedule(self) -> None:
        try:
            asyncio.get_running_loop().call_later(FLUSH_SECONDS, self.flush)
        except RuntimeError:  # no loop: the next scrape flushes
            return
        self.scheduled = True

    def flush(self) -> None:
        self.scheduled = False
        for tally in self.tallies.values():
            tally.flush()


FLUSH_SECONDS = 1.0
PENDING = _Pending()


class _CounterTally:
    __slots__ = ("child", "n")

    def __init__(self, child: Any) -> None:
        self.child = child
        self.n = 0

    def flush(self) -> None:
        if self.n:
            n, self.n = self.n, 0
            self.child.inc(n)


class _HistogramTally:
    __slots__ = ("child", "bounds", "counts", "sum")

    def __init__(self, child: Any) -> None:
        self.child = child
        self.bounds = tuple(child._upper_bounds)  # ends with +Inf, so every value has a bucket
        self.counts = [0] * len(self.bounds)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # the first bucket with value <= bound
        self.sum += value

    def flush(self) -> None:
        # prometheus_client has no public call that adds many observations at once: add to its bucket and sum values
        counts, total = self.counts, self.sum
        if not any(counts):
            return
        self.counts, self.sum = [0] * len(self.bounds), 0.0
        for bucket, n in zip(self.child._buckets, counts, strict=True):
            if n:
                bucket.inc(n)
        self.child._sum.inc(total)


def _counter_tally(metric: Counter, *labels: str) -> _CounterTally:
    key = (metric, *labels)
    tally = PENDING.tallies.get(key)
    if tally is None:
        tally = PENDING.tallies[key] = _CounterTally(metric.labels(*labels))
    assert isinstance(tally, _CounterTally)
    return tally


def _histogram_tally(metric: Histogram, *labels: str) -> _HistogramTally:
    key = (metric, *labels)
    tally = PENDING.tallies.get(key)
    if tally is None:
        tally = PENDING.tallies[key] = _HistogramTally(metric.labels(*labels))
    assert isinstance(tally, _HistogramTally)
    return tally


class IngestMetrics(IngestObserver):
    """Counts what the write path reports (the fast path calls it once per request): accepted events into a
    tally per source; rejections, the rare case, straight into their children."""

    def __init__(self) -> None:
        self._accepted = {s: _counter_tally(INGEST_EVENTS, s, "accepted") for s in SOURCES}
        self._rejected = {s: INGEST_EVENTS.labels(s, "rejected") for s in SOURCES}
        self._by_code: dict[str, dict[str, Any]] = {s: {} for s in SOURCES}

    def received(self, source: str, accepted: int, rejected_codes: Sequence[str] = ()) -> None:
        if accepted:
            self._accepted[source].n += accepted
            if not PENDING.scheduled:
                PENDING.schedule()
        if rejected_codes:
            self._rejected[source].inc(len(rejected_codes))
            by_code = self._by_code[source]
            for code in rejected_codes:
                child = by_code.get(code)
                if child is None:
                    child = by_code[code] = INGEST_REJECTED.labels(source, code)
                child.inc()


class FoldMetrics(FoldObserver):
    """Counts every committed fold batch and archived day (a few per second at most: straight into children)."""

    def __init__(self) -> None:
        self._children: dict[int, tuple[Any, Any, Any]] = {}

    def folded(self, partition: int, result: FoldResult, seconds: float) -> None:
        children = self._children.get(partition)
        if children is None:
            p = str(partition)
            children = self._children[partition] = (
                FOLD_EVENTS.labels(p),
                FOLD_ENTRIES.labels(p),
                FOLD_DUPLICATES.labels(p),
            )
        events, entries, duplicates = children
        events.inc(result.applied_events)
        entries.inc(result.applied_entries)
        if result.duplicates:
            duplicates.inc(result.duplicates)
        FOLD_BATCH_DURATION.observe(seconds)

    def archived(self, partition: int, entries: int, events: int) -> None:
        p = str(partition)
        ARCHIVED_DAYS.labels(p).inc()
        ARCHIVED_ENTRIES.labels(p).inc(entries)
        ARCHIVED_EVENTS.labels(p).inc(events)


class _RouteMetrics:
    """The tallies of one route template: latency per method and, for an ingest route, requests per status
    (POSTs only: preflights are not ingest requests)."""

    __slots__ = ("template", "source", "durations", "requests")

    def __init__(self, template: str, source: str | None) -> None:
        self.template = template
        self.source = source
        self.durations: dict[str, _HistogramTally] = {}
        self.requests: dict[int, _CounterTally] = {}

    def record(self, method: str, status: int, seconds: float) -> None:
        duration = self.durations.get(method)
        if duration is None:
            label = method if method in METHODS else "other"
            duration = self.durations[method] = _histogram_tally(HTTP_DURATION, self.template, label)
        duration.observe(seconds)
        if self.source is not None and method == "POST":
            requests = self.requests.get(status)
            if requests is None:
                requests = self.requests[status] = _counter_tally(INGEST_REQUESTS, self.source, str(status))
            requests.n += 1
        if not PENDING.scheduled:
            PENDING.schedule()


class RequestMetrics:
    """ASGI middleware, outermost: times every HTTP request and labels it with its route template (the ingest
    fast path's paths are their own templates; other requests carry the route FastAPI matched). Tallies are
    bound on first use per route, method and status, so a request costs two clock reads, a few dictionary
    lookups and additions to plain numbers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._routes: dict[str, _RouteMetrics] = {}
        for path, route in INGEST_ROUTES.items():
            self._routes[path] = _RouteMetrics(path, None if route.metrics else route.source)
        for path, source in SOURCE_ROUTES.items():
            self._routes[path] = _RouteMetrics(path, source)

    def _route_of(self, scope: Scope) -> _RouteMetrics:
        route = scope.get("route")
        template = getattr(route, "path", None) or UNMATCHED_ROUTE
        metrics = self._routes.get(template)
        if metrics is None:
            metrics = self._routes[template] = _RouteMetrics(template, None)
        return metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        status = 500  # what the client gets when the app raises before it answered

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            route = self._routes.get(scope["path"]) or self._route_of(scope)
            route.record(scope["method"], status, perf_counter() - started)


# ---------------------------------------------------------------- exposition


class _FoldLagSnapshot:
    """The fold lag and dead letters read for one scrape (a collector used once)."""

    def __init__(self, lags: list[PartitionLag] | None) -> None:
        self.lags = lags

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "streamfold_redis_up", "1 when this scrape read the fold's progress from Redis, else 0."
        )
        up.add_metric([], 0 if self.lags is None else 1)
        yield up
        if self.lags is None:
            return
        entries = GaugeMetricFamily(
            "streamfold_fold_lag_entries",
            "Log entries not folded yet (NaN when Redis cannot count them: entries deleted mid-log).",
            labels=["partition"],
        )
        seconds = GaugeMetricFamily(
            "streamfold_fold_lag_seconds",
            "Log time from the last entry folded to the log's head.",
            labels=["partition"],
        )
        dead = GaugeMetricFamily(
            "streamfold_dead_letters", "Entries in the partition's dead-letter stream.", labels=["partition"]
        )
        for lag in self.lags:
            p = [str(lag.partition)]
            entries.add_metric(p, math.nan if lag.lag_entries is None else lag.lag_entries)
            seconds.add_metric(p, lag.lag_seconds)
            dead.add_metric(p, lag.dead_letters)
        yield from (entries, seconds, dead)


def serve_metrics(host: str, port: int) -> None:
    """A `streamfold fold` process's counters (fold batches, events, archived days) at http://host:port/metrics,
    answered from a thread of prometheus_client's. The fold lag is not among them: any `serve` reports every
    partition's."""
    start_http_server(port, addr=host, registry=REGISTRY)


def exposition(lags: list[PartitionLag] | None) -> tuple[bytes, str]:
    """`/metrics` body and content type: this process's counters (every process's, summed, in multiprocess mode)
    followed by the lag snapshot (`None`: Redis could not be read)."""
    PENDING.flush()
    shared = os.environ.get(MULTIPROC_ENV)
    if shared:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=shared)
    else:
        registry = REGISTRY
    snapshot = CollectorRegistry()
    snapshot.register(_FoldLagSnapshot(lags))
    return generate_latest(registry) + generate_latest(snapshot), CONTENT_TYPE
