"""At shutdown every sockjs-client in Chromium, on every transport, gets 1001 "Going away",
polling ones included: ``python -m sockjs_gateway serve`` closes every session, then keeps
answering for ``shutdown_grace`` so that a client between two polls comes back for its
close frame. SIGTERM and SIGINT, against a subprocess as a user runs it."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.clients.conftest import CLIENT_JS, CLIENT_TRANSPORTS, require
from tests.processes import started

pytestmark = pytest.mark.asyncio(loop_scope="module")

TIMEOUT_MS = 20000


@asynccontextmanager
async def serving(log: Path, *args: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """``python -m sockjs_gateway serve ARGS`` on a free port; yields (process, base URL)."""
    async with started("serve", "--no-access-log", *args, log=log) as (process, url):
        yield process, url.rstrip("/")


async def open_everywhere(browser: Any, url: str) -> list[Any]:
    """One page per transport, each in its own context (Chromium allows 6 connections per
    host and context; the streaming and polling transports each hold one)."""
    pages = []
    for transport in CLIENT_TRANSPORTS:
        context = await browser.new_context()
        page = await context.new_page()
        await page.goto(url + "/probe.html")
        opened = await page.evaluate(
            "([n, u, t]) => openProbe(n, u, t)", ["main", url + "/chat", transport]
        )
        assert opened == transport
        pages.append(page)
    return pages


async def close_event(page: Any) -> dict[str, Any]:
    event: dict[str, Any] = await page.evaluate(f"() => probes.main.closed({TIMEOUT_MS})")
    return event


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_every_transport_hears_going_away(
    browser: Any, tmp_path: Path, sig: signal.Signals
) -> None:
    require(CLIENT_JS.is_file(), "sockjs-client (npm)")
    app = "tests/clients/shutdown_app.py:make_app"
    async with serving(tmp_path / "stderr", "--app", app) as (process, url):
        pages = await open_everywhere(browser, url)
        try:
            process.send_signal(sig)
            events = await asyncio.gather(*(close_event(page) for page in pages))
            assert await asyncio.wait_for(process.wait(), 20) == 0
        finally:
            for page in pages:
                await page.context.close()
    closes = {t: (e["code"], e["reason"]) for t, e in zip(CLIENT_TRANSPORTS, events, strict=True)}
    # With shutdown_grace=0 the three polling transports got 1006 here ("permanent", and
    # "JSONP script loaded abnormally"): their next poll found no listener.
    assert closes == dict.fromkeys(CLIENT_TRANSPORTS, (1001, "Going away"))
