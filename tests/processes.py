"""``python -m sockjs_gateway`` in a subprocess, as a user runs it: one helper for every
test that needs the command line's own server (its runner, signals, memory)."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path
from typing import IO

__all__ = ["ROOT", "ANNOUNCE", "started", "finished"]

ROOT = Path(__file__).resolve().parent.parent
#: The line the command line prints once it listens; group 1 is the base URL.
ANNOUNCE = re.compile(rb"sockjs_gateway listening on (http://127\.0\.0\.1:\d+/)")


@asynccontextmanager
async def started(
    *args: str, log: Path | None = None, cwd: Path = ROOT
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """Run ``python -m sockjs_gateway ARGS --port 0``; yield the process and its base URL
    (ending in "/"), and kill it at the end if it still runs. ``log`` gets its stderr."""
    with ExitStack() as files:
        stderr: IO[bytes] | int = asyncio.subprocess.DEVNULL
        if log is not None:
            stderr = files.enter_context(log.open("wb"))
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "sockjs_gateway",
            *args,
            "--port",
            "0",
            cwd=cwd,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 20)
        match = ANNOUNCE.search(line)
        assert match is not None, (line, _text(log))
        yield process, match.group(1).decode()
    finally:
        if process.returncode is None:
            process.kill()
        await asyncio.wait_for(process.wait(), 10)


def _text(log: Path | None) -> str:
    return log.read_text(errors="replace") if log is not None else ""


async def finished(*args: str, cwd: Path = ROOT) -> tuple[int, bytes]:
    """Run ``python -m sockjs_gateway ARGS`` to its end; its exit code and stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sockjs_gateway",
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), 20)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, stderr
