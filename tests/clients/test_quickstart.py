"""docs/quickstart.md runs as written: its ``chat.py`` and ``index.html`` blocks are saved
into an empty folder, ``python chat.py`` (the doc's command) serves them on a free port
(the doc reads ``PORT``), and Chromium uses the page over every transport.

The doc's install commands are not run: the folder gets the checkout's ``node_modules``
(the same sockjs-client version the doc's ``npm install`` names) instead of the network."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from sockjs_gateway import SockJSOptions
from tests.clients.conftest import CLIENT_TRANSPORTS, NODE_MODULES, ROOT, new_page, require
from tests.processes import started

QUICKSTART = ROOT / "docs" / "quickstart.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.DOTALL | re.MULTILINE)
SAVE_AS = re.compile(r"Save this as `([^`]+)`")
TIMEOUT_MS = 20000


def blocks() -> list[tuple[str, str, str]]:
    """Every fenced block of the quickstart as (language, text, the prose just before)."""
    text = QUICKSTART.read_text()
    found = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip().rsplit("\n\n", 1)[-1]
        found.append((match.group(1), match.group(2), before))
    return found


def files() -> dict[str, str]:
    """The blocks the doc tells the reader to save, by file name."""
    saved = {}
    for _, body, before in blocks():
        match = SAVE_AS.search(before)
        if match is not None:
            saved[match.group(1)] = body
    return saved


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the files the quickstart says to save, and node_modules."""
    require((NODE_MODULES / "sockjs-client").is_dir(), "sockjs-client (npm)")
    folder = tmp_path_factory.mktemp("quickstart")
    saved = files()
    assert sorted(saved) == ["chat.py", "index.html"]
    for name, body in saved.items():
        (folder / name).write_text(body)
    (folder / "node_modules").symlink_to(NODE_MODULES)
    return folder


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chat(folder: Path) -> AsyncIterator[str]:
    """The quickstart's app, started with the doc's command; yields its base URL."""
    [command] = [body.strip() for _, body, before in blocks() if before.startswith("Run it")]
    assert command == "python chat.py"  # run with this interpreter, in the folder
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *command.split()[1:],
        cwd=folder,
        env={**os.environ, "PORT": str(port)},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with asyncio.timeout(20), aiohttp.ClientSession() as http:
            while True:  # up once the page is served
                assert process.returncode is None, "chat.py exited"
                try:
                    async with http.get(url + "/") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
        yield url
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


def test_the_doc_names_the_tested_client_version() -> None:
    installed = json.loads((NODE_MODULES / "sockjs-client" / "package.json").read_text())
    [install] = [body for lang, body, _ in blocks() if "npm install sockjs-client" in body]
    assert f"sockjs-client@{installed['version']}" in install


def test_the_allowed_origins_example_is_valid() -> None:
    [snippet] = [body for _, body, _ in blocks() if "allowed_origins=" in body]
    options = eval(snippet, {"SockJSOptions": SockJSOptions})
    assert options.allowed_origins == ("http://localhost:5173",)


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("transport", CLIENT_TRANSPORTS)
async def test_the_page_chats_over_every_transport(browser: Any, chat: str, transport: str) -> None:
    async with new_page(browser) as page:
        await page.goto(f"{chat}/?transport={transport}")
        log = page.locator("#log li")
        await log.filter(has_text=f"connected over {transport}").wait_for(timeout=TIMEOUT_MS)
        await page.fill("#text", f"hello over {transport}")
        await page.press("#text", "Enter")
        await log.filter(has_text=f"hello over {transport}").wait_for(timeout=TIMEOUT_MS)
        assert "closed" not in " ".join(await log.all_text_contents())


async def test_the_cli_serves_the_same_app(folder: Path) -> None:
    """``python -m sockjs_gateway serve --app chat.py:app``, as "Shutting down" says."""
    async with started("serve", "--app", "chat.py:app", cwd=folder) as (process, url):
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as response:
                assert response.status == 200
                assert "<title>Chat</title>" in await response.text()
            async with http.get(url + "chat/info") as response:
                assert response.status == 200
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
