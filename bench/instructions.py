"""Instructions per round trip, counted by callgrind: a figure other load cannot move.

``python -m bench.instructions [--transport ws|xhr] [--sessions N] [--python PY]
[--gateway-ref REF]`` runs each server of ``bench.servers`` (the gateway and the aiohttp
floor) under ``valgrind --tool=callgrind`` twice, once with 20 and once with 60 echo round
trips per session, and prints the difference divided by the extra round trips: the
instructions one round trip costs the server, start-up and connection set-up cancelled
out. The load generator is a plain aiohttp client in this process (it is not counted).

Wall-clock figures (``make bench``) need a quiet machine; on a shared or loaded one this
is the number to compare two revisions or the gateway with the floor. It counts
instructions, not time: cache misses and system calls are not in it, so a ratio here is
a guide to, not a copy of, the throughput ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from .run import ROOT, gateway_snapshot

ROUNDS = (20, 60)
PAYLOAD = "x" * 64


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _websocket_echo(port: int, sockjs: bool, sessions: int, rounds: int) -> None:
    async with aiohttp.ClientSession() as http:
        sockets = []
        for i in range(sessions):
            path = f"/echo/000/s{i}/websocket" if sockjs else "/echo"
            ws = await http.ws_connect(f"http://127.0.0.1:{port}{path}")
            if sockjs:
                assert (await ws.receive(timeout=60)).data == "o"
            sockets.append(ws)

        async def one(ws: aiohttp.ClientWebSocketResponse) -> None:
            for _ in range(rounds):
                await ws.send_str(json.dumps([PAYLOAD]) if sockjs else PAYLOAD)
                while (await ws.receive(timeout=60)).data == "h":
                    pass

        await asyncio.gather(*(one(ws) for ws in sockets))
        for ws in sockets:
            await ws.close()


async def _polling_echo(port: int, sessions: int, rounds: int) -> None:
    body = json.dumps([PAYLOAD])
    # Each session holds a waiting poll and a send at once: past the default pool of 100
    # connections the sends would queue behind polls that wait for them.
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def one(i: int) -> None:
            base = f"http://127.0.0.1:{port}/echo/000/p{i}"
            async with http.post(base + "/xhr") as response:
                assert await response.text() == "o\n"
            for _ in range(rounds):
                # As bench/node/loadgen.js does: the send and the poll go out together, so
                # the poll usually waits for the echo (the path a browser exercises).
                sent = asyncio.ensure_future(http.post(base + "/xhr_send", data=body))
                for _ in range(10):  # heartbeats aside, the echo comes on the first poll
                    async with http.post(base + "/xhr") as response:
                        if (await response.text()).startswith("a"):
                            break
                else:
                    raise RuntimeError("no echo after 10 polls: did the session expire?")
                async with await sent as response:
                    assert response.status == 204, response.status

        await asyncio.gather(*(one(i) for i in range(sessions)))


def _count(
    python: str, kind: str, source: Path | None, transport: str, sessions: int, rounds: int
) -> int:
    """Instructions the server ran in its whole life, for ``rounds`` round trips each."""
    port = _free_port()
    env = dict(os.environ)
    if source is not None:
        env["BENCH_GATEWAY_SRC"] = str(source)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
        server = subprocess.Popen(
            [*valgrind, python, "-m", "bench.servers", kind, str(port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert server.stdout is not None
            line = server.stdout.readline()
            if "listening" not in line:
                raise RuntimeError(f"{kind} did not start under valgrind: {line!r}")
            if transport == "ws":
                load = _websocket_echo(port, kind != "floor", sessions, rounds)
            else:
                load = _polling_echo(port, sessions, rounds)
            asyncio.run(asyncio.wait_for(load, 600))
            server.send_signal(signal.SIGINT)
            server.wait(300)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
        match = re.search(r"^(?:summary|totals):\s*(\d+)", out.read_text(), re.M)
        if match is None:
            raise RuntimeError("callgrind wrote no totals")
        return int(match.group(1))


def per_round_trip(
    python: str, kind: str, source: Path | None, transport: str, sessions: int
) -> float:
    low, high = (_count(python, kind, source, transport, sessions, r) for r in ROUNDS)
    return (high - low) / (sessions * (ROUNDS[1] - ROUNDS[0]))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    parser.add_argument("--transport", choices=("ws", "xhr"), default="ws")
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--python", default=sys.executable, help="the servers' interpreter")
    parser.add_argument("--gateway-ref", help="also count the gateway as of this git ref")
    args = parser.parse_args(argv)
    rows: list[tuple[str, str, Path | None]] = [("gateway", "gateway", None)]
    if args.gateway_ref:
        rows.append((f"gateway@{args.gateway_ref}", "gateway", gateway_snapshot(args.gateway_ref)))
    rows.append(("aiohttp floor", "floor", None))
    version = subprocess.run(
        [args.python, "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(f"{args.transport} echo, {args.sessions} sessions, Python {version}")
    results = {}
    for label, kind, source in rows:
        results[label] = per_round_trip(args.python, kind, source, args.transport, args.sessions)
        print(f"  {label:24s} {results[label]:10,.0f} instructions per round trip", flush=True)
    floor = results["aiohttp floor"]
    for label, value in results.items():
        if label != "aiohttp floor":
            print(f"  {label}: floor/gateway = {floor / value:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
