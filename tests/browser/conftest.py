"""Browser-test fixtures: one Chromium per session, a fresh browser context and a test site per test.

pytest stays out of the npm packages installed here (`node_modules`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio

from .harness import CHROMIUM_ARGS, TestSite, require_chromium

collect_ignore = ["node_modules"]


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def chromium() -> AsyncIterator[Any]:
    path = require_chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
def site() -> Iterator[TestSite]:
    with TestSite() as s:
        yield s


@pytest_asyncio.fixture
async def browser_page(chromium: Any) -> AsyncIterator[Any]:
    context = await chromium.new_context()
    page = await context.new_page()
    page.set_default_timeout(20_000)
    try:
        yield page
    finally:
        await context.close()
