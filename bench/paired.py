"""Two servers measured at the same time on the same core: a cost ratio a busy machine
cannot move much.

``python -m bench.paired [--a gateway] [--b floor] [--only xhr-polling] [--runs N]
[--duration S] [--gateway-ref REF] [--python PY]``

``make bench`` measures one server after the other. On a shared machine the speed of a
core changes from one window to the next (a server's own rate moves by a third between
two windows of the same process), so the ratio of two windows taken seconds apart moves
as much, and a 5% difference takes a hundred runs to show. Here both servers run at once,
pinned to the same core, each with its own load generator (both on the other core): the
core's ups and downs fall on both alike. The figure compared is server CPU time per
message (utime+stime over the measured window), which does not depend on how the
scheduler shares the core between the two; the round trips per second are shown too,
but they follow each server's share of the core as well as its cost.

Each pair of windows gives one ratio (a over b); the median and its 90% interval
(:mod:`.verdict`) are printed. Measuring a server against itself (``--a floor --b
floor``) shows what the instrument resolves: on a shared 2-core machine, eight pairs gave
0.99x (0.98-1.01), for the floor and for the gateway alike. ``--b ref`` with
``--gateway-ref REF`` compares the work tree with a committed revision.

Both servers share one core, so each gets about half of it, and both generators share the
other: a pair whose servers used much less than a whole core between them was limited by
its generators, and is reported as such.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from . import peers
from .run import (
    LOAD_CORE,
    PINNING,
    RESULTS,
    Scenario,
    Server,
    Settings,
    all_scenarios,
    all_servers,
    applies,
    default_python,
    free_port,
    gateway_snapshot,
    loadgen_config,
    metrics_of,
    raise_fd_limit,
    run_loadgen,
    running_server,
)
from .verdict import judge

#: Below this share of the core (both servers together, in %), a pair was held back by
#: its load generators rather than by the servers.
SATURATED = 90.0


def measure_pair(
    s: Settings, sc: Scenario, a: Server, b: Server, log_dir: Path, tag: str
) -> tuple[dict[str, float], dict[str, float]]:
    """One window of each server, run at the same time."""
    results: dict[str, dict[str, float]] = {}
    errors: list[str] = []

    def one(server: Server, name: str) -> None:
        port = free_port()
        try:
            with (
                open(log_dir / f"paired-{sc.key}-{name}-{tag}.log", "w") as log,
                running_server(server, port, log) as proc,
            ):
                outcome = run_loadgen(loadgen_config(s, sc, server, port), proc.pid, log)
                results[name] = metrics_of(sc, outcome)
        except RuntimeError as error:
            errors.append(f"{server.label}: {error}")

    threads = [threading.Thread(target=one, args=(srv, name)) for srv, name in ((a, "a"), (b, "b"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError("; ".join(errors))
    return results["a"], results["b"]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.paired", description=__doc__.split("\n")[0])
    p.add_argument("--a", default="gateway", help="server key (default: gateway)")
    p.add_argument("--b", default="floor", help="server key, or ref (default: floor)")
    p.add_argument("--only", default="xhr-polling", help="one scenario key or prefix")
    p.add_argument("--runs", type=int, default=8, help="pairs of windows (default: 8)")
    p.add_argument("--duration", type=float, default=5.0, help="seconds measured per window")
    p.add_argument("--gateway-ref", help="a committed revision: the server key ref")
    p.add_argument("--python", help="interpreter of the gateway and the floor")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    s = replace(Settings(), duration=args.duration, warmup=2.0)
    peers.ensure(profiling=False)
    raise_fd_limit()
    if PINNING:
        os.sched_setaffinity(0, {int(LOAD_CORE)})
    python = args.python or default_python()
    servers = {srv.key: srv for srv in all_servers(None, python)}
    if args.gateway_ref:
        snapshot = all_servers(gateway_snapshot(args.gateway_ref), python)[0]
        servers["ref"] = replace(snapshot, key="ref", label=f"sockjs_gateway {args.gateway_ref}")
    try:
        a, b = servers[args.a], servers[args.b]
    except KeyError as missing:
        print(f"bench.paired: no server {missing} (have {', '.join(servers)})", file=sys.stderr)
        return 2
    only = args.only
    picked = [sc for sc in all_scenarios(s) if sc.key == only or sc.key.startswith(only + "-")]
    if not picked or not all(applies(picked[0], srv) for srv in (a, b)):
        print(f"bench.paired: no scenario {args.only!r} both servers take part in", file=sys.stderr)
        return 2
    sc = picked[0]
    log_dir = RESULTS / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f"{sc.title}: {a.label} (a) and {b.label} (b) at once, {args.runs} pairs of windows")
    cpu: list[float] = []
    rate: list[float] = []
    for i in range(args.runs):
        first, second = (a, b) if i % 2 == 0 else (b, a)  # neither always starts first
        x, y = measure_pair(s, sc, first, second, log_dir, f"pair{i + 1}")
        ma, mb = (x, y) if first is a else (y, x)
        cpu.append(ma["cpu_us"] / mb["cpu_us"])
        rate.append(ma["rate"] / mb["rate"])
        held = " (held back by the load generators)" if ma["busy"] + mb["busy"] < SATURATED else ""
        print(
            f"  pair {i + 1}: a {ma['rate']:,.0f}/s, {ma['cpu_us']:.1f} us, {ma['busy']:.0f}%"
            f" of the core; b {mb['rate']:,.0f}/s, {mb['cpu_us']:.1f} us, {mb['busy']:.0f}%{held}",
            flush=True,
        )
    cost = judge(cpu, 1.0, at_least=False)
    speed = judge(rate, 1.0, at_least=True)
    print(f"a/b server CPU per unit: {cost.describe(unit='x')}")
    print(f"a/b rate (also follows each one's share of the core): {speed.describe(unit='x')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
