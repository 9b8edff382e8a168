"""Inbound bytes waiting for a handler are bounded, measured as the server's RSS.

A hostile client sends many large ``xhr_send`` bodies at once to one session whose
handler is slow. Before, each waiting request held its whole body: 150 concurrent 4 MB
sends reached 904 MB. Now one upstream request per session reads its body at a time, and
only once the handler queue has room (``max_inbound_bytes``), so the others hold nothing
but what aiohttp buffers before it stops reading a connection.

The server runs in a subprocess (``--app`` this module's ``make_app``) so its memory is
its own; the loop is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from sockjs_gateway import Session, SockJSOptions, add_endpoint
from tests.test_cli import running

SENDS = 150
BODY = json.dumps(["x" * (4_000_000 - 6)]).encode()  # just under max_message_bytes
#: What the server may grow by: the bounded queue (1 MiB plus one message) and what aiohttp
#: reads of each waiting request before it pauses the connection (measured: about 0.85 MiB
#: of RSS each, 128 MiB for 150). Unbounded, it was 534 MiB after 4 s and still growing.
MAX_GROWTH = 200 * 1024 * 1024


class Slow:
    """Takes 30 s per message: everything after the first waits."""

    async def on_open(self, session: Session) -> None: ...

    async def on_message(self, session: Session, message: str) -> None:
        await asyncio.sleep(30)

    async def on_close(self, session: Session, code: int, reason: str) -> None: ...


def make_app() -> web.Application:
    app = web.Application()
    # The session has no receiver while the sends wait: it must outlive the whole test, or
    # on a loaded machine it expires (disconnect_delay) and lets every waiting send through.
    options = SockJSOptions(allowed_origins=("*",), disconnect_delay=300.0)
    add_endpoint(app, Slow(), prefix="/slow", options=options)
    return app


def rss(pid: int) -> int:
    """The process's resident memory in bytes, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


# Cancelling the client's unsent bodies at the end makes aiohttp's client warn.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
async def test_concurrent_large_sends_to_a_slow_handler_stay_bounded(tmp_path: Path) -> None:
    args = ("serve", "--app", "tests.server.test_inbound_memory:make_app")
    async with running(*args, log=tmp_path / "server.log") as server:
        pid = server.process.pid
        status, body = await server.post("/slow/000/s1/xhr")
        assert (status, body) == (200, "o\n")
        before = rss(pid)
        timeout = aiohttp.ClientTimeout(total=None)
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:

            async def send() -> int:
                url = server.url + "slow/000/s1/xhr_send"
                async with http.post(url, data=BODY) as response:
                    return response.status

            sends = [asyncio.create_task(send()) for _ in range(SENDS)]
            try:
                # The first send is delivered at once; the others then push what the
                # server lets them while we watch its memory.
                await asyncio.wait(sends, timeout=60, return_when=asyncio.FIRST_COMPLETED)
                peak = before
                for _ in range(15):
                    peak = max(peak, rss(pid))
                    await asyncio.sleep(0.2)
                done = {task for task in sends if task.done()}
            finally:
                for task in sends:
                    task.cancel()
                await asyncio.gather(*sends, return_exceptions=True)
        assert [task.result() for task in done] == [204]  # only the first got through
        assert peak - before < MAX_GROWTH, f"server grew by {(peak - before) >> 20} MiB"
