"""The demo's STOMP playground (``/stomp.html``) in two tabs on two transports: a topic
reaches both, a queue splits its messages between them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from sockjs_gateway.demo import make_app, sockjs_client_path, stompjs_path
from tests.clients.conftest import ROOT, require, served

pytestmark = pytest.mark.asyncio(loop_scope="module")

SCREENSHOT = ROOT / "artifacts" / "stomp-demo.png"


@pytest_asyncio.fixture(loop_scope="module")
async def demo_url() -> AsyncIterator[str]:
    require(sockjs_client_path() is not None, "sockjs-client (npm)")
    require(stompjs_path() is not None, "@stomp/stompjs (npm)")
    async with served(make_app()) as url:
        yield url


async def open_tab(browser: Any, url: str, transport: str) -> Any:
    context = await browser.new_context(viewport={"width": 1000, "height": 640})
    tab = await context.new_page()
    await tab.goto(f"{url}/stomp.html?transport={transport}")
    await tab.wait_for_function(
        "(t) => document.getElementById('status').textContent.endsWith('via ' + t)", arg=transport
    )
    return tab


async def subscribe(tab: Any, destination: str) -> None:
    await tab.fill("#subscribe input[name=destination]", destination)
    await tab.click("#subscribe button")


async def send(tab: Any, destination: str, body: str) -> None:
    await tab.fill("#send input[name=destination]", destination)
    await tab.fill("#send input[name=body]", body)
    await tab.press("#send input[name=body]", "Enter")


async def test_topic_and_queue_across_two_tabs(browser: Any, demo_url: str) -> None:
    alice = await open_tab(browser, demo_url, "websocket")
    bob = await open_tab(browser, demo_url, "xhr-polling")
    try:
        for tab in (alice, bob):
            await subscribe(tab, "/topic/greetings")
            await subscribe(tab, "/queue/jobs")
        # Bob's subscriptions went out before this SEND on the same connection, so once
        # Alice sees it, the broker knows both of Bob's subscriptions.
        await send(bob, "/topic/greetings", "hello from xhr-polling")
        for tab in (alice, bob):
            await tab.locator("#messages").get_by_text("hello from xhr-polling").wait_for()
        for i in range(4):
            await send(alice, "/queue/jobs", f"job {i}")
        for tab, jobs in ((alice, (0, 2)), (bob, (1, 3))):  # round-robin
            for i in jobs:
                await tab.locator("#messages").get_by_text(f"job {i}").wait_for()
        for tab, others in ((alice, (1, 3)), (bob, (0, 2))):
            for i in others:
                assert await tab.locator("#messages").get_by_text(f"job {i}").count() == 0
        SCREENSHOT.parent.mkdir(exist_ok=True)
        await bob.screenshot(path=str(SCREENSHOT), full_page=True)
    finally:
        await alice.context.close()
        await bob.context.close()
