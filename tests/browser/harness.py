"""Browser-test harness: Debian's Chromium driven by Playwright, a local test site on another origin than the
API, the pinned SDK bundles from npm, and polling helpers that wait on the query API (never fixed sleeps).

Without Chromium, Playwright or npm the browser tests skip, saying loudly what is missing and how to get it.
"""

from __future__ import annotations

import asyncio
import functools
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.embedded import free_port

HERE = Path(__file__).parent
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = HERE / "artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _skip(reason: str) -> None:
    pytest.skip(f"BROWSER TESTS SKIPPED: {reason}")


def require_chromium() -> str:
    if not CHROMIUM.exists():
        _skip(
            "Debian's Chromium is not installed (/usr/bin/chromium); `make test` installs it when run as root, "
            "or run `apt-get install -y chromium`"
        )
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        _skip("the Python package `playwright` is missing; `pip install -e '.[test]'`")
    return str(CHROMIUM)


@functools.cache
def _install_npm_bundles() -> str | None:
    """`npm ci` from the committed lock file once; returns why it failed, or None."""
    if (HERE / "node_modules" / ".package-lock.json").exists():
        return None
    npm = shutil.which("npm")
    if npm is None:
        return "npm is not installed (`apt-get install -y npm`); the SDK bundles come from the npm registry"
    proc = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0:
        return f"`npm ci` in {HERE} failed: {proc.stderr.strip()[-500:]}"
    return None


def require_sdk_bundles() -> Path:
    problem = _install_npm_bundles()
    if problem:
        _skip(problem)
    return HERE / "node_modules"


class _SiteHandler(SimpleHTTPRequestHandler):
    """Static files under tests/browser plus the pages a test registered (path → html)."""

    pages: dict[str, str] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, directory=str(HERE), **kwargs)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        page = self.pages.get(self.path.split("?", 1)[0])
        if page is None:
            super().do_GET()
            return
        body = page.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class TestSite:
    """A website on `http://localhost:<port>`: a different origin from the API on 127.0.0.1."""

    def __init__(self) -> None:
        self.port = free_port()
        handler = type("Handler", (_SiteHandler,), {"pages": {}})
        self.pages: dict[str, str] = handler.pages
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        return f"http://localhost:{self.port}"

    def add_page(self, path: str, html: str) -> str:
        self.pages[path] = html
        return self.origin + path

    def __enter__(self) -> TestSite:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Traffic:
    """Every request the page sent to the API, and every answer it got."""

    api: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    def posts(self, path_prefix: str = "") -> list[dict[str, Any]]:
        return [
            r
            for r in self.requests
            if r["method"] == "POST" and r["path"].startswith(path_prefix) and r["path"] != "/v1/m"
        ]

    def message_ids(self) -> list[str]:
        """messageIds of every message posted (one per message per attempt)."""
        out: list[str] = []
        for r in self.posts():
            body = r["body"] or {}
            for msg in body.get("batch", [body]) if isinstance(body, dict) else []:
                if isinstance(msg, dict) and msg.get("messageId"):
                    out.append(msg["messageId"])
        return out


def watch_traffic(page: Any, api: str) -> Traffic:
    traffic = Traffic(api)

    def on_request(request: Any) -> None:
        if not request.url.startswith(api):
            return
        body: Any = None
        raw = request.post_data
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw
        path = request.url[len(api) :].split("?", 1)[0]
        traffic.requests.append(
            {"method": request.method, "path": path, "headers": dict(request.headers), "body": body}
        )

    def on_failed(request: Any) -> None:
        if request.url.startswith(api):
            traffic.failures.append(f"{request.method} {request.url}: {request.failure}")

    page.on("console", lambda m: traffic.console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: traffic.console.append(f"pageerror: {e}"))
    page.on("request", on_request)
    page.on("requestfailed", on_failed)
    return traffic


async def wait_for(
    check: Callable[[], Awaitable[Any]], what: str, timeout: float = 30.0, interval: float = 0.1
) -> Any:
    """Poll `check` until it returns something truthy (a condition, not a fixed sleep)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)  # sleep-ok: polling interval of a condition wait
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


async def query_events(api: str, read_key: str, **params: Any) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=api, headers={"X-API-Key": read_key}, timeout=10) as c:
        r = await c.get("/v1/events", params={"limit": 100, **params})
        r.raise_for_status()
        events: list[dict[str, Any]] = r.json()["events"]
        return events


async def query_event(api: str, read_key: str, event_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=api, headers={"X-API-Key": read_key}, timeout=10) as c:
        r = await c.get(f"/v1/events/{event_id}")
        r.raise_for_status()
        doc: dict[str, Any] = r.json()["event"]
        return doc


async def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
