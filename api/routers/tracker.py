"""`GET /tracker.js`: the website tracker, a static file built from `api/static/tracker.src.js`.

Read once at import; cacheable, with the tracker's version in its ETag (a new build means a new ETag).
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter, Request, Response

router = APIRouter(tags=["tracker"])

TRACKER_FILE = Path(__file__).resolve().parents[1] / "static" / "tracker.js"
TRACKER = TRACKER_FILE.read_bytes()
_banner = re.match(rb"/\*! streamfold tracker (\S+) src-sha256:([0-9a-f]{64})", TRACKER)
TRACKER_VERSION = _banner.group(1).decode() if _banner else "unknown"
ETAG = f'"tracker-{TRACKER_VERSION}"'
HEADERS = {
    "ETag": ETAG,
    "Cache-Control": "public, max-age=3600",
    "Access-Control-Allow-Origin": "*",
    "X-Content-Type-Options": "nosniff",
}


@router.get("/tracker.js", response_class=Response, summary="The website tracker script")
async def tracker_js(request: Request) -> Response:
    """Paste `<script src=".../tracker.js" data-write-key="wk_…" defer></script>` into a site's pages."""
    if ETAG in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=HEADERS)
    return Response(TRACKER, media_type="application/javascript; charset=utf-8", headers=HEADERS)
