"""``python -m sockjs_gateway serve|testserver --workers N --redis URL``: N processes on one
port (SO_REUSEPORT), the kernel spreading connections over them, and a parent that starts,
signals and reaps them. Real processes, a real redis-server, and Chromium on the two xhr
transports, whose requests land on both workers and relay to the session's owner."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from tests.backplane.servers import RedisServer
from tests.balancer.cluster import page_app
from tests.clients.conftest import CLIENT_JS, require, start
from tests.processes import finished, started

pytestmark = pytest.mark.asyncio(loop_scope="module")

TIMEOUT = 10.0
#: "<time> INFO [worker PID] aiohttp.access ... "POST /echo/srv/sess/xhr HTTP/1.1" 200 ..."
ACCESS = re.compile(r"\[worker (\d+)\] aiohttp\.access .*?\"[A-Z]+ (/\S*) HTTP")
SESSION = re.compile(r"^/echo/(?P<server>[^/]+)/(?P<session>[^/]+)/(?P<kind>\w+)")


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = RedisServer(tmp_path_factory.mktemp("workers-redis"))
    server.start()
    try:
        yield server
    finally:
        server.kill()


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after its ")".
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0): count it as gone.
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


async def until_gone(pids: list[int]) -> None:
    async with asyncio.timeout(TIMEOUT):
        while any(alive(pid) for pid in pids):  # noqa: ASYNC110  (other processes)
            await asyncio.sleep(0.05)


def served_by(log: Path) -> dict[str, set[int]]:
    """Path of every request in a workers' log -> the pids of the workers that served it."""
    found: dict[str, set[int]] = defaultdict(set)
    for match in ACCESS.finditer(log.read_text(errors="replace")):
        found[match[2]].add(int(match[1]))
    return found


def workers_of_server(log: Path, server: str) -> set[int]:
    """The workers that served requests of sessions with this server-id segment."""
    pids: set[int] = set()
    for path, served in served_by(log).items():
        match = SESSION.match(path)
        if match is not None and match["server"] == server:
            pids |= served
    return pids


# -- the command line --------------------------------------------------------------------


@pytest.mark.parametrize("command", ["serve", "testserver"])
async def test_more_than_one_worker_without_redis_is_refused(command: str) -> None:
    code, stderr = await finished(command, "--workers", "2", "--port", "0")
    assert code == 2
    assert b"--workers 2 needs --redis URL" in stderr
    assert b"relay" in stderr  # and why


async def test_a_worker_that_cannot_start_fails_the_whole_command(redis: RedisServer) -> None:
    code, stderr = await finished(
        *("serve", "--workers", "2", "--redis", redis.url, "--port", "0"),
        *("--app", "no_such_module_here:make_app"),
    )
    assert code == 1
    assert b"exited with code" in stderr
    assert b"before listening" in stderr


async def test_workers_share_the_port_and_sigterm_stops_every_one(
    redis: RedisServer, tmp_path: Path
) -> None:
    log = tmp_path / "stderr"
    args = ("testserver", "--workers", "2", "--redis", redis.url, "--access-log")
    async with started(*args, log=log) as (process, url):
        workers = children(process.pid)
        assert len(workers) == 2
        connector = aiohttp.TCPConnector(force_close=True)  # a new connection each time
        async with aiohttp.ClientSession(connector=connector) as http:
            for _ in range(40):  # the kernel hashes each connection to one worker
                async with http.get(url + "echo/info") as response:
                    assert response.status == 200
        assert served_by(log)["/echo/info"] == set(workers)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), TIMEOUT * 2) == 0
        await until_gone(workers)


async def test_workers_outlive_neither_a_killed_parent_nor_each_other(
    redis: RedisServer, tmp_path: Path
) -> None:
    args = ("testserver", "--workers", "2", "--redis", redis.url)
    async with started(*args, log=tmp_path / "one") as (process, _):
        workers = children(process.pid)
        assert len(workers) == 2
        process.kill()  # SIGKILL: the parent cannot tell anyone
        await process.wait()
        await until_gone(workers)  # each notices its parent is gone and shuts down
    async with started(*args, log=tmp_path / "two") as (process, _):
        first, second = children(process.pid)
        os.kill(first, signal.SIGKILL)
        assert await asyncio.wait_for(process.wait(), TIMEOUT * 2) == 1
        await until_gone([second])
    assert f"Worker {first} exited with code -9" in (tmp_path / "two").read_text()


# -- Chromium on the xhr transports, over both workers -----------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pages() -> AsyncIterator[str]:
    require(CLIENT_JS.is_file(), "sockjs-client (npm)")
    runner, url = await start(page_app())
    try:
        yield url
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("transport", ["xhr-streaming", "xhr-polling"])
async def test_chromium_session_spread_over_two_workers(
    redis: RedisServer, tmp_path: Path, page: Any, pages: str, transport: str
) -> None:
    log = tmp_path / "stderr"
    # Idle keep-alive connections close after 0.3 s, so the paced sends below each open a
    # new connection, which the kernel may hand to either worker.
    args = ("testserver", "--workers", "2", "--redis", redis.url, "--access-log")
    async with started(*args, "--header-timeout", "0.3", log=log) as (process, url):
        server = "w" + secrets.token_hex(4)
        await page.goto(pages + "/probe.html")
        opened = await page.evaluate(
            "([u, t, s]) => openProbe('main', u, t, {server: s})", [url + "echo", transport, server]
        )
        assert opened == transport
        sent = []
        for i in range(16):
            text = f"{transport} {i} ✓"
            sent.append(text)
            await page.evaluate("(m) => probes.main.sock.send(m)", text)
            echoed = await page.evaluate("() => probes.main.messagesUntil(1, 20000)")
            assert echoed == [text]
            await asyncio.sleep(0.4)  # past the keep-alive: the next send connects anew
        burst = [f"burst {i}" for i in range(200)]
        await page.evaluate("(ms) => ms.forEach((m) => probes.main.sock.send(m))", burst)
        assert await page.evaluate("() => probes.main.messagesUntil(200, 20000)") == burst
        assert workers_of_server(log, server) == set(children(process.pid))
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), TIMEOUT * 2) == 0
