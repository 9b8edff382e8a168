"""``serve`` answers only the Host names it is meant for (the DNS-rebinding defence), on
every route; ``--allowed-hosts`` adds names; ``testserver`` stays open to every name, as
the protocol suite needs. Each refusal is one log line."""

from __future__ import annotations

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
