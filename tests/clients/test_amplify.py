"""The testserver's ``/amplify``, as sockjs-client's own test server defines it: a message
``n`` is answered with ``"x" * 2**n`` (``n`` rounded down; outside 1..18 or not a number:
1). sockjs-client in Chromium downloads up to 256 KiB answers on every transport."""

from __future__ import annotations

from typing import Any

import pytest

from tests.clients.conftest import CLIENT_TRANSPORTS, Servers
from tests.clients.test_browser import connect

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.mark.parametrize("transport", CLIENT_TRANSPORTS)
async def test_amplify_answers_with_two_to_the_n_bytes(
    page: Any, servers: Servers, transport: str
) -> None:
    conn = await connect(page, servers, "same", transport, endpoint="/amplify")
    for n in ("1", "10", "18", "4.9"):
        await conn.send(n)
    sizes = [len(m) for m in await conn.messages(4)]
    assert sizes == [2, 1024, 2**18, 16]
    await conn.send("18")
    [big] = await conn.messages(1)
    assert big == "x" * 2**18
