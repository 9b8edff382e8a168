"""Drive sockjs-client in Node (``node_probe.js``) from a test, one JSON line each way."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Self

from tests.clients.conftest import NODE_MODULES, require
from tests.helpers import watch

PROBE = Path(__file__).with_name("node_probe.js")


class NodeClients:
    """A Node process holding any number of sockjs-client connections, by name."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self._events: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.ensure_future(self._read())

    #: The script the Node process runs: it reads commands and writes events, a JSON line
    #: each.
    script = PROBE

    @classmethod
    def require(cls) -> None:
        """Skip (fail under CI) unless Node and the script's npm packages are installed."""
        require(shutil.which("node") is not None, "node")
        require((NODE_MODULES / "sockjs-client").is_dir(), "sockjs-client (npm)")

    @classmethod
    async def start(cls) -> Self:
        cls.require()
        process = await asyncio.create_subprocess_exec(
            "node",
            str(cls.script),
            cwd=NODE_MODULES.parent,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(process)

    @classmethod
    @asynccontextmanager
    async def running(cls) -> AsyncIterator[Self]:
        """A started process, stopped on the way out (the body of a fixture)."""
        clients = await cls.start()
        try:
            yield clients
        finally:
            await clients.stop()

    async def _read(self) -> None:
        assert self._process.stdout is not None
        async for line in self._process.stdout:
            self._events.append(json.loads(line))
            self._changed.set()

    async def _command(self, **command: Any) -> None:
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps(command).encode() + b"\n")
        await self._process.stdin.drain()

    def events(self, name: str, kind: str) -> list[dict[str, Any]]:
        return [e for e in self._events if e["id"] == name and e["event"] == kind]

    async def wait(
        self, name: str, kind: str, count: int = 1, timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """Wait for ``count`` events of ``kind`` on connection ``name``; return them all."""

        await watch(self._changed, lambda: len(self.events(name, kind)) >= count, timeout)
        return self.events(name, kind)

    async def open(self, name: str, url: str, transport: str) -> None:
        await self._command(cmd="open", id=name, url=url, transport=transport)
        [opened] = await self.wait(name, "open")
        assert opened["transport"] == transport

    async def send(self, name: str, data: str) -> None:
        await self._command(cmd="send", id=name, data=data)

    async def messages(self, name: str, count: int, timeout: float = 10.0) -> list[str]:
        return [e["data"] for e in await self.wait(name, "message", count, timeout)]

    async def close(self, name: str) -> None:
        await self._command(cmd="close", id=name)

    async def stop(self) -> None:
        if self._process.returncode is None:
            self._process.kill()
            await self._process.wait()
        self._reader.cancel()
