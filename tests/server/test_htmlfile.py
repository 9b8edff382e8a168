"""htmlfile: ``GET .../htmlfile?c=callback`` streams frames as ``<script>`` tags into a
hidden iframe.

What every streaming transport does is in test_streaming.py; here, its callback page and
why no message can break out of its script tag."""

from __future__ import annotations

import asyncio
import json

from aiohttp import ClientResponse

from tests.conftest import MakeEndpoint
from tests.helpers import NO_CACHE, TIMEOUT
from tests.server.test_streaming import ROW, script_frame, xhr_send

CLOSING = b"</script>\r\n"


async def read_prelude(response: ClientResponse) -> bytes:
    return await response.content.readuntil(b"\r\n\r\n")


async def read_script(response: ClientResponse) -> bytes:
    """One ``<script>\\np(...);\\n</script>\\r\\n`` chunk off the open stream."""
    return await response.content.readuntil(CLOSING)


async def test_prelude_names_the_callback_and_fills_a_kilobyte(
    make_endpoint: MakeEndpoint,
) -> None:
    client, _ = await make_endpoint()
    async with asyncio.timeout(TIMEOUT):
        stream = await client.get("/sockjs/000/h1/htmlfile?c=window.cb_1")
        assert stream.status == 200
        prelude = await read_prelude(stream)
        assert await read_script(stream) == b'<script>\np("o");\n</script>\r\n'
        stream.close()
    assert b"var c = parent.window.cb_1;" in prelude
    assert len(prelude) > 1024
    assert stream.headers["Content-Type"] == "text/html; charset=UTF-8"
    assert stream.headers["Cache-Control"] == NO_CACHE
    assert stream.headers["X-Content-Type-Options"] == "nosniff"


async def test_message_cannot_close_the_script_element(make_endpoint: MakeEndpoint) -> None:
    attack = "</script><script>alert(1)</script><!-- & </SCRIPT >"
    client, _ = await make_endpoint()
    async with asyncio.timeout(TIMEOUT):
        stream = await ROW["htmlfile"].open(client, "h3")
        await xhr_send(client, "h3", attack)
        script = await read_script(stream)
        stream.close()
    # The only "</script" is the wrapper's own closing tag at the very end.
    assert script.lower().count(b"</script") == 1
    assert script.endswith(CLOSING)
    assert b"<!--" not in script
    frame = script_frame(script)
    assert json.loads(frame[1:]) == [attack]


async def test_longest_valid_callback_is_accepted(make_endpoint: MakeEndpoint) -> None:
    callback = "A_z.9" + "x" * 27  # 32 characters, every allowed class
    client, _ = await make_endpoint()
    async with asyncio.timeout(TIMEOUT):
        stream = await client.get("/sockjs/000/h6/htmlfile?c=" + callback)
        assert stream.status == 200
        assert f"var c = parent.{callback};".encode() in await read_prelude(stream)
        stream.close()
