"""Cross-node broadcast: deliveries/s and publish-to-receive latency, one node vs two.

Not a test: a measurement. ``python -m bench.backplane [--quick] [--sessions N]
[--messages N] [--window N]``. On 127.0.0.1 only, with a private ``redis-server`` (no
persistence, free port) and ``python -m sockjs_gateway testserver --port 0 [--redis URL]``
nodes, it runs three setups with the same clients:

- ``1 node``: no backplane (the floor);
- ``1 node + Redis``: the same node, every broadcast also published to Redis;
- ``2 nodes + Redis``: half the sessions on each node; every message crosses Redis.

Clients: two worker processes (``--worker``), each holding half the WebSocket sessions
(``/broadcast``, SockJS framing), both on node 1 or one per node. A publisher session on
node 1 sends ``"<seq> <monotonic ns>"``, with at most ``--window`` broadcasts in flight,
a broadcast counting as done when an observer session on the *last* node has it (so the
window covers the cross-node hop). Each worker records the latency of every delivery
(CLOCK_MONOTONIC is shared by every process of the machine) and checks every session got
every message once, in order. deliveries/s = measured deliveries / (first measured send to
last delivery). Setups alternate over ``--runs`` runs (ABC ABC ABC) and the table shows
medians. Every phase has a deadline; every process is killed at the end.

Servers, clients and Redis share the machine's cores, so figures are comparative, not
absolute; the table says how many cores there were.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
ANNOUNCE = re.compile(rb"listening on http://127\.0\.0\.1:(\d+)/")
WORKERS = 2
DEADLINE = 120.0  # seconds any one setup may take


@dataclass(frozen=True)
class Setup:
    name: str
    nodes: int
    redis: bool


SETUPS = (
    Setup("1 node", 1, False),
    Setup("1 node + Redis", 1, True),
    Setup("2 nodes + Redis", 2, True),
)


# -- worker process: holds sessions and measures -------------------------------------------


async def _session(
    http: aiohttp.ClientSession, url: str, warmup: int, total: int, out: dict[str, Any]
) -> None:
    last = -1
    async with http.ws_connect(url, max_msg_size=0) as ws:
        out["open"] += 1
        async for frame in ws:
            text: str = frame.data
            if not text.startswith("a"):
                continue  # o, h
            now = time.monotonic_ns()
            for message in json.loads(text[1:]):
                seq_text, sent = message.split(" ")
                seq = int(seq_text)
                if seq <= last:
                    out["duplicates"] += 1
                    continue
                out["gaps"] += seq - last - 1
                last = seq
                if seq >= warmup:
                    out["latencies"].append((now - int(sent)) / 1e6)
                    out["last_ns"] = max(out["last_ns"], now)
            if last >= total - 1:
                return


async def _worker(config: dict[str, Any]) -> None:
    out: dict[str, Any] = {"open": 0, "duplicates": 0, "gaps": 0, "latencies": [], "last_ns": 0}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        base, warmup, total = config["url"], config["warmup"], config["total"]
        tasks = [
            asyncio.ensure_future(
                _session(
                    http, f"{base}/broadcast/000/{config['tag']}{i}/websocket", warmup, total, out
                )
            )
            for i in range(config["sessions"])
        ]
        for _ in range(1000):  # bounded: all open within 10 s or give up
            if out["open"] == len(tasks) or any(t.done() for t in tasks):
                break
            await asyncio.sleep(0.01)
        print("READY", flush=True)
        done, pending = await asyncio.wait(tasks, timeout=config["deadline"])
        for task in pending:
            task.cancel()
        out["unfinished"] = len(pending)
        out["errors"] = sum(1 for t in done if t.exception() is not None)
    print("RESULT " + json.dumps(out), flush=True)


# -- orchestrator --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _start_redis(workdir: str) -> tuple[asyncio.subprocess.Process, str]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.access(binary, os.X_OK):
        raise FileNotFoundError(binary)
    port = _free_port()
    process = await asyncio.create_subprocess_exec(
        *(binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""),
        *("--appendonly", "no", "--dir", workdir),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    for _ in range(250):  # 5 s
        with contextlib.suppress(OSError):
            _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 0.2)
            writer.close()
            return process, f"redis://127.0.0.1:{port}"
        await asyncio.sleep(0.02)
    process.kill()
    await process.wait()
    raise SystemExit("redis-server did not start")


async def _start_node(redis: str | None) -> tuple[asyncio.subprocess.Process, str]:
    args = ["-m", "sockjs_gateway", "testserver", "--port", "0"]
    if redis:
        args += ["--redis", redis]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    match = ANNOUNCE.search(await asyncio.wait_for(process.stdout.readline(), 20))
    if match is None:
        process.kill()
        raise SystemExit("a node did not start")
    return process, f"http://127.0.0.1:{match.group(1).decode()}"


async def _start_worker(config: dict[str, Any]) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.backplane",
        "--worker",
        json.dumps(config),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        limit=2**28,
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 30)
    if line.strip() != b"READY":
        raise SystemExit(f"a worker did not get ready: {line!r}")
    return process


async def _publish(first: str, last: str, warmup: int, total: int, window: int) -> int:
    """Publish ``total`` messages from node 1; return the monotonic ns of the first measured
    send."""
    seen = -1
    progressed = asyncio.Event()

    async def drain(ws: aiohttp.ClientWebSocketResponse, observe: bool) -> None:
        nonlocal seen
        async for frame in ws:
            if observe and frame.data.startswith("a"):
                seen = int(json.loads(frame.data[1:])[-1].split(" ")[0])
                progressed.set()

    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{first}/broadcast/000/publisher/websocket") as pub,
        http.ws_connect(f"{last}/broadcast/000/observer/websocket") as obs,
    ):
        readers = [
            asyncio.ensure_future(drain(pub, False)),
            asyncio.ensure_future(drain(obs, True)),
        ]
        start = 0
        try:
            for seq in range(total):
                while seq - seen > window:
                    progressed.clear()
                    await asyncio.wait_for(progressed.wait(), 10)
                now = time.monotonic_ns()
                if seq == warmup:
                    start = now
                await pub.send_str(json.dumps([f"{seq} {now}"]))
            while seen < total - 1:
                progressed.clear()
                await asyncio.wait_for(progressed.wait(), 10)
        finally:
            for reader in readers:
                reader.cancel()
    return start


async def _run(setup: Setup, args: argparse.Namespace, redis: str) -> dict[str, Any]:
    nodes = [await _start_node(redis if setup.redis else None) for _ in range(setup.nodes)]
    workers: list[asyncio.subprocess.Process] = []
    try:
        total = args.warmup + args.messages
        for index in range(WORKERS):
            url = nodes[index % setup.nodes][1]
            config = {
                "url": url,
                "sessions": args.sessions // WORKERS,
                "warmup": args.warmup,
                "total": total,
                "tag": f"w{index}-",
                "deadline": DEADLINE,
            }
            workers.append(await _start_worker(config))
        start = await asyncio.wait_for(
            _publish(nodes[0][1], nodes[-1][1], args.warmup, total, args.window), DEADLINE
        )
        results = []
        for worker in workers:
            assert worker.stdout is not None
            line = await asyncio.wait_for(worker.stdout.readline(), DEADLINE)
            results.append(json.loads(line.split(b" ", 1)[1]))
    finally:
        for process in [*workers, *(node for node, _ in nodes)]:
            if process.returncode is None:
                process.kill()
            await process.wait()
    latencies = sorted(x for r in results for x in r["latencies"])
    end = max(r["last_ns"] for r in results)
    return {
        "setup": setup.name,
        "deliveries": len(latencies),
        "expected": (args.sessions // WORKERS) * WORKERS * args.messages,
        "rate": len(latencies) / ((end - start) / 1e9),
        "p50": statistics.median(latencies),
        "p99": latencies[int(len(latencies) * 0.99) - 1],
        "duplicates": sum(r["duplicates"] for r in results),
        "gaps": sum(r["gaps"] for r in results),
        "unfinished": sum(r["unfinished"] + r["errors"] for r in results),
    }


def _table(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        f"Cross-node broadcast: {args.sessions} WebSocket sessions, {args.messages} messages"
        f" (+{args.warmup} warm-up), {args.window} in flight; median of {args.runs} alternating"
        f" runs; {os.cpu_count()} cores shared by nodes, Redis and clients.",
        "",
        "| setup | deliveries/s | p50 ms | p99 ms | delivered | duplicates | lost |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['setup']} | {r['rate']:,.0f} | {r['p50']:.2f} | {r['p99']:.2f}"
            f" | {r['deliveries']:,}/{r['expected']:,} | {r['duplicates']} | {r['gaps']} |"
        )
    return "\n".join(lines)


async def _main(args: argparse.Namespace) -> int:
    runs: dict[str, list[dict[str, Any]]] = {setup.name: [] for setup in SETUPS}
    with tempfile.TemporaryDirectory(prefix="bench-backplane-") as workdir:
        redis_process, redis = await _start_redis(workdir)
        try:
            for _ in range(args.runs):  # alternating: ABC ABC ABC
                for setup in SETUPS:
                    runs[setup.name].append(await _run(setup, args, redis))
        finally:
            redis_process.kill()
            await redis_process.wait()
    rows = [_median(found) for found in runs.values()]
    print(_table(rows, args))
    return 0 if all(r["duplicates"] == r["gaps"] == r["unfinished"] == 0 for r in rows) else 1


def _median(found: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of the figures, sums of the faults, over the runs of one setup."""
    row = dict(found[0])
    for key in ("rate", "p50", "p99"):
        row[key] = statistics.median(r[key] for r in found)
    for key in ("deliveries", "expected", "duplicates", "gaps", "unfinished"):
        row[key] = sum(r[key] for r in found)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.backplane", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="a smaller, shorter run")
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--window", type=int, default=4, help="broadcasts in flight")
    parser.add_argument("--runs", type=int, default=3, help="alternating runs; medians shown")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        asyncio.run(_worker(json.loads(args.worker)))
        return 0
    if args.quick:
        args.sessions, args.messages, args.warmup, args.runs = 200, 300, 50, 1
    try:
        import redis  # noqa: F401
    except ImportError:
        print("bench.backplane skipped: the redis package is missing (pip install -e '.[redis]')")
        return 0
    try:
        return asyncio.run(_main(args))
    except FileNotFoundError as missing:
        print(
            f"bench.backplane skipped: {missing.filename} is missing (apt-get install redis-server)"
        )
        return 0


if __name__ == "__main__":
    sys.exit(main())
