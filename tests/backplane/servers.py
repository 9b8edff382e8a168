"""Real servers for the backplane tests, each on 127.0.0.1 and a free port, never a fixed
one: Debian's ``redis-server`` (no persistence), and ``python -m sockjs_gateway
testserver --redis`` nodes. Every wait is bounded in count and time."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from tests.clients.conftest import require

ROOT = Path(__file__).resolve().parents[2]
ANNOUNCE = re.compile(rb"sockjs_gateway listening on http://127\.0\.0\.1:(\d+)/")


def free_port() -> int:
    """A TCP port nobody listens on now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 5.0) -> bool:
    """Whether ``process`` accepts connections on ``port`` within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return True
        time.sleep(0.02)
    return False


def require_redis() -> str:
    """The redis-server binary and the redis package, or skip (fail under CI=true)."""
    path = shutil.which("redis-server") or "/usr/bin/redis-server"
    require(os.access(path, os.X_OK), "redis-server (apt-get install redis-server)")
    try:
        import redis.asyncio  # noqa: F401
    except ImportError:
        require(False, "redis (PyPI, extra 'redis')")
    return path


class RedisServer:
    """A ``redis-server`` without persistence that a test can kill and start again on the
    same port."""

    def __init__(self, workdir: Path) -> None:
        self.binary = require_redis()
        self.workdir = workdir
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @classmethod
    @contextlib.contextmanager
    def running(cls, workdir: Path) -> Iterator[RedisServer]:
        """A started server, killed on the way out (SIGKILL ends a paused one too)."""
        server = cls(workdir)
        server.start()
        try:
            yield server
        finally:
            server.kill()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start on ``self.port``, or on a free port the first time (three tries, in case
        another process takes the port between the probe and the bind)."""
        for _ in range(3):
            port = self.port or free_port()
            process = subprocess.Popen(
                [
                    self.binary,
                    *("--port", str(port), "--bind", "127.0.0.1", "--save", ""),
                    *("--appendonly", "no", "--dir", str(self.workdir), "--daemonize", "no"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if wait_listening(port, process):
                self.port, self.process = port, process
                return
            process.kill()
            process.wait(5)
            if self.port:
                break
        raise RuntimeError(f"redis-server did not start on 127.0.0.1:{self.port or '?'}")

    def kill(self) -> None:
        """SIGKILL: no goodbye to the clients, as when the machine dies."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
        self.process = None

    def pause(self) -> None:
        """SIGSTOP: connections stay open and nothing answers (a silent network)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


class Node:
    """``python -m sockjs_gateway testserver --port 0 --redis URL`` in a subprocess."""

    def __init__(self, process: asyncio.subprocess.Process, port: int, log: Path) -> None:
        self.process = process
        self.url = f"http://127.0.0.1:{port}"
        self.log = log

    @classmethod
    async def start(cls, redis_url: str, log: Path, *extra: str) -> Node:
        """Start a node; ``extra`` are more ``testserver`` flags."""
        args = ("testserver", "--port", "0", "--redis", redis_url, *extra)
        return await cls.launch(args, log)

    @classmethod
    async def launch(
        cls, args: Sequence[str], log: Path, env: Mapping[str, str] | None = None
    ) -> Node:
        """``python -m sockjs_gateway ARGS`` (which must listen on a port it announces), its
        stderr in ``log``; ``env`` adds environment variables."""
        with log.open("wb") as stderr:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                *("-m", "sockjs_gateway", *args),
                cwd=ROOT,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                env={**os.environ, **(env or {})},
            )
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), 20)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
        match = ANNOUNCE.search(line)
        if match is None:
            process.kill()
            await process.wait()
            raise AssertionError((line, cls.read_log(log)))
        return cls(process, int(match.group(1)), log)

    @staticmethod
    def read_log(log: Path) -> str:
        return log.read_text(errors="replace")

    def logged(self) -> str:
        """What the node wrote to stderr so far."""
        return self.read_log(self.log)

    async def kill(self) -> None:
        """SIGKILL: the node vanishes without closing anything."""
        if self.process.returncode is None:
            self.process.kill()
        await asyncio.wait_for(self.process.wait(), 10)
