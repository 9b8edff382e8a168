"""Under gunicorn, as aiohttp apps are usually deployed: ``gunicorn 'module:factory'
--worker-class aiohttp.GunicornWebWorker`` serves sessions and gives 1001 on SIGTERM;
``sockjs_gateway.worker.GunicornWorker`` adds the shutdown grace (polling clients get
their 1001 too) and Hixie-76. A real gunicorn in a subprocess, on a free port."""

from __future__ import annotations

import asyncio
import importlib.util
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from tests.backplane.servers import RedisServer
from tests.clients.conftest import require
from tests.server.test_hixie76 import ANSWER, KEY3, handshake, read_head

ROOT = Path(__file__).resolve().parent.parent
LISTENING = re.compile(r"Listening at: (http://127\.0\.0\.1:(\d+))")
XHR_PRELUDE = b"h" * 2048 + b"\n"
TIMEOUT = 10.0


def _no_control_socket() -> list[str]:
    """Recent gunicorn opens a control socket in ~/.gunicorn, shared by every run: off."""
    try:
        from gunicorn.config import KNOWN_SETTINGS  # type: ignore[import-untyped]
    except ImportError:
        return []
    flags = {flag for setting in KNOWN_SETTINGS for flag in setting.cli or ()}
    return ["--no-control-socket"] if "--no-control-socket" in flags else []


_NO_CONTROL_SOCKET = _no_control_socket()


@asynccontextmanager
async def gunicorn(
    app: str, worker: str, *more: str, workers: int = 1
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """gunicorn serving ``app`` with ``workers`` workers (``more``: more gunicorn flags);
    yields (master process, base URL)."""
    require(importlib.util.find_spec("gunicorn") is not None, "gunicorn (PyPI)")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gunicorn",
        app,
        "--worker-class",
        worker,
        "--workers",
        str(workers),
        *more,
        "--bind",
        "127.0.0.1:0",
        "--graceful-timeout",
        "20",
        *_NO_CONTROL_SOCKET,
        cwd=ROOT,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    seen: list[str] = []
    try:
        url = None
        async with asyncio.timeout(30):
            while url is None:
                line = (await process.stderr.readline()).decode(errors="replace")
                assert line, "gunicorn exited:\n" + "".join(seen)
                seen.append(line)
                match = LISTENING.search(line)
                if match is not None:
                    url = match.group(1)
            while sum("Booting worker" in line for line in seen) < workers:
                seen.append((await process.stderr.readline()).decode(errors="replace"))
        # Keep reading, so that gunicorn never blocks on a full pipe.
        drained = asyncio.ensure_future(process.stderr.read())
        yield process, url
        await asyncio.wait_for(drained, TIMEOUT * 2)
    finally:
        if process.returncode is None:
            process.kill()
        await asyncio.wait_for(process.wait(), TIMEOUT)


async def post(http: aiohttp.ClientSession, url: str, data: str = "") -> tuple[int, str]:
    async with http.post(url, data=data) as response:
        return response.status, await response.text()


async def until_up(http: aiohttp.ClientSession, url: str) -> None:
    """The worker may still be starting after the master logged it."""
    async with asyncio.timeout(20):
        while True:
            try:
                async with http.get(url + "/echo/info") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)


async def test_aiohttp_worker_serves_sessions_and_sigterm_gives_1001() -> None:
    app = "sockjs_gateway.testserver:make_app()"  # aiohttp's worker needs an app, not a factory
    async with (
        gunicorn(app, "aiohttp.GunicornWebWorker") as (process, url),
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as http,
    ):
        await until_up(http, url)
        assert await post(http, url + "/echo/000/g1/xhr") == (200, "o\n")
        assert await post(http, url + "/echo/000/g1/xhr_send", '["via gunicorn"]') == (204, "")
        assert await post(http, url + "/echo/000/g1/xhr") == (200, 'a["via gunicorn"]\n')
        async with http.ws_connect(url + "/echo/000/g2/websocket") as ws:
            assert await ws.receive_str(timeout=TIMEOUT) == "o"
            await ws.send_str('["ws"]')
            assert await ws.receive_str(timeout=TIMEOUT) == 'a["ws"]'
        async with http.post(url + "/echo/000/g3/xhr_streaming") as stream:
            assert await asyncio.wait_for(stream.content.readline(), TIMEOUT) == XHR_PRELUDE
            assert await asyncio.wait_for(stream.content.readline(), TIMEOUT) == b"o\n"
            process.send_signal(signal.SIGTERM)
            rest = await asyncio.wait_for(stream.read(), TIMEOUT)
            assert rest == b'c[1001,"Going away"]\n'
        assert await asyncio.wait_for(process.wait(), TIMEOUT * 2) == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_our_worker_gives_polling_clients_1001_and_speaks_hixie76(
    sig: signal.Signals,
) -> None:
    app = "sockjs_gateway.testserver:make_app"  # a plain factory is fine here
    async with (
        gunicorn(app, "sockjs_gateway.worker.GunicornWorker") as (process, url),
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as http,
    ):
        await until_up(http, url)
        port = int(url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(handshake(port).replace(b"/sockjs/", b"/echo/"))
            status, _ = await read_head(reader)
            assert status.startswith("HTTP/1.1 101")
            writer.write(KEY3)
            assert await asyncio.wait_for(reader.readexactly(19), TIMEOUT) == ANSWER + b"\x00o\xff"
        finally:
            writer.close()
            await writer.wait_closed()
        assert await post(http, url + "/echo/000/p1/xhr") == (200, "o\n")
        # The client is between two polls when the signal comes; its next poll, a moment
        # later, still finds a listener and gets the close frame.
        process.send_signal(sig)
        await asyncio.sleep(1.5)  # aiohttp's worker notices the signal within a second
        assert await post(http, url + "/echo/000/p1/xhr") == (200, 'c[1001,"Going away"]\n')
        assert await asyncio.wait_for(process.wait(), TIMEOUT * 2) == 0


@pytest.mark.parametrize(
    "worker", ["aiohttp.GunicornWebWorker", "sockjs_gateway.worker.GunicornWorker"]
)
async def test_two_workers_with_a_redis_backplane_answer_any_session(
    worker: str, tmp_path: Path
) -> None:
    """``-w 2``: the factory gives each worker its own RedisBackplane (gunicorn imports the
    app in every worker), so a request reaching the worker that does not hold its session
    is relayed to the one that does."""
    redis = RedisServer(tmp_path)
    redis.start()
    access = tmp_path / "access.log"
    app = f"sockjs_gateway.testserver:make_app(redis_url={redis.url!r})"
    log_flags = ("--access-logfile", str(access), "--access-logformat", "%P %r %s")
    connector = aiohttp.TCPConnector(force_close=True)  # every request on a new connection
    try:
        async with (
            gunicorn(app, worker, *log_flags, workers=2) as (process, url),
            aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=TIMEOUT)
            ) as http,
        ):
            await until_up(http, url)

            async def session(i: int) -> None:
                base = f"{url}/echo/000/w{i}"
                assert await post(http, base + "/xhr") == (200, "o\n")
                for n in range(3):
                    assert await post(http, base + "/xhr_send", f'["{i}.{n}"]') == (204, "")
                expected = "a[" + ",".join(f'"{i}.{n}"' for n in range(3)) + "]\n"
                assert await post(http, base + "/xhr") == (200, expected)

            # gunicorn's workers share one listening socket, and an idle worker that wakes
            # first takes every connection: sessions in batches of 10 at once, until both
            # workers have served some (at most 30 batches).
            for batch in range(30):
                await asyncio.gather(*(session(batch * 10 + i) for i in range(10)))
                if len(served_by(access)) == 2:
                    break
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), TIMEOUT * 2) == 0
        assert len(served_by(access)) == 2  # both workers took requests of these sessions
    finally:
        redis.kill()


def served_by(access: Path) -> set[str]:
    """The workers (pids) that served requests of the sessions above, from the access log
    (gunicorn may write it a moment after the response)."""
    if not access.exists():
        return set()
    lines = access.read_text().splitlines()
    return {line.split(" ", 1)[0] for line in lines if "/echo/000/w" in line}
