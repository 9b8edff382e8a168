"""A server measured from outside, for the memory tests (tests/server/test_memory.py).

``python -m tests.server.memserver [--no-gc] [--trace] [OPTIONS_JSON]`` serves an echo
endpoint at ``/echo`` (``SockJSOptions(**OPTIONS_JSON)``) on 127.0.0.1 and a free port,
and prints ``port N`` once it listens. It runs in its own process so that its memory
(``/proc/<pid>/status``) is its alone. ``--no-gc`` disables the cyclic garbage collector,
so whatever a reference cycle holds stays held. ``--trace`` starts tracemalloc and answers
``GET /traced`` with the bytes Python has allocated now, which malloc's own caching
cannot blur.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import tracemalloc

from aiohttp import web

from sockjs_gateway import SockJSOptions, add_endpoint
from sockjs_gateway.testserver import EchoHandler


async def _traced(request: web.Request) -> web.Response:
    return web.Response(text=str(tracemalloc.get_traced_memory()[0]))


async def main(args: list[str]) -> None:
    if "--no-gc" in args:
        gc.disable()
    if "--trace" in args:
        tracemalloc.start()
    options = json.loads(next((a for a in args if not a.startswith("--")), "{}"))
    app = web.Application()
    app.router.add_get("/traced", _traced)
    add_endpoint(app, EchoHandler(), prefix="/echo", options=SockJSOptions(**options))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.Server)
    print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
