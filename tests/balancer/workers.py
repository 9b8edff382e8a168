"""Helpers for the ``--workers`` tests: the workers of a supervisor (from /proc), which
worker served which request (from the access log, where each worker names itself), and a
module-scoped redis-server fixture."""

from __future__ import annotations

import asyncio
import os
import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backplane.servers import RedisServer

__all__ = ["TIMEOUT", "children", "alive", "until_gone", "served_by", "redis"]

TIMEOUT = 10.0
#: "<time> INFO [worker PID] aiohttp.access ... "POST /echo/srv/sess/xhr HTTP/1.1" 200 ..."
ACCESS = re.compile(r"\[worker (\d+)\] aiohttp\.access .*?\"[A-Z]+ (/\S*) HTTP")


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer.running(tmp_path_factory.mktemp("workers-redis")) as server:
        yield server


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
