"""Fixtures for the real-client tests: sockjs-client from npm, Debian's Chromium driven
by Playwright, and real servers on loopback. A missing tool skips the tests on a
developer's machine and fails them when CI=true (CI must have installed everything)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from tests.clients.app import make_client_app, make_page_app
from tests.conftest import RecordingHandler

ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = ROOT / "node_modules"
CLIENT_JS = NODE_MODULES / "sockjs-client" / "dist" / "sockjs.min.js"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

#: The transports of sockjs-client, by the name it takes in its ``transports`` option.
CLIENT_TRANSPORTS = [
    "websocket",
    "xhr-streaming",
    "xhr-polling",
    "eventsource",
    "iframe-eventsource",
    "iframe-htmlfile",
    "iframe-xhr-polling",
    "jsonp-polling",
]


def require(available: bool, what: str) -> None:
    """Skip when ``what`` is missing, or fail under CI=true, where it must be installed."""
    if available:
        return
    message = f"{what} is not installed (run make install)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class Servers:
    """The SockJS server and a second origin serving the same probe page."""

    sockjs: str  # base URL of the SockJS server, e.g. http://127.0.0.1:41000
    other_origin: str  # base URL of the page-only server
    recorder: RecordingHandler

    def page(self, origin: str) -> str:
        return (self.sockjs if origin == "same" else self.other_origin) + "/probe.html"


async def start(app: web.Application, port: int = 0) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bound = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{bound}"


@asynccontextmanager
async def served(app: web.Application, port: int = 0) -> AsyncIterator[str]:
    """``app`` on 127.0.0.1 (on ``port``, or a free one) while the block runs: its base
    URL; the runner is cleaned up on the way out."""
    runner, url = await start(app, port)
    try:
        yield url
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def servers() -> AsyncIterator[Servers]:
    require(CLIENT_JS.is_file(), "sockjs-client (npm)")
    recorder = RecordingHandler()
    app = make_client_app(CLIENT_JS, recorder, disconnect_delay=1.0, heartbeat_delay=2.0)
    async with served(app) as sockjs_url, served(make_page_app(CLIENT_JS)) as page_url:
        yield Servers(sockjs_url, page_url, recorder)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Any]:
    require(shutil.which(CHROMIUM) is not None, "chromium")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        require(False, "playwright (PyPI)")
        raise
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@asynccontextmanager
async def new_page(browser: Any) -> AsyncIterator[Any]:
    """A page in a browser context of its own (no cookies, storage or connections shared
    with another test), the context closed on the way out."""
    context = await browser.new_context()
    try:
        yield await context.new_page()
    finally:
        await context.close()


@pytest_asyncio.fixture(loop_scope="module")
async def page(browser: Any) -> AsyncIterator[Any]:
    """A fresh page in its own browser context, closed after the test."""
    async with new_page(browser) as fresh:
        yield fresh
