"""Install the benchmark's peers into git-ignored ``bench/.peers/`` (idempotent).

- ``aiosockjs/``: a venv with aio-libs ``sockjs`` 0.13 and the *same* aiohttp version as
  the project venv, so the comparison is of the SockJS layers, not of aiohttp releases.
- ``node/``: sockjs-node 0.3.24 plus the load generator's ``ws`` and ``undici``, pinned in
  ``bench/package.json``.
- ``tools/``: a venv with py-spy, only when profiling.

Each is reinstalled only when what it should hold (a stamp file) changes.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import aiohttp

BENCH = Path(__file__).resolve().parent
PEERS = BENCH / ".peers"
AIOSOCKJS_PYTHON = PEERS / "aiosockjs" / "bin" / "python"
NODE_MODULES = PEERS / "node" / "node_modules"
PY_SPY = PEERS / "tools" / "bin" / "py-spy"

AIOSOCKJS_REQUIREMENTS = ("sockjs==0.13.0", f"aiohttp=={aiohttp.__version__}")
TOOLS_REQUIREMENTS = ("py-spy==0.4.3",)


def _stamped(folder: Path, wanted: str) -> bool:
    stamp = folder / ".bench-stamp"
    return stamp.exists() and stamp.read_text() == wanted


def _stamp(folder: Path, wanted: str) -> None:
    (folder / ".bench-stamp").write_text(wanted)


def _venv(folder: Path, requirements: tuple[str, ...]) -> None:
    wanted = "\n".join(requirements)
    if _stamped(folder, wanted):
        return
    print(f"bench: installing {', '.join(requirements)} into {folder}", flush=True)
    shutil.rmtree(folder, ignore_errors=True)
    # The base interpreter, not this venv's, so the new venv does not chain to ours.
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(folder)], check=True)
    pip = [str(folder / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--disable-pip-version-check", *requirements], check=True)
    _stamp(folder, wanted)


def _node() -> None:
    folder = PEERS / "node"
    wanted = (BENCH / "package.json").read_text()
    if _stamped(folder, wanted) and NODE_MODULES.is_dir():
        return
    print(f"bench: installing sockjs-node, ws and undici into {folder}", flush=True)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "package.json").write_text(wanted)
    npm = ["npm", "install", "--silent", "--no-audit", "--no-fund", "--no-package-lock"]
    subprocess.run(npm, cwd=folder, check=True)
    _stamp(folder, wanted)


def ensure_loadgen() -> None:
    """Only what the load generator needs (ws and undici), for benches without peers."""
    PEERS.mkdir(parents=True, exist_ok=True)
    _node()


def ensure(*, profiling: bool = False) -> None:
    """Install whatever is missing or out of date."""
    PEERS.mkdir(parents=True, exist_ok=True)
    _venv(PEERS / "aiosockjs", AIOSOCKJS_REQUIREMENTS)
    _node()
    if profiling:
        _venv(PEERS / "tools", TOOLS_REQUIREMENTS)
