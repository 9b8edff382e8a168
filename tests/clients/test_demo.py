"""The demo chat page in two tabs on two different transports, talking to each other."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from sockjs_gateway.demo import make_app, sockjs_client_path
from tests.clients.conftest import ROOT, require, served

pytestmark = pytest.mark.asyncio(loop_scope="module")

SCREENSHOT = ROOT / "artifacts" / "demo-two-tabs.png"


@pytest_asyncio.fixture(loop_scope="module")
async def demo_url() -> AsyncIterator[str]:
    require(sockjs_client_path() is not None, "sockjs-client (npm)")
    async with served(make_app()) as url:
        yield url


async def open_tab(browser: Any, url: str) -> Any:
    page = await (await browser.new_context(viewport={"width": 900, "height": 560})).new_page()
    await page.goto(url)
    return page


async def shows_transport(tab: Any, transport: str) -> None:
    await tab.wait_for_function(
        "(t) => document.getElementById('transport').textContent === t", arg=transport
    )


async def test_two_tabs_on_different_transports_chat(browser: Any, demo_url: str) -> None:
    alice = await open_tab(browser, demo_url + "/?transport=websocket")
    bob = await open_tab(browser, demo_url + "/?transport=iframe-htmlfile")
    try:
        await shows_transport(alice, "websocket")
        await shows_transport(bob, "iframe-htmlfile")
        await alice.fill("input[name=text]", "hello from websocket")
        await alice.press("input[name=text]", "Enter")
        await bob.fill("input[name=text]", "hi back over htmlfile")
        await bob.press("input[name=text]", "Enter")
        for tab in (alice, bob):
            chat = tab.locator("#chat")
            await chat.get_by_text("hello from websocket").wait_for()
            await chat.get_by_text("hi back over htmlfile").wait_for()
            # The frame log shows real SockJS frames, the open frame first.
            assert await tab.locator("#frames div").first.text_content() == "◀ o"
        SCREENSHOT.parent.mkdir(exist_ok=True)
        await bob.screenshot(path=str(SCREENSHOT), full_page=True)
        assert SCREENSHOT.stat().st_size > 10_000
    finally:
        await alice.context.close()
        await bob.context.close()


async def test_picker_switches_transport(browser: Any, demo_url: str) -> None:
    tab = await open_tab(browser, demo_url + "/")
    try:
        await tab.wait_for_function(
            "() => document.getElementById('transport').textContent === 'websocket'"
        )
        await tab.select_option("#force", "jsonp-polling")
        await tab.wait_for_function(
            "() => document.getElementById('transport').textContent === 'jsonp-polling'"
        )
        await tab.fill("input[name=text]", "over jsonp")
        await tab.press("input[name=text]", "Enter")
        await tab.locator("#chat").get_by_text("over jsonp").wait_for()
    finally:
        await tab.context.close()
