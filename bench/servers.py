"""The Python servers under test: ``python -m bench.servers KIND PORT``.

Every kind serves ``/echo`` (each message back to its sender) and ``/broadcast`` (each
message to every session) on 127.0.0.1, with no access log, on the default asyncio loop:

- ``gateway``: sockjs_gateway's own test server app (``testserver.make_app``) with
  ``response_limit=131072``, served by a plain ``AppRunner`` without the access log the
  command line turns on, so every Python server pays the same for logging (nothing).
  ``BENCH_GATEWAY_SRC`` (set by ``--gateway-ref``) names a source snapshot to import.
- ``floor``: plain aiohttp WebSocket (no SockJS framing): what SockJS framing costs. Also a
  minimal xhr-polling echo (``/echo/{server}/{session}/xhr`` and ``xhr_send``, the same
  frames, nothing else): what aiohttp's per-request cost alone allows for polling.
- ``aiosockjs``: aio-libs ``sockjs`` 0.13, run from its own venv (bench/.peers/aiosockjs).

Imports are made inside each factory: the aio-libs venv has no sockjs_gateway and the
project venv has no aio-libs sockjs.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web


def gateway_app() -> web.Application:
    # A snapshot of another revision (``--gateway-ref``) comes first on the path.
    source = os.environ.get("BENCH_GATEWAY_SRC")
    if source:
        sys.path.insert(0, source)
    from sockjs_gateway.testserver import make_app

    return make_app(response_limit=131072)


def floor_app() -> web.Application:
    peers: set[web.WebSocketResponse] = set()

    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                await ws.send_str(msg.data)
        return ws

    async def broadcast(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        peers.add(ws)
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    for peer in list(peers):
                        if not peer.closed:
                            await peer.send_str(msg.data)
        finally:
            peers.discard(ws)
        return ws

    import json

    polls: dict[str, list[Any]] = {}  # session id -> [queued messages, waiting future]

    async def xhr(request: web.Request) -> web.Response:
        state = polls.get(request.match_info["session"])
        if state is None:
            polls[request.match_info["session"]] = [[], None]
            return web.Response(text="o\n")
        if not state[0]:
            state[1] = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(state[1], 25)
            except TimeoutError:
                return web.Response(text="h\n")
        messages, state[0] = state[0], []
        return web.Response(text="a" + json.dumps(messages) + "\n")

    async def xhr_send(request: web.Request) -> web.Response:
        state = polls.get(request.match_info["session"])
        if state is None:
            raise web.HTTPNotFound()
        state[0].extend(json.loads(await request.text()))
        if state[1] is not None and not state[1].done():
            state[1].set_result(None)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/echo", echo)
    app.router.add_get("/broadcast", broadcast)
    app.router.add_post("/echo/{server}/{session}/xhr", xhr)
    app.router.add_post("/echo/{server}/{session}/xhr_send", xhr_send)
    return app


def aiosockjs_app() -> web.Application:
    import sockjs  # type: ignore[import-not-found,import-untyped,unused-ignore]  # own venv

    async def echo(manager: Any, session: Any, msg: Any) -> None:
        if msg.type == sockjs.MsgType.MESSAGE:
            session.send(msg.data)

    async def broadcast(manager: Any, session: Any, msg: Any) -> None:
        if msg.type == sockjs.MsgType.MESSAGE:
            manager.broadcast(msg.data)

    app = web.Application()
    sockjs.add_endpoint(app, echo, name="echo", prefix="/echo", cookie_needed=False)
    sockjs.add_endpoint(app, broadcast, name="broadcast", prefix="/broadcast", cookie_needed=False)
    return app


FACTORIES: dict[str, Callable[[], web.Application]] = {
    "gateway": gateway_app,
    "floor": floor_app,
    "aiosockjs": aiosockjs_app,
}


async def serve(app: web.Application, port: int) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"listening on http://127.0.0.1:{port}/", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in FACTORIES:
        print(f"usage: python -m bench.servers {{{','.join(FACTORIES)}}} PORT", file=sys.stderr)
        return 2
    asyncio.run(serve(FACTORIES[argv[0]](), int(argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
