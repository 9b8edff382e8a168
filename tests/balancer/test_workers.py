"""``python -m sockjs_gateway serve|testserver --workers N --redis URL``: N processes on one
port (SO_REUSEPORT), the kernel spreading connections over them, and a parent that starts,
signals and reaps them. Real processes and a real redis-server; Chromium on the workers is
in test_workers_browser.py."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.backplane.servers import RedisServer
from tests.balancer.workers import TIMEOUT, children, redis, served_by, until_gone
from tests.processes import ROOT, finished, started

__all__ = ["redis"]  # the module's redis-server fixture

pytestmark = pytest.mark.asyncio(loop_scope="module")

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


async def test_a_port_another_program_listens_on_fails_the_command(redis: RedisServer) -> None:
    with socket.socket() as taken:  # no SO_REUSEPORT: nobody may share this port
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        code, stderr = await finished(
            "testserver", "--workers", "2", "--redis", redis.url, "--port", port
        )
    assert code == 1
    assert b"cannot bind 127.0.0.1:" + port.encode() in stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_workers_share_the_port_and_a_signal_stops_every_one(
    redis: RedisServer, tmp_path: Path, sig: signal.Signals
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
        process.send_signal(sig)
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


async def test_polling_clients_hear_1001_when_the_workers_drain(
    redis: RedisServer, tmp_path: Path
) -> None:
    """SIGTERM reaches every worker, and each drains as one process does: its sessions get
    1001, and the port keeps answering for the shutdown grace, so a polling client between
    two polls (whichever worker its next poll reaches) still hears it."""
    args = ("testserver", "--workers", "2", "--redis", redis.url)
    async with started(*args, log=tmp_path / "stderr") as (process, url):
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as http:
            sessions = [f"{url}echo/000/drain{i}" for i in range(6)]
            for session in sessions:
                async with http.post(session + "/xhr") as response:
                    assert await response.text() == "o\n"
            process.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.5)  # the workers hear of it (they poll nothing: at once)
            for session in sessions:
                async with http.post(session + "/xhr") as response:
                    assert await response.text() == 'c[1001,"Going away"]\n'
        assert await asyncio.wait_for(process.wait(), TIMEOUT * 2) == 0


async def test_what_the_app_prints_at_import_is_passed_on(
    redis: RedisServer, tmp_path: Path
) -> None:
    app = tmp_path / "chatty.py"
    app.write_text(
        'print("chatty app imported", flush=True)\n'
        "from sockjs_gateway.testserver import make_app  # noqa: E402\n"
    )
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "sockjs_gateway", "serve", "--workers", "2"),
        *("--redis", redis.url, "--port", "0", "--app", f"{app}:make_app"),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        lines = [await asyncio.wait_for(process.stdout.readline(), 20) for _ in range(3)]
        assert lines[:2] == [b"chatty app imported\n"] * 2  # once per worker
        assert lines[2].startswith(b"sockjs_gateway listening on http://127.0.0.1:")
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), TIMEOUT * 2) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
