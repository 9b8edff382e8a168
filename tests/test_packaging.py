"""The package as a user gets it: build the sdist and the wheel, install the wheel into a
fresh virtualenv, and run the demo from a directory that is not the checkout.

This catches what the editable install used everywhere else cannot: a module or page left
out of the distribution, a path that only resolves inside the repository, a dependency
that the test extra happens to provide. Nothing here may skip (CI must prove the wheel
works); it needs pip to reach a package index for aiohttp.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

import sockjs_gateway
from tests.clients.conftest import require

ROOT = Path(__file__).resolve().parent.parent
ANNOUNCE = re.compile(rb"sockjs_gateway listening on (http://127\.0\.0\.1:\d+/)")

pytestmark = pytest.mark.timeout(180)


def run(*args: str | Path, cwd: Path) -> str:
    """Run a command to completion; its output is in the failure message if it fails."""
    result = subprocess.run(
        [str(arg) for arg in args], cwd=cwd, env=_clean_env(), capture_output=True, text=True
    )
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _clean_env() -> dict[str, str]:
    # Nothing may point the new interpreter back at the checkout.
    dropped = ("PYTHONPATH", "VIRTUAL_ENV", "SOCKJS_CLIENT_JS", "STOMPJS_JS")
    return {k: v for k, v in os.environ.items() if k not in dropped}


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``python -m build``: the sdist, then the wheel built from that sdist (so a file
    missing from the sdist, or a stale ``build/`` directory, cannot hide)."""
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--outdir", out, ROOT, cwd=ROOT)
    return out


@pytest.fixture(scope="module")
def venv_python(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with only the wheel (and its dependencies) installed."""
    [wheel] = dist.glob("*.whl")
    venv = tmp_path_factory.mktemp("venv")
    run(sys.executable, "-m", "venv", venv, cwd=venv)
    python = venv / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", wheel, cwd=venv)
    return python


def test_build_makes_a_wheel_and_an_sdist(dist: Path) -> None:
    version = sockjs_gateway.__version__
    names = sorted(path.name for path in dist.iterdir())
    assert names == [
        f"sockjs_gateway-{version}-py3-none-any.whl",
        f"sockjs_gateway-{version}.tar.gz",
    ]


def test_installed_wheel_is_the_package(venv_python: Path, tmp_path: Path) -> None:
    out = run(
        venv_python,
        "-c",
        "import sockjs_gateway, sockjs_gateway.compat.aiosockjs as a; "
        "print(sockjs_gateway.__version__); print(sockjs_gateway.__file__)",
        cwd=tmp_path,
    )
    version, location = out.split()
    assert version == sockjs_gateway.__version__
    assert Path(location).is_relative_to(venv_python.parent.parent)


CLIENT_JS = ROOT / "node_modules" / "sockjs-client" / "dist" / "sockjs.min.js"
STATIC = ROOT / "sockjs_gateway" / "static"


@pytest.mark.parametrize("client_installed", [False, True])
async def test_installed_wheel_serves_the_demo(
    venv_python: Path, tmp_path: Path, client_installed: bool
) -> None:
    env = _clean_env()
    if client_installed:
        require(CLIENT_JS.is_file(), "sockjs-client (npm)")
        env["SOCKJS_CLIENT_JS"] = str(CLIENT_JS)
    process = await asyncio.create_subprocess_exec(
        venv_python,
        "-m",
        "sockjs_gateway",
        "serve",
        "--port",
        "0",
        cwd=tmp_path,  # not the checkout: pages must come from the installed package
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        match = ANNOUNCE.search(line)
        assert match is not None, line
        url = match.group(1).decode()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            async with http.get(url) as page:
                assert page.status == 200
                assert "<title>" in await page.text()
            async with http.get(url + "stomp.html") as page:
                assert page.status == 200
            for shared, kind in (("demo.css", "text/css"), ("demo.js", "application/javascript")):
                async with http.get(url + "static/" + shared) as asset:
                    assert asset.status == 200
                    assert asset.content_type == kind
                    assert await asset.read() == (STATIC / shared).read_bytes()
            async with http.get(url + "chat/info") as info:
                assert info.status == 200
                assert (await info.json())["websocket"] is True
            async with http.get(url + "static/sockjs.min.js", allow_redirects=False) as js:
                if client_installed:
                    assert js.status == 200
                    assert await js.read() == CLIENT_JS.read_bytes()
                else:  # no node_modules/ here, and never a CDN: say how to install it
                    assert js.status == 404
                    assert "npm install sockjs-client@1.6.1" in await js.text()
    finally:
        if process.returncode is None:
            process.terminate()
        await asyncio.wait_for(process.wait(), 10)
