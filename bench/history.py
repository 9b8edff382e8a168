"""Channel history: what it costs to publish with it, and to replay it to a reconnecting
client. ``python -m bench.history [--quick]`` (``make bench`` runs it).

Not a test: a measurement, printed as Markdown rows.

1. *Publish cost*, in process (``time.process_time`` over N publishes, µs per message):
   a STOMP ``/topic/`` publish to 0 and 10 subscribed connections (pure machines, no sockets)
   on a ``Broker()`` and on a ``Broker(history=HistoryLimits())``; and the bare
   ``HistoryStore.append`` and ``Channels.publish`` with no listener.
1b. *Publish cost with the Redis hub* (``RedisChannels`` on a ``redis-server`` started for
   the run, no persistence, loopback): N publishes of 100 bytes, the node waiting for
   Redis after every 1,000 (``hub.flush()``), with no listener; three cases: no bound
   crossed, ``max_messages`` crossed (one drop per publish) and ``max_total_bytes``
   crossed over 100 channels (one drop per publish, from another channel). Reported per
   message: the node's CPU (``time.process_time``: queueing, the script call, reading the
   pub/sub echo), redis-server's CPU (``INFO cpu`` used_cpu_user + used_cpu_sys: the
   script) and the wall time. Skipped when redis-server is not installed.
2. *Replay*: a server in a subprocess (``python -m sockjs_gateway serve --app
   bench.history:make_app``, loopback) holds 10,000 retained messages of 100 bytes; a
   client connects and asks for them from the first: over SockJS WebSocket and
   xhr-streaming (``session.subscribe(channel, since="first")``) and over the native
   EventSource endpoint (``?since=first``). Reported: wall time until the 10,000th message
   is read, and the server's CPU time (``/proc/PID/stat`` utime + stime) over that span.

Wall-clock figures depend on what else the machine runs; CPU time is steadier.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import ClientSession, web

from bench.slow_consumer import listening_port, stop_server

RETAINED = 10_000
BODY = "m" * 100


# -- server side (runs in the subprocess) ------------------------------------------------------


class _Subscriber:
    async def on_open(self, session: Any) -> None:
        pass

    async def on_message(self, session: Any, message: str) -> None:
        await session.subscribe("bench", since=message)

    async def on_close(self, session: Any, code: int, reason: str) -> None:
        pass


def make_app() -> web.Application:
    """An endpoint and an event stream on one hub holding RETAINED messages."""
    from sockjs_gateway import SockJSOptions, add_endpoint, add_event_stream
    from sockjs_gateway.history import Channels, HistoryLimits

    hub = Channels(HistoryLimits(max_messages=RETAINED, max_age=3600, max_channel_bytes=16 << 20))
    for number in range(RETAINED):
        hub.publish("bench", f"{number:06d}{BODY}")
    options = SockJSOptions(
        allowed_origins=("*",),
        max_queued_messages=2 * RETAINED,
        max_queued_bytes=64 << 20,
        response_limit=64 << 20,  # one response carries the whole replay
    )
    app = web.Application()
    add_endpoint(app, _Subscriber(), prefix="/bench", options=options, channels=hub)
    add_event_stream(app, channels=hub, prefix="/events", options=options)
    return app


# -- measurements -------------------------------------------------------------------------------


def per_message(count: int, publish: Callable[[int], object]) -> float:
    started = time.process_time()
    for number in range(count):
        publish(number)
    return (time.process_time() - started) / count * 1e6


def publish_costs(count: int) -> list[tuple[str, float]]:
    from sockjs_gateway.history import Channels, HistoryLimits, HistoryStore
    from sockjs_gateway.stomp import Broker
    from tests.stomp.helpers import BrokerPeer, wire

    rows = []
    cases = [
        (label, history, subscribers)
        for subscribers in (0, 10)
        for label, history in (("without history", None), ("with history", HistoryLimits()))
    ]
    for label, history, subscribers in cases:
        broker = Broker(history=history)
        peers = []
        for index in range(subscribers):
            peer = BrokerPeer(broker)
            asyncio.run(peer.do(wire("CONNECT", {"accept-version": "1.2", "host": "h"})))
            asyncio.run(peer.do(wire("SUBSCRIBE", {"destination": "/topic/t", "id": str(index)})))
            peers.append(peer)

        def publish(number: int, broker: Broker = broker, peers: list[Any] = peers) -> None:
            broker.publish("/topic/t", BODY)
            if number % 100 == 99:
                for peer in peers:
                    peer.machine.data_to_send(0.0)

        rows.append(
            (
                f"STOMP /topic/ publish to {subscribers} subscribers, {label}",
                per_message(count, publish),
            )
        )
    store: HistoryStore[str] = HistoryStore(HistoryLimits())
    rows.append(
        (
            "HistoryStore.append alone",
            per_message(count, lambda n: store.append("c", BODY, 100, 0.0)),
        )
    )
    hub = Channels(HistoryLimits())
    rows.append(
        (
            "Channels.publish, no listener",
            per_message(count, lambda n: hub.publish("c", BODY)),
        )
    )
    return rows


REDIS_CASES: tuple[tuple[str, dict[str, int], int], ...] = (
    ("no bound crossed", {"max_messages": 10**9, "max_channel_bytes": 10**12}, 1),
    ("max_messages crossed (a drop per publish)", {"max_messages": 100}, 1),
    ("max_total_bytes crossed over 100 channels", {"max_total_bytes": 100 * 1024}, 100),
)


def redis_publish_costs(count: int) -> list[tuple[str, float, float, float]]:
    """Rows of (case, node CPU µs, redis-server CPU µs, wall µs) per message."""
    import shutil
    import tempfile
    from pathlib import Path

    from redis.asyncio import Redis

    from sockjs_gateway.backplane.history import RedisChannels
    from sockjs_gateway.history import HistoryLimits
    from tests.backplane.servers import RedisServer

    if shutil.which("redis-server") is None:
        return []

    async def redis_cpu(client: Redis) -> float:
        info = await client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    async def run(limits: HistoryLimits, channels: int, url: str) -> tuple[float, float, float]:
        hub = RedisChannels(url, limits)
        client = Redis.from_url(url)
        await hub.start()
        try:
            for number in range(2_000):  # fill up to the bound before measuring
                hub.publish(f"c{number % channels}", BODY)
            await hub.flush()
            cpu, server, wall = time.process_time(), await redis_cpu(client), time.perf_counter()
            for number in range(count):
                hub.publish(f"c{number % channels}", BODY)
                if number % 1000 == 999:
                    await hub.flush()
            await hub.flush()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            server = await redis_cpu(client) - server
        finally:
            await hub.close()
            await client.aclose()
        return cpu / count * 1e6, server / count * 1e6, wall / count * 1e6

    rows = []
    for label, bounds, channels in REDIS_CASES:
        with tempfile.TemporaryDirectory() as workdir:
            redis = RedisServer(Path(workdir))
            redis.start()
            try:
                limits = HistoryLimits(**bounds)
                rows.append((label, *asyncio.run(run(limits, channels, redis.url))))
            finally:
                redis.kill()
    return rows


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def replay_sockjs(base: str, transport: str) -> int:
    async with ClientSession(base) as http:
        seen = 0
        if transport == "websocket":
            async with http.ws_connect("/bench/000/ws/websocket") as ws:
                await ws.receive_str()  # "o"
                await ws.send_str(json.dumps(["first"]))
                async for message in ws:
                    if message.data.startswith("a"):
                        seen += sum(
                            1
                            for m in json.loads(message.data[1:])
                            if m.startswith('{"channel":"bench","epoch"')
                        )
                        if seen >= RETAINED:
                            return seen
        else:
            response = await http.post("/bench/000/xs/xhr_streaming")
            await response.content.readuntil(b"\n")  # prelude
            await response.content.readuntil(b"\n")  # "o"
            await http.post("/bench/000/xs/xhr_send", data=json.dumps(["first"]))
            while seen < RETAINED:
                line = await response.content.readuntil(b"\n")
                if line.startswith(b"a"):
                    seen += sum(1 for m in json.loads(line[1:]) if '"offset"' in m)
            response.close()
    return seen


async def replay_events(base: str) -> int:
    async with ClientSession(base) as http:
        response = await http.get("/events/bench?since=first")
        seen = 0
        while seen < RETAINED:
            line = await response.content.readline()
            if not line:
                raise EOFError(f"the stream ended after {seen} events")
            if line.startswith(b"id: "):
                seen += 1
        response.close()
    return seen


async def replays(port: int, pid: int) -> list[tuple[str, float, float]]:
    base = f"http://127.0.0.1:{port}"
    rows = []
    runs: tuple[tuple[str, Callable[[], Awaitable[int]]], ...] = (
        (
            "SockJS websocket, session.subscribe(since='first')",
            lambda: replay_sockjs(base, "websocket"),
        ),
        (
            "SockJS xhr-streaming, session.subscribe(since='first')",
            lambda: replay_sockjs(base, "xhr-streaming"),
        ),
        ("EventSource endpoint, ?since=first", lambda: replay_events(base)),
    )
    for label, run in runs:
        cpu, wall = cpu_seconds(pid), time.perf_counter()
        count = await asyncio.wait_for(run(), 60)
        wall, cpu = time.perf_counter() - wall, cpu_seconds(pid) - cpu
        assert count >= RETAINED, (label, count)
        rows.append((label, wall * 1000, cpu * 1000))
    return rows


def start_server() -> Any:
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sockjs_gateway",
            "serve",
            "--no-access-log",
            "--app",
            "bench.history:make_app",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
        ],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return server, listening_port(server, 30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer publishes")
    args = parser.parse_args()
    count = 20_000 if args.quick else 200_000
    print(f"| publish cost ({count:,} publishes) | µs per message (CPU) |")
    print("|---|---|")
    for label, micros in publish_costs(count):
        print(f"| {label} | {micros:.2f} |")
    redis_count = count // 10
    redis_rows = redis_publish_costs(redis_count)
    if redis_rows:
        print()
        print(
            f"| RedisChannels.publish ({redis_count:,} publishes, no listener) "
            "| node CPU µs | redis-server CPU µs | wall µs |"
        )
        print("|---|---|---|---|")
        for label, node, server, wall in redis_rows:
            print(f"| {label} | {node:.1f} | {server:.1f} | {wall:.1f} |")
    else:
        print("\n(redis-server is not installed: no RedisChannels rows)")
    server, port = start_server()
    try:
        rows = asyncio.run(replays(port, server.pid))
    finally:
        stop_server(server)
    print()
    title = f"replay of {RETAINED:,} retained messages to a reconnecting client"
    print(f"| {title} | wall ms | server CPU ms |")
    print("|---|---|---|")
    for label, wall, cpu in rows:
        print(f"| {label} | {wall:.0f} | {cpu:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
