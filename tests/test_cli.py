"""``python -m sockjs_gateway``: the command line as a user runs it, in a subprocess."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
ANNOUNCE = re.compile(rb"sockjs_gateway listening on (http://127\.0\.0\.1:(\d+)/)")
XHR_PRELUDE = b"h" * 2048 + b"\n"


class Server:
    """A running ``python -m sockjs_gateway`` and an HTTP client for it."""

    def __init__(
        self, process: asyncio.subprocess.Process, url: str, http: aiohttp.ClientSession
    ) -> None:
        self.process = process
        self.url = url
        self.http = http

    async def get(self, path: str) -> tuple[int, str]:
        async with self.http.get(self.url + path.lstrip("/")) as response:
            return response.status, await response.text()

    async def post(self, path: str, data: str = "") -> tuple[int, str]:
        async with self.http.post(self.url + path.lstrip("/"), data=data) as response:
            return response.status, await response.text()


def read_log(log: Path) -> str:
    return log.read_text(errors="replace")


@asynccontextmanager
async def running(*args: str, log: Path) -> AsyncIterator[Server]:
    """Start the command line with ``args`` on an ephemeral port; kill it at the end."""
    with log.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "sockjs_gateway",
            *args,
            "--port",
            "0",
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 20)
        match = ANNOUNCE.search(line)
        assert match is not None, (line, read_log(log))
        assert int(match.group(2)) > 0
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            yield Server(process, match.group(1).decode(), http)
    finally:
        if process.returncode is None:
            process.kill()
        await asyncio.wait_for(process.wait(), 10)


async def test_testserver_endpoints(tmp_path: Path) -> None:
    async with running("testserver", log=tmp_path / "stderr") as server:
        status, body = await server.get("/echo")
        assert (status, body) == (200, "Welcome to SockJS!\n")

        status, body = await server.get("/echo/info")
        assert status == 200
        assert '"websocket":true' in body.replace(" ", "")
        assert '"cookie_needed":false' in body.replace(" ", "")
        status, body = await server.get("/cookie_needed_echo/info")
        assert '"cookie_needed":true' in body.replace(" ", "")
        status, body = await server.get("/disabled_websocket_echo/info")
        assert '"websocket":false' in body.replace(" ", "")

        assert await server.post("/echo/000/cli/xhr") == (200, "o\n")
        assert await server.post("/echo/000/cli/xhr_send", '["round", "trip"]') == (204, "")
        assert await server.post("/echo/000/cli/xhr") == (200, 'a["round","trip"]\n')

        assert await server.post("/close/000/cli/xhr") == (200, "o\n")
        assert await server.post("/close/000/cli/xhr") == (200, 'c[3000,"Go away!"]\n')

        assert await server.post("/broadcast/000/b1/xhr") == (200, "o\n")
        assert await server.post("/broadcast/000/b2/xhr") == (200, "o\n")
        assert await server.post("/broadcast/000/b1/xhr_send", '["all"]') == (204, "")
        assert await server.post("/broadcast/000/b2/xhr") == (200, 'a["all"]\n')

        async with server.http.ws_connect(server.url + "echo/000/ws/websocket") as ws:
            assert await ws.receive_str(timeout=5) == "o"
            await ws.send_str('["over websocket"]')
            assert await ws.receive_str(timeout=5) == 'a["over websocket"]'


async def test_response_limit_recycles_streams(tmp_path: Path) -> None:
    async with running("testserver", "--response-limit", "1000", log=tmp_path / "stderr") as server:
        url = server.url + "echo/000/rl/xhr_streaming"
        async with server.http.post(url) as stream:
            assert await asyncio.wait_for(stream.content.readline(), 5) == XHR_PRELUDE
            assert await asyncio.wait_for(stream.content.readline(), 5) == b"o\n"
            big = "x" * 1200
            assert await server.post("/echo/000/rl/xhr_send", f'["{big}"]') == (204, "")
            # Over the 1000-byte budget (the 4096 default would keep it open): the
            # response ends right after the frame.
            rest = await asyncio.wait_for(stream.read(), 5)
            assert rest == f'a["{big}"]\n'.encode()
        # The session goes on over the next request.
        assert await server.post("/echo/000/rl/xhr_send", '["next"]') == (204, "")
        assert await server.post("/echo/000/rl/xhr") == (200, 'a["next"]\n')


async def test_serve_runs_the_demo(tmp_path: Path) -> None:
    async with running("serve", log=tmp_path / "stderr") as server:
        status, page = await server.get("/")
        assert status == 200
        assert "<html" in page.lower()
        assert "SockJS" in page
        status, body = await server.get("/chat/info")
        assert status == 200
        assert '"websocket":true' in body.replace(" ", "")
        async with server.http.ws_connect(server.url + "chat/000/demo/websocket") as ws:
            assert await ws.receive_str(timeout=5) == "o"
            joined = await ws.receive_str(timeout=5)
            assert joined == 'a["* someone joined via websocket"]'
            await ws.send_str('["hello room"]')
            assert await ws.receive_str(timeout=5) == 'a["hello room"]'


async def test_serve_an_app_factory(tmp_path: Path) -> None:
    async with running("serve", "--app", "tests.cli_app:make_app", log=tmp_path / "stderr") as s:
        assert await s.get("/hello") == (200, "hello from cli_app")
        status, body = await s.get("/custom/info")
        assert status == 200
        assert '"cookie_needed":true' in body.replace(" ", "")
        assert await s.post("/custom/000/f/xhr") == (200, "o\n")
        assert await s.post("/custom/000/f/xhr_send", '["factory"]') == (204, "")
        assert await s.post("/custom/000/f/xhr") == (200, 'a["factory"]\n')
        assert (await s.get("/"))[0] == 404  # not the demo


async def test_bad_app_spec_exits_with_an_error(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sockjs_gateway",
        "serve",
        "--app",
        "tests.cli_app",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), 20)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode != 0
    assert b"module:factory" in stderr


async def test_sigterm_closes_sessions_and_exits_0(tmp_path: Path) -> None:
    async with running("testserver", log=tmp_path / "stderr") as server:
        url = server.url + "echo/000/term/xhr_streaming"
        async with server.http.post(url) as stream:
            assert await asyncio.wait_for(stream.content.readline(), 5) == XHR_PRELUDE
            assert await asyncio.wait_for(stream.content.readline(), 5) == b"o\n"
            server.process.send_signal(signal.SIGTERM)
            rest = await asyncio.wait_for(stream.read(), 10)
            assert rest == b'c[1001,"Going away"]\n'
        assert await asyncio.wait_for(server.process.wait(), 10) == 0
