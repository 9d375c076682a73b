"""The dashboard's pages and files over HTTP: `/` links to it, pages revalidate, assets cache by content hash.

What the page shows is tested in Chromium (tests/browser/test_dashboard.py).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from api.routers.dashboard import STATIC, VERSIONS

ROOT = Path(__file__).resolve().parents[1]


async def test_the_landing_page_links_to_the_dashboard_the_docs_and_the_tracker(client_without_fold):
    r = await client_without_fold.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    links = set(re.findall(r'href="([^"]+)"', r.text))
    assert {"/dashboard", "/docs", "/tracker.js"} <= links


async def test_the_dashboard_page_revalidates_and_allows_only_its_own_origin(client_without_fold):
    r = await client_without_fold.get("/dashboard")
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-cache"
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp and "default-src 'none'" in csp
    again = await client_without_fold.get("/dashboard", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


async def test_pages_refer_to_assets_by_content_hash_and_those_urls_are_immutable(client_without_fold):
    html = (await client_without_fold.get("/dashboard")).text
    for name, version in VERSIONS.items():
        url = f"/static/{name}?v={version}"
        assert f'"{url}"' in html
        r = await client_without_fold.get(url)
        assert r.status_code == 200 and r.content == (STATIC / name).read_bytes()
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert (
            await client_without_fold.get(url, headers={"If-None-Match": r.headers["etag"]})
        ).status_code == 304


async def test_an_unversioned_asset_is_cached_briefly_and_unknown_files_are_404(client_without_fold):
    r = await client_without_fold.get("/static/dashboard.js")
    assert r.status_code == 200 and r.headers["cache-control"] == "public, max-age=300"
    assert r.headers["content-type"].startswith("application/javascript")
    assert (await client_without_fold.get("/static/tracker.src.js")).status_code == 404
    assert (await client_without_fold.get("/static/..%2Fapp.py")).status_code == 404


def test_the_vendored_chart_library_says_its_version_and_license():
    banner = (STATIC / "uplot.min.js").read_text().splitlines()[0]
    assert re.match(
        r"/\*! uPlot \d+\.\d+\.\d+ \| MIT License, Copyright .* \| npm uplot@\d+\.\d+\.\d+ sha512-", banner
    )
    assert "MIT License" in (STATIC / "uplot.LICENSE").read_text()


def test_the_package_data_holds_every_static_file():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packaged = {
        path
        for pattern in config["tool"]["setuptools"]["package-data"]["api"]
        for path in STATIC.parent.glob(pattern)
    }
    assert {path for path in STATIC.rglob("*") if path.is_file()} <= packaged
