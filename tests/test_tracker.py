"""`GET /tracker.js`: served by the app, cacheable with its version in the ETag, small, built from its source."""

from __future__ import annotations

import hashlib
from pathlib import Path

STATIC = Path(__file__).resolve().parents[1] / "api" / "static"


async def test_tracker_js_is_served_as_javascript_with_a_versioned_etag(client):
    r = await client.get("/tracker.js")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/javascript")
    assert "max-age" in r.headers["cache-control"]
    version = r.text.split()[3]
    assert r.headers["etag"] == f'"tracker-{version}"'


async def test_an_unchanged_tracker_answers_304(client):
    etag = (await client.get("/tracker.js")).headers["etag"]
    r = await client.get("/tracker.js", headers={"If-None-Match": etag})
    assert r.status_code == 304 and r.content == b""


def test_the_built_tracker_is_under_10_kb_and_built_from_the_committed_source():
    built = (STATIC / "tracker.js").read_bytes()
    assert len(built) < 10 * 1024
    source_sha = hashlib.sha256((STATIC / "tracker.src.js").read_bytes()).hexdigest()
    assert f"src-sha256:{source_sha}".encode() in built.split(b"\n", 1)[0], "run `make tracker` and commit"
