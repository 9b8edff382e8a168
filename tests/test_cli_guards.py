"""``serve`` answers only the Host names it is meant for (the DNS-rebinding defence), on
every route; ``--allowed-hosts`` adds names; ``testserver`` stays open to every name, as
the protocol suite needs. ``--header-timeout`` closes slowloris connections. Each refusal
is one log line."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from tests.test_cli import Server, read_log, running

REBIND = "rebind.evil.com"


async def fetch(server: Server, path: str, host: str) -> tuple[int, str]:
    port = server.url.rstrip("/").rsplit(":", 1)[1]
    headers = {"Host": f"{host}:{port}", "Origin": f"http://{host}:{port}"}
    async with server.http.get(server.url + path.lstrip("/"), headers=headers) as response:
        return response.status, await response.text()


async def test_serve_refuses_a_rebound_host_with_421(tmp_path: Path) -> None:
    log = tmp_path / "stderr"
    async with running("serve", log=log) as server:
        for path in ("/", "/chat/info", "/chat/000/rb/xhr"):
            assert await fetch(server, path, REBIND) == (421, "Host not allowed.")
        for host in ("localhost", "127.0.0.1", "app.localhost"):
            assert (await fetch(server, "/chat/info", host))[0] == 200
    logged = read_log(log)
    assert f"Host '{REBIND}:" in logged
    assert logged.count("refused") == 1  # rate-limited per kind


async def test_allowed_hosts_adds_names(tmp_path: Path) -> None:
    args = ("serve", "--allowed-hosts", "app.example.com, *.example.net")
    async with running(*args, log=tmp_path / "stderr") as server:
        assert (await fetch(server, "/chat/info", "app.example.com"))[0] == 200
        assert (await fetch(server, "/chat/info", "a.example.net"))[0] == 200
        assert (await fetch(server, "/chat/info", "localhost"))[0] == 200
        assert (await fetch(server, "/chat/info", REBIND))[0] == 421


async def test_testserver_serves_every_host(tmp_path: Path) -> None:
    async with running("testserver", log=tmp_path / "stderr") as server:
        assert (await fetch(server, "/echo/info", REBIND))[0] == 200


async def test_serve_closes_a_connection_that_sends_its_headers_too_slowly(
    tmp_path: Path,
) -> None:
    log = tmp_path / "stderr"
    async with running("serve", "--header-timeout", "0.5", log=log) as server:
        port = int(server.url.rstrip("/").rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        closed = False
        try:
            for byte in b"GET /chat/info HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100:
                writer.write(bytes([byte]))
                await writer.drain()
                with contextlib.suppress(TimeoutError):
                    if await asyncio.wait_for(reader.read(1), 0.1) == b"":
                        closed = True
                        break
        except ConnectionError:
            closed = True
        finally:
            writer.close()
        assert closed
        assert (await server.get("/chat/info"))[0] == 200
    assert "request headers not complete within 0.5 s" in read_log(log)
