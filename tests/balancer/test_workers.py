"""``python -m sockjs_gateway serve|testserver --workers N --redis URL``: N processes on one
port (SO_REUSEPORT), the kernel spreading connections over them, and a parent that starts,
signals and reaps them. Real processes, a real redis-server, and Chromium on the two xhr
transports (the demo chat), whose requests land on both workers and relay to the
session's owner."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sockjs_gateway.demo import sockjs_client_path
from tests.backplane.servers import RedisServer
from tests.clients.conftest import require
from tests.processes import finished, started

pytestmark = pytest.mark.asyncio(loop_scope="module")

TIMEOUT = 10.0
#: "<time> INFO [worker PID] aiohttp.access ... "POST /echo/srv/sess/xhr HTTP/1.1" 200 ..."
ACCESS = re.compile(r"\[worker (\d+)\] aiohttp\.access .*?\"[A-Z]+ (/\S*) HTTP")


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


@pytest.mark.parametrize("transport", ["xhr-streaming", "xhr-polling"])
async def test_the_demo_chat_over_two_workers(
    redis: RedisServer, tmp_path: Path, browser: Any, transport: str
) -> None:
    """The demo page in two tabs on ``serve --workers 2``: each tab's requests land on both
    workers (the access log names the worker), and every line reaches both tabs."""
    require(sockjs_client_path() is not None, "sockjs-client (npm)")
    log = tmp_path / "stderr"
    # Idle keep-alive connections close after 0.3 s, so the paced messages below each go
    # out on a new connection, which the kernel may hand to either worker.
    args = ("serve", "--workers", "2", "--redis", redis.url, "--header-timeout", "0.3")
    async with started(*args, log=log) as (process, url):
        tabs = [await open_tab(browser, f"{url}?transport={transport}") for _ in range(2)]
        try:
            for tab in tabs:
                await tab.wait_for_function(
                    "(t) => document.getElementById('transport').textContent === t",
                    arg=transport,
                )
            for i in range(12):
                tab = tabs[i % 2]
                await tab.fill("input[name=text]", f"line {i} over {transport}")
                await tab.press("input[name=text]", "Enter")
                for each in tabs:
                    await (
                        each.locator("#chat")
                        .get_by_text(f"line {i} over {transport}")
                        .wait_for(timeout=20000)
                    )
                await asyncio.sleep(0.4)  # past the keep-alive: the next send connects anew
        finally:
            for tab in tabs:
                await tab.context.close()
        workers = set(children(process.pid))
        sessions = sessions_by_worker(log)
        assert len(sessions) == 2  # the two tabs' sessions
        for session, pids in sessions.items():
            assert pids == workers, (session, pids, workers)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), TIMEOUT * 2) == 0


async def open_tab(browser: Any, url: str) -> Any:
    page = await (await browser.new_context()).new_page()
    await page.goto(url)
    return page


def sessions_by_worker(log: Path) -> dict[str, set[int]]:
    """Session id of every /chat session in a workers' log -> the workers that served it."""
    found: dict[str, set[int]] = defaultdict(set)
    for path, pids in served_by(log).items():
        match = re.match(r"^/chat/[^/]+/([^/]+)/\w+", path)
        if match is not None:
            found[match[1]] |= pids
    return found
