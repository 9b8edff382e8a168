"""Relay cost: an xhr-polling echo served by the session's owner vs relayed by another node.

Not a test: a measurement. ``python -m bench.relay [--quick] [--sessions N] [--messages N]
[--runs N]``. On 127.0.0.1 only, with a private ``redis-server`` (no persistence, free
port) and two ``python -m sockjs_gateway testserver --port 0 --redis URL`` nodes, A and B.
Every session is opened by a poll on A, so A owns it; then each message is one round
trip: ``xhr_send`` of the message, then ``xhr`` polls until the echo is back. Two setups
with the same clients:

- ``local``: sends and polls go to A (what a sticky balancer does);
- ``relayed``: sends and polls go to B, which relays both to A over Redis (what a
  round-robin balancer does at worst: every request on the wrong node).

Figures: round trips/s; round-trip latency p50/p99 (send start to echo received); CPU
of both nodes and Redis (utime + stime from /proc) per round trip; and the relay cost, the
difference of that CPU between the setups per relayed request (two per round trip: the
send and the poll). Setups alternate over ``--runs`` runs (AB AB AB) and the table shows
medians. Clients, nodes and Redis share the machine's cores, so figures are comparative,
not absolute; on a busy machine re-run it when it is quiet.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass

import aiohttp

from .backplane import _start_node, _start_redis
from .run import cpu_seconds

DEADLINE = 300.0  # seconds one run may take


@dataclass(frozen=True)
class Result:
    setup: str
    rate: float
    p50: float
    p99: float
    cpu_us: float  #: CPU of nodes and Redis per round trip, µs


async def _session(
    http: aiohttp.ClientSession, owner: str, via: str, sid: str, count: int
) -> list[float]:
    base_owner, base_via = f"{owner}/echo/000/{sid}", f"{via}/echo/000/{sid}"
    async with http.post(f"{base_owner}/xhr") as response:
        assert await response.text() == "o\n"
    latencies: list[float] = []
    for index in range(count):
        text = f"m{index}"
        started = time.perf_counter()
        async with http.post(f"{base_via}/xhr_send", data=json.dumps([text])) as response:
            assert response.status == 204, response.status
        while True:
            async with http.post(f"{base_via}/xhr") as response:
                body = await response.text()
            if body.startswith("a"):
                assert json.loads(body[1:]) == [text], body
                break
        latencies.append(time.perf_counter() - started)
    return latencies


async def _run(
    name: str, a: str, b: str, pids: list[int], sessions: int, messages: int, warmup: int
) -> Result:
    via = a if name == "local" else b
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        ids = [f"{name}{os.getpid()}{time.monotonic_ns()}{i}" for i in range(sessions)]
        await asyncio.gather(*(_session(http, a, via, f"w{sid}", warmup) for sid in ids))
        cpu_before = sum(cpu_seconds(pid) for pid in pids)
        started = time.perf_counter()
        found = await asyncio.wait_for(
            asyncio.gather(*(_session(http, a, via, sid, messages) for sid in ids)), DEADLINE
        )
        wall = time.perf_counter() - started
        cpu = sum(cpu_seconds(pid) for pid in pids) - cpu_before
    latencies = sorted(x for one in found for x in one)
    total = len(latencies)
    return Result(
        name,
        total / wall,
        1000 * latencies[total // 2],
        1000 * latencies[min(total - 1, int(total * 0.99))],
        1e6 * cpu / total,
    )


async def _main(args: argparse.Namespace) -> int:
    runs: dict[str, list[Result]] = {"local": [], "relayed": []}
    with tempfile.TemporaryDirectory(prefix="bench-relay-") as workdir:
        redis_process, redis = await _start_redis(workdir)
        nodes = []
        try:
            nodes = [await _start_node(redis), await _start_node(redis)]
            (node_a, a), (node_b, b) = nodes
            pids = [redis_process.pid, node_a.pid, node_b.pid]
            for _ in range(args.runs):
                for name in runs:
                    runs[name].append(
                        await _run(name, a, b, pids, args.sessions, args.messages, args.warmup)
                    )
        finally:
            for process, _ in nodes:
                process.kill()
                await process.wait()
            redis_process.kill()
            await redis_process.wait()
    rows = {name: _median(found) for name, found in runs.items()}
    print(_table(rows, args))
    return 0


def _median(found: list[Result]) -> Result:
    return Result(
        found[0].setup,
        statistics.median(r.rate for r in found),
        statistics.median(r.p50 for r in found),
        statistics.median(r.p99 for r in found),
        statistics.median(r.cpu_us for r in found),
    )


def _table(rows: dict[str, Result], args: argparse.Namespace) -> str:
    lines = [
        f"Relay cost: xhr-polling echo, {args.sessions} sessions x {args.messages} round trips"
        f" (+{args.warmup} warm-up); median of {args.runs} alternating runs; 2 nodes + Redis;"
        f" {os.cpu_count()} cores shared by nodes, Redis and clients.",
        "",
        "| setup | round trips/s | p50 ms | p99 ms | CPU µs per round trip (nodes + Redis) |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows.values():
        lines.append(f"| {r.setup} | {r.rate:,.0f} | {r.p50:.2f} | {r.p99:.2f} | {r.cpu_us:,.0f} |")
    extra = rows["relayed"].cpu_us - rows["local"].cpu_us
    lines += [
        "",
        f"Relay cost: {extra:,.0f} µs CPU per round trip, {extra / 2:,.0f} µs per relayed"
        " request (a send or a poll), summed over both nodes and Redis.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.relay", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="a smaller, shorter run")
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3, help="alternating runs; medians shown")
    args = parser.parse_args(argv)
    if args.quick:
        args.sessions, args.messages, args.warmup, args.runs = 10, 100, 10, 1
    try:
        import redis  # noqa: F401
    except ImportError:
        print("bench.relay skipped: the redis package is missing (pip install -e '.[redis]')")
        return 0
    return asyncio.run(_main(args))


if __name__ == "__main__":
    sys.exit(main())
