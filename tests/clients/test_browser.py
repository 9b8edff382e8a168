"""sockjs-client 1.6.1 in headless Chromium, every transport forced in turn, from a page on
the server's own origin and from a page on a second origin."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.clients.conftest import CLIENT_TRANSPORTS, Servers

pytestmark = pytest.mark.asyncio(loop_scope="module")

ORIGINS = ["same", "cross"]
TIMEOUT_MS = 20000

# Code points every transport must carry intact: the protocol's client and server escape
# classes (controls, C1, soft hyphen, Arabic format marks, ZW joiners, bidi controls, line
# and paragraph separators, invisible operators, BOM, specials), HTML and URL specials,
# CJK, and astral characters (emoji).
UNICODE = (
    "".join(chr(c) for c in range(0x00, 0x20))
    + "".join(chr(c) for c in range(0x7F, 0xA0))
    + "\u00ad\u0600\u0604\u070f\u17b4\u200b\u200c\u200f\u2028\u2029\u202a\u202f"
    + "\u2060\u206f\ufeff\ufff0\ufff9\ufffd\ufffe\uffff"
    + '</script><b>&amp;</b> 100% "quoted" \\ back'
    + "漢字かなカナ한국어"
    + "😀🎉𝄞"
)
#: What the echo tests send, by test id.
MESSAGES = {
    "ascii": "hello world",
    "every-escapable-class-cjk-and-emoji": UNICODE,
    "one-mebibyte": "".join(chr(0x41 + i % 26) for i in range(1024 * 1024)),
}


@pytest.fixture(params=CLIENT_TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    """Every test runs on each transport, forced in turn."""
    name: str = request.param
    return name


@pytest.fixture(params=ORIGINS)
def origin(request: pytest.FixtureRequest) -> str:
    """... from a page on the server's own origin, and from one on another origin."""
    name: str = request.param
    return name


class Connection:
    """One sockjs-client connection living in a page."""

    def __init__(self, page: Any, name: str) -> None:
        self.page = page
        self.name = name

    async def send(self, message: str) -> None:
        await self.page.evaluate("([n, m]) => probes[n].sock.send(m)", [self.name, message])

    async def messages(self, count: int) -> list[str]:
        result: list[str] = await self.page.evaluate(
            "([n, c, t]) => probes[n].messagesUntil(c, t)", [self.name, count, TIMEOUT_MS]
        )
        return result

    async def close(self) -> None:
        await self.page.evaluate("(n) => probes[n].sock.close()", self.name)

    async def closed(self) -> dict[str, Any]:
        event: dict[str, Any] = await self.page.evaluate(
            "([n, t]) => probes[n].closed(t)", [self.name, TIMEOUT_MS]
        )
        return event


async def connect(
    page: Any, servers: Servers, origin: str, transport: str, endpoint: str = "/echo"
) -> Connection:
    await page.goto(servers.page(origin))
    opened = await page.evaluate(
        "([n, u, t]) => openProbe(n, u, t)", ["main", servers.sockjs + endpoint, transport]
    )
    assert opened == transport
    return Connection(page, "main")


@pytest.mark.parametrize("message", MESSAGES.values(), ids=MESSAGES.keys())
async def test_echo(page: Any, servers: Servers, transport: str, origin: str, message: str) -> None:
    conn = await connect(page, servers, origin, transport)
    await conn.send(message)
    [echoed] = await conn.messages(1)
    assert len(echoed) == len(message)
    assert echoed == message


async def test_thousand_quick_messages_arrive_in_order(
    page: Any, servers: Servers, transport: str, origin: str
) -> None:
    conn = await connect(page, servers, origin, transport)
    await page.evaluate(
        "(n) => { for (let i = 0; i < 1000; i++) probes[n].sock.send('m' + i); }", conn.name
    )
    assert await conn.messages(1000) == [f"m{i}" for i in range(1000)]


async def test_server_close_code_and_reason_reach_the_client(
    page: Any, servers: Servers, transport: str, origin: str
) -> None:
    conn = await connect(page, servers, origin, transport, endpoint="/command")
    await conn.send("close 4321 see you later")
    event = await conn.closed()
    assert (event["code"], event["reason"]) == (4321, "see you later")


async def test_close_endpoint(page: Any, servers: Servers, transport: str, origin: str) -> None:
    await page.goto(servers.page(origin))
    await page.evaluate(
        "([n, u, t]) => { window.probes[n] = new Probe(u, t); }",
        ["main", servers.sockjs + "/close", transport],
    )
    event = await Connection(page, "main").closed()
    assert (event["code"], event["reason"]) == (3000, "Go away!")


async def test_client_close_reaches_on_close(
    page: Any, servers: Servers, transport: str, origin: str
) -> None:
    conn = await connect(page, servers, origin, transport, endpoint="/record")
    marker = str(uuid.uuid4())
    await conn.send(marker)
    assert await conn.messages(1) == [marker]
    [session] = [e[1] for e in servers.recorder.of_kind("message") if e[2] == marker]
    await conn.close()
    recorder = servers.recorder
    await recorder.wait_until(
        lambda: any(e[0] == "close" and e[1] is session for e in recorder.events), timeout=10
    )
