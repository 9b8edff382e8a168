"""``--workers 2`` against 1 worker: WebSocket echo and xhr-polling echo throughput.

Not a test: a measurement. ``python -m bench.workers [--quick] [--runs N]``. On 127.0.0.1
only, with a private ``redis-server`` (no persistence, free port), it runs
``python -m sockjs_gateway testserver --redis URL --workers W`` for W = 1 and 2 (the same
command, so both pay for the backplane) and drives ``/echo`` with the ``make bench`` load
generator (bench/node/loadgen.js, pinned to one core when ``taskset`` exists; the workers
are not pinned: using both cores is the point):

- ``ws-echo``: WebSocket sessions, each echoing one message at a time;
- ``xhr-polling-echo``: xhr-polling sessions over a keep-alive connection pool. With two
  workers the pool's connections land on either worker, so about half the polls and sends
  are relayed to the session's owner over Redis: the figure includes that cost.

Figures: messages/s (echoes received per second of the measured window), round-trip p50 and
p99 (ms), and the CPU the workers used per message (µs, summed over every worker, read from
``/proc`` at the generator's marks). Setups alternate over ``--runs`` runs (AB AB AB) and
the table shows medians. The load generator shares the machine's cores with the workers and
Redis, so figures are comparative, not absolute; the table says how many cores there were.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import peers
from .run import QUICK, Scenario, Server, Settings, free_port, loadgen_config, run_loadgen

ROOT = Path(__file__).resolve().parent.parent
ANNOUNCE = re.compile(rb"listening on http://127\.0\.0\.1:(\d+)/")
SETUPS = (1, 2)  # workers
SCENARIOS = {"ws-echo": 100, "xhr-polling-echo": 100}  # load generator scenario -> sessions


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _family(pid: int) -> list[int]:
    """``pid`` and its children (the supervisor's workers)."""
    found = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


@contextmanager
def _redis(workdir: Path) -> Iterator[str]:
    binary = shutil.which("redis-server") or "/usr/sbin/redis-server"
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.3)
        if process.poll() is not None:
            raise RuntimeError("redis-server did not start")
        yield f"redis://127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait()


@contextmanager
def _gateway(workers: int, redis_url: str, log: Any) -> Iterator[tuple[int, int]]:
    """``testserver --workers N --redis URL``; yields (supervisor or process pid, port)."""
    py = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").is_dir() else sys.executable
    process = subprocess.Popen(
        [
            *(py, "-m", "sockjs_gateway", "testserver", "--port", "0"),
            *("--log-level", "WARNING", "--redis", redis_url, "--workers", str(workers)),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=log,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # bounded: the supervisor gives up after 60 s
        match = ANNOUNCE.search(line)
        if match is None:
            raise RuntimeError(f"the gateway did not start: {line!r}")
        yield process.pid, int(match.group(1))
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _measure(
    s: Settings, scenario: str, sessions: int, workers: int, redis_url: str, log: Any
) -> dict[str, float]:
    with _gateway(workers, redis_url, log) as (pid, port):
        family = _family(pid)
        cpu: dict[str, float] = {}

        def on_mark(name: str, _loadgen: int) -> None:
            cpu[name] = sum(_cpu_seconds(p) for p in family)

        server = Server("gateway", "sockjs_gateway", "sockjs", lambda _: [])
        echo = Scenario(scenario, scenario, scenario, sessions, "echo", scenario.startswith("ws"))
        cfg = loadgen_config(s, echo, server, port)
        outcome = run_loadgen(cfg, pid, log, on_mark)
    result = outcome.result
    messages = float(result["messages"])
    return {
        "rate": messages / float(result["elapsed"]),
        "p50": float(result["p50"]) if result.get("p50") is not None else float("nan"),
        "p99": float(result["p99"]) if result.get("p99") is not None else float("nan"),
        "cpu_us": 1e6 * (cpu["end"] - cpu["start"]) / messages if messages else float("nan"),
        "lost": float(result.get("lost") or 0),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.workers", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="one short run")
    parser.add_argument("--runs", type=int, default=3, help="alternating runs; medians shown")
    args = parser.parse_args(argv)
    s = replace(QUICK) if args.quick else Settings()
    runs = 1 if args.quick else args.runs
    if shutil.which("redis-server") is None and not Path("/usr/sbin/redis-server").exists():
        print("bench.workers skipped: redis-server is missing (apt-get install redis-server)")
        return 0
    peers.ensure_loadgen()
    found: dict[tuple[str, int], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
        workdir = Path(tmp)
        with _redis(workdir) as redis_url, (workdir / "gateway.log").open("w") as log:
            for run in range(runs):
                for scenario, sessions in SCENARIOS.items():
                    for workers in SETUPS:
                        print(
                            f"  run {run + 1}/{runs}: {scenario}, {workers} worker(s)", flush=True
                        )
                        figures = _measure(s, scenario, sessions, workers, redis_url, log)
                        found.setdefault((scenario, workers), []).append(figures)
    print(_table(found, s))
    return 0 if all(r["lost"] == 0 for rows in found.values() for r in rows) else 1


def _table(found: dict[tuple[str, int], list[dict[str, float]]], s: Settings) -> str:
    lines = [
        f"`--workers` on {os.cpu_count()} cores, {s.duration:g} s windows, medians of "
        f"{len(next(iter(found.values())))} run(s), {s.payload}-byte messages, with Redis:",
        "",
        "| scenario | workers | messages/s | p50 ms | p99 ms | worker CPU µs/msg | vs 1 worker |",
        "|---|---|---|---|---|---|---|",
    ]
    for (scenario, workers), rows in found.items():
        rate = statistics.median(r["rate"] for r in rows)
        one = statistics.median(r["rate"] for r in found[(scenario, 1)])
        lines.append(
            f"| {scenario} ({SCENARIOS[scenario]} sessions) | {workers} | {rate:,.0f} "
            f"| {statistics.median(r['p50'] for r in rows):.2f} "
            f"| {statistics.median(r['p99'] for r in rows):.2f} "
            f"| {statistics.median(r['cpu_us'] for r in rows):.0f} | {rate / one:.2f}x |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
