"""Server memory while one client never reads and another keeps sending.

Not a test: a measurement. ``python bench/slow_consumer.py [--seconds 20] [--policy P]``
starts a server in a subprocess (``python -m sockjs_gateway serve --app
bench.slow_consumer:make_app --port 0``, loopback only) whose endpoint broadcasts 16 KiB
every 5 ms and rebroadcasts whatever a client sends. Two clients connect over WebSocket:

* a *stuck* one: a raw socket with a 4 KiB receive buffer that performs the handshake
  and never reads again, so the server's writes to it block;
* a *sender*: an aiohttp client that sends 4 KiB messages as fast as the server takes
  them and reads everything it is sent.

Every second the script samples the server's ``VmRSS`` (``/proc/PID/status``) and prints
the series, then the growth (first sample, after warm-up, last, max) and the endpoint's
slow-consumer counters from ``/metrics``. The stuck client's share of server memory is
bounded by ``max_queued_bytes`` (plus one write stuck in the socket), so RSS must stay flat.
The server is stopped (SIGTERM, then SIGKILL) at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
BROADCAST = "b" * (16 * 1024)
BROADCAST_EVERY = 0.005
SEND = "s" * (4 * 1024)
HANDSHAKE = (
    b"GET /bench/000/stuck/websocket HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)


# -- server side (runs in the subprocess) ------------------------------------------------------


class Rebroadcast:
    """Every message a client sends goes to every session."""

    async def on_open(self, session: Any) -> None:
        pass

    async def on_message(self, session: Any, message: str) -> None:
        session.endpoint.broadcast(message)

    async def on_close(self, session: Any, code: int, reason: str) -> None:
        pass


def make_app() -> web.Application:
    """The benchmarked app: one endpoint at ``/bench`` that also broadcasts on its own."""
    from sockjs_gateway import SockJSOptions, add_endpoint, add_metrics_route

    app = web.Application()
    options = SockJSOptions(
        slow_consumer=os.environ.get("BENCH_POLICY", "drop-oldest"),  # type: ignore[arg-type]
        send_time_limit=float(os.environ.get("BENCH_SEND_TIME_LIMIT", "10")),
    )
    endpoint = add_endpoint(app, Rebroadcast(), prefix="/bench", options=options)
    add_metrics_route(app)

    async def broadcaster(app: web.Application) -> Any:
        async def loop() -> None:
            while True:
                endpoint.broadcast(BROADCAST)
                await asyncio.sleep(BROADCAST_EVERY)

        task = asyncio.get_running_loop().create_task(loop())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(broadcaster)
    return app


# -- client side ---------------------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    assert match is not None
    return int(match.group(1))


def start_server(policy: str, send_time_limit: float) -> tuple[subprocess.Popen[str], int]:
    env = dict(os.environ, BENCH_POLICY=policy, BENCH_SEND_TIME_LIMIT=str(send_time_limit))
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sockjs_gateway",
            "serve",
            "--app",
            "bench.slow_consumer:make_app",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return server, listening_port(server, 15)


def listening_port(server: subprocess.Popen[str], timeout: float) -> int:
    """The port a ``python -m sockjs_gateway`` server says it listens on, read from its
    output; stops it and exits if it says nothing of the kind within ``timeout`` seconds."""
    assert server.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = server.stdout.readline()
        if not line:
            break
        found = re.search(r"listening on http://127\.0\.0\.1:(\d+)/", line)
        if found:
            return int(found.group(1))
    stop_server(server)
    raise SystemExit("the server did not start")


def stop_server(server: subprocess.Popen[str]) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)


async def stuck_client(port: int) -> socket.socket:
    """Connect, hand-shake, and never read again."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    await loop.sock_sendall(sock, HANDSHAKE)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 1024), 10)
        if not chunk:
            raise SystemExit("the stuck client's handshake failed")
        head += chunk
    return sock


async def sender(port: int, stop: asyncio.Event, counts: dict[str, int]) -> None:
    import aiohttp

    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(
            f"http://127.0.0.1:{port}/bench/000/sender/websocket", max_msg_size=0
        ) as ws,
    ):

        async def drain() -> None:
            async for msg in ws:
                counts["received bytes"] += len(msg.data)

        reader = asyncio.ensure_future(drain())
        try:
            while not stop.is_set():
                await ws.send_str(f'["{SEND}"]')
                counts["sent messages"] += 1
                await asyncio.sleep(0.001)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


async def metrics(port: int) -> dict[str, float]:
    import aiohttp

    wanted = ("slow_consumer_drops", "slow_consumer_closes", "messages_out", "bytes_out")
    found: dict[str, float] = {}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        text = await response.text()
    for line in text.splitlines():
        for name in wanted:
            if line.startswith(f"sockjs_{name}_total{{"):
                found[name] = float(line.rsplit(" ", 1)[1])
    return found


async def measure(port: int, pid: int, seconds: int) -> tuple[list[int], dict[str, int]]:
    counts = {"sent messages": 0, "received bytes": 0}
    stop = asyncio.Event()
    stuck = await stuck_client(port)
    sending = asyncio.ensure_future(sender(port, stop, counts))
    series: list[int] = []
    try:
        for _ in range(seconds):
            await asyncio.sleep(1)
            if sending.done():
                sending.result()  # raises what went wrong
                raise SystemExit("the sender stopped early")
            series.append(rss_kib(pid))
            print(f"  t={len(series):3d}s  server VmRSS {series[-1] / 1024:7.1f} MiB", flush=True)
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(sending, 10)
        stuck.close()
    return series, counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument(
        "--policy", choices=["close", "drop-oldest", "drop-newest"], default="drop-oldest"
    )
    parser.add_argument("--send-time-limit", type=float, default=10.0)
    args = parser.parse_args(argv)
    server, port = start_server(args.policy, args.send_time_limit)
    print(
        f"server pid {server.pid} on 127.0.0.1:{port}; slow_consumer={args.policy}, "
        f"send_time_limit={args.send_time_limit}s, defaults otherwise "
        f"(max_queued_bytes 4 MiB, max_queued_messages 1000); {args.seconds} s",
        flush=True,
    )
    try:
        baseline = rss_kib(server.pid)
        print(f"  idle server VmRSS {baseline / 1024:.1f} MiB", flush=True)

        async def run() -> tuple[list[int], dict[str, int], dict[str, float]]:
            series, counts = await measure(port, server.pid, args.seconds)
            return series, counts, await metrics(port)

        series, counts, counters = asyncio.run(run())
    finally:
        stop_server(server)
    warm = series[min(2, len(series) - 1)]
    mib = 1024.0
    print(
        f"VmRSS MiB: idle {baseline / mib:.1f}, first {series[0] / mib:.1f}, "
        f"after warm-up (t=3s) {warm / mib:.1f}, last {series[-1] / mib:.1f}, "
        f"max {max(series) / mib:.1f}; growth first->last {(series[-1] - series[0]) / mib:+.1f}, "
        f"warm-up->last {(series[-1] - warm) / mib:+.1f}"
    )
    print(
        f"sender: {counts['sent messages']} messages sent, "
        f"{counts['received bytes'] / 2**20:.0f} MiB received"
    )
    print("server counters: " + ", ".join(f"{k}={v:.0f}" for k, v in counters.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
