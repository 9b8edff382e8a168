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
import pytest

from tests.processes import ROOT, finished, started

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
    async with started(*args, log=log) as (process, url):
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            yield Server(process, url, http)


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
    returncode, stderr = await finished("serve", "--app", "tests.cli_app")
    assert returncode != 0
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


async def test_serve_an_app_factory_from_a_file(tmp_path: Path) -> None:
    app_file = tmp_path / "my_app.py"
    app_file.write_text(
        "from helper_mod import PREFIX\n"
        "from aiohttp import web\n"
        "from sockjs_gateway import SockJSOptions, add_endpoint\n"
        "from sockjs_gateway.testserver import EchoHandler\n"
        "def build() -> web.Application:\n"
        "    app = web.Application()\n"
        "    add_endpoint(app, EchoHandler(), prefix=PREFIX, options=SockJSOptions())\n"
        "    return app\n"
    )
    (tmp_path / "helper_mod.py").write_text('PREFIX = "/from-file"\n')  # a neighbour module
    for spec in (f"{app_file}:build", "tests/cli_app.py:make_app"):
        async with running("serve", "--app", spec, log=tmp_path / "stderr") as s:
            path = "/from-file" if "build" in spec else "/custom"
            assert await s.post(f"{path}/000/f/xhr") == (200, "o\n")
            assert await s.post(f"{path}/000/f/xhr_send", '["file"]') == (204, "")
            assert await s.post(f"{path}/000/f/xhr") == (200, 'a["file"]\n')


async def test_a_missing_app_file_exits_with_an_error(tmp_path: Path) -> None:
    returncode, stderr = await finished(
        "serve", "--app", str(tmp_path / "nowhere.py") + ":make_app"
    )
    assert returncode != 0
    assert b"no such file" in stderr


async def help_of(command: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sockjs_gateway",
        command,
        "--help",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    stdout, _ = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0
    return stdout.decode()


@pytest.mark.parametrize("command", ["serve", "testserver"])
async def test_every_flag_has_help_with_its_default(command: str) -> None:
    text = await help_of(command)
    options = text.split("options:", 1)[1]
    # One entry per flag: a line starting with two spaces and a dash.
    entries = re.split(r"\n  (?=-)", options)[1:]
    flags = [entry.split()[0].rstrip(",") for entry in entries]
    assert "--log-level" in flags
    assert "--access-log" in flags
    for entry in entries:
        if entry.startswith("-h"):
            continue
        assert "default" in entry, entry
    expected = "(default: False)" if command == "testserver" else "(default: True)"
    access = next(e for e in entries if e.startswith("--access-log"))
    assert expected in " ".join(access.split())


async def access_lines(tmp_path: Path, *args: str) -> list[str]:
    log = tmp_path / "stderr"
    async with running(*args, log=log) as server:
        assert (await server.get("/echo/info" if "testserver" in args else "/chat/info"))[0] == 200
        server.process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(server.process.wait(), 10)
    return [line for line in read_log(log).splitlines() if "aiohttp.access" in line]


async def test_testserver_has_no_access_log_unless_asked(tmp_path: Path) -> None:
    assert await access_lines(tmp_path, "testserver") == []
    assert len(await access_lines(tmp_path, "testserver", "--access-log")) == 1
    assert len(await access_lines(tmp_path, "serve")) == 1
    assert await access_lines(tmp_path, "serve", "--no-access-log") == []


async def test_refusals_reach_stderr_at_the_chosen_level(tmp_path: Path) -> None:
    evil = {"Origin": "https://evil.example"}
    for level, shown in [("INFO", True), ("error", False)]:
        log = tmp_path / f"stderr-{level}"
        async with running("serve", "--log-level", level, log=log) as server:
            async with server.http.get(server.url + "chat/info", headers=evil) as response:
                assert response.status == 403
            server.process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(server.process.wait(), 10)
        text = read_log(log)
        assert ("WARNING sockjs_gateway Origin" in text) is shown, text
        if shown:
            assert "'https://evil.example'" in text
