"""The demo chat in Chromium on ``python -m sockjs_gateway serve --workers 2 --redis URL``,
on xhr-streaming and xhr-polling: each session's requests land on both workers (the access
log names the worker that served each) and relay to the session's owner."""

from __future__ import annotations

import asyncio
import re
import signal
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from sockjs_gateway.demo import sockjs_client_path
from tests.backplane.servers import RedisServer
from tests.balancer.workers import TIMEOUT, children, redis, served_by
from tests.clients.conftest import require
from tests.processes import started

__all__ = ["redis"]  # the module's redis-server fixture

pytestmark = pytest.mark.asyncio(loop_scope="module")

MAX_LINES = 40


@pytest.mark.parametrize("transport", ["xhr-streaming", "xhr-polling"])
async def test_the_demo_chat_over_two_workers(
    redis: RedisServer, tmp_path: Path, browser: Any, transport: str
) -> None:
    """The demo page in two tabs on ``serve --workers 2``: each tab's requests land on both
    workers (the access log names the worker), and every line reaches both tabs."""
    require(sockjs_client_path() is not None, "sockjs-client (npm)")
    log = tmp_path / "stderr"
    # Idle keep-alive connections close after 0.3 s, so the paced messages below each go
    # out on a new connection, which the kernel may hand to either worker.
    args = ("serve", "--workers", "2", "--redis", redis.url, "--header-timeout", "0.3")
    async with started(*args, log=log) as (process, url):
        tabs = [await open_tab(browser, f"{url}?transport={transport}") for _ in range(2)]
        try:
            for tab in tabs:
                await tab.wait_for_function(
                    "(t) => document.getElementById('transport').textContent === t",
                    arg=transport,
                )
            workers = set(children(process.pid))
            # The kernel hands each new connection to either worker at random: send until
            # both sessions were served by both workers, at most MAX_LINES (20 per tab: the
            # chance that all of one tab's sends land on one worker is about 1 in 250,000).
            for i in range(MAX_LINES):
                tab = tabs[i % 2]
                await tab.fill("input[name=text]", f"line {i} over {transport}")
                await tab.press("input[name=text]", "Enter")
                for each in tabs:
                    await (
                        each.locator("#chat")
                        .get_by_text(f"line {i} over {transport}")
                        .wait_for(timeout=20000)
                    )
                if i >= 3 and on_both(sessions_by_worker(log), workers):
                    break
                await asyncio.sleep(0.4)  # past the keep-alive: the next send connects anew
        finally:
            for tab in tabs:
                await tab.context.close()
        sessions = sessions_by_worker(log)
        assert len(sessions) == 2  # the two tabs' sessions
        for session, pids in sessions.items():
            assert pids == workers, (session, pids, workers)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), TIMEOUT * 2) == 0


async def open_tab(browser: Any, url: str) -> Any:
    page = await (await browser.new_context()).new_page()
    await page.goto(url)
    return page


def on_both(sessions: dict[str, set[int]], workers: set[int]) -> bool:
    """Whether both tabs' sessions have been served by every worker."""
    return len(sessions) == 2 and all(pids == workers for pids in sessions.values())


def sessions_by_worker(log: Path) -> dict[str, set[int]]:
    """Session id of every /chat session in a workers' log -> the workers that served it."""
    found: dict[str, set[int]] = defaultdict(set)
    for path, pids in served_by(log).items():
        match = re.match(r"^/chat/[^/]+/([^/]+)/\w+", path)
        if match is not None:
            found[match[1]] |= pids
    return found
