"""The dashboard: `/` (a landing page), `/dashboard`, and `/static/<name>` for the dashboard's scripts and styles.

Files are read once at import. Pages are revalidated on every load (`no-cache` + ETag) and refer to each asset
as `/static/<name>?v=<content hash>`, so assets are cached for a year: a changed file is a new URL.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from ingest.errors import NotFound

router = APIRouter(include_in_schema=False)

STATIC = Path(__file__).resolve().parents[1] / "static"
MEDIA_TYPES = {".js": "application/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
ASSETS = {
    name: (STATIC / name).read_bytes()
    for name in ("dashboard.js", "dashboard.css", "uplot.min.js", "uplot.min.css")
}
VERSIONS = {name: hashlib.sha256(body).hexdigest()[:16] for name, body in ASSETS.items()}

# The pages build their DOM from text nodes only; the policy keeps any other script or origin out anyway.
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def page(name: str) -> tuple[bytes, str]:
    html = (STATIC / name).read_text()
    for asset, version in VERSIONS.items():
        html = html.replace(f'"/static/{asset}"', f'"/static/{asset}?v={version}"')
    body = html.encode()
    return body, f'"{hashlib.sha256(body).hexdigest()[:16]}"'


PAGES = {"/": page("index.html"), "/dashboard": page("dashboard.html")}


def not_modified(request: Request, etag: str) -> bool:
    return etag in request.headers.get("if-none-match", "")


def serve_page(request: Request, path: str) -> Response:
    body, etag = PAGES[path]
    headers = {**PAGE_HEADERS, "ETag": etag}
    if not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="text/html; charset=utf-8", headers=headers)


@router.get("/")
async def landing(request: Request) -> Response:
    return serve_page(request, "/")


@router.get("/dashboard")
async def dashboard(request: Request) -> Response:
    return serve_page(request, "/dashboard")


@router.get("/static/{name}")
async def static_asset(request: Request, name: str, v: Annotated[str | None, Query()] = None) -> Response:
    body = ASSETS.get(name)
    if body is None:
        raise NotFound(f"no static file {name!r}", details={"name": name})
    etag = f'"{VERSIONS[name]}"'
    # the versioned URL never changes content; an unversioned one may, after an upgrade
    cache = "public, max-age=31536000, immutable" if v == VERSIONS[name] else "public, max-age=300"
    headers = {"ETag": etag, "Cache-Control": cache, "X-Content-Type-Options": "nosniff"}
    if not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=MEDIA_TYPES[Path(name).suffix], headers=headers)
