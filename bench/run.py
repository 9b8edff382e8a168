"""``make bench``: sockjs_gateway side by side with aio-libs sockjs, sockjs-node and the
plain aiohttp WebSocket floor.

For every scenario, every run and every server (in ABCD ABCD ABCD order) a fresh server
process starts pinned to one core and the node load generator (bench/node/loadgen.js) to
the other. The generator prints marks around the measured window; at each mark this
process reads the server's CPU time (``/proc/PID/stat``, utime+stime) and RSS
(``/proc/PID/status``, VmRSS), then lets the generator go on. The table holds medians over
the runs; ratios are taken within each run, then their median is shown.

Other processes on the machine share its cores, so each measurement first waits (bounded)
for a quiet second, reports the CPU others used during its window, and is taken again once
if they used more than a quarter of a core.

Usage: ``python -m bench [--quick] [--runs N] [--duration S] [--only SCENARIO,...]
[--servers gateway,floor,...] [--gateway-ref REF] [--python PY] [--profile]``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from . import peers
from .verdict import judge

ROOT = peers.BENCH.parent
RESULTS = peers.BENCH / "results"
LOADGEN = peers.BENCH / "node" / "loadgen.js"
NODE_SERVER = peers.BENCH / "node" / "sockjs_node_server.js"
CLK_TCK = os.sysconf("SC_CLK_TCK")
LOAD_CORE, SERVER_CORE = "0", "1"

# -- what runs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """Run lengths and sizes; ``--quick`` swaps in the small ones."""

    runs: int = 3
    warmup: float = 1.5  #: seconds of traffic before the measured window
    duration: float = 4.0  #: seconds in the measured window
    idle: float = 4.0  #: seconds in the idle-CPU window
    settle: float = 2.0  #: seconds between opening idle sessions and measuring them
    payload: int = 64  #: bytes in each message
    window: int = 2  #: broadcasts in flight at once
    echo_sessions: tuple[int, ...] = (1, 100, 1000)
    broadcast_sessions: tuple[int, ...] = (1000, 5000)
    idle_ws: int = 10_000
    idle_xhr: int = 2000
    poll_sessions: int = 100
    xhr_broadcast_sessions: int = 100
    connect_concurrency: int = 200
    quiet_wait: float = 20.0  #: at most this long before each measurement for a quiet machine
    retries: int = 1  #: measurements again when other processes disturbed (or it failed)


QUICK = Settings(
    runs=1,
    warmup=0.5,
    duration=1.5,
    idle=1.0,
    settle=1.0,
    broadcast_sessions=(1000, 2000),
    idle_ws=2000,
    idle_xhr=500,
    quiet_wait=5.0,
    retries=0,
)


@dataclass(frozen=True)
class Server:
    key: str
    label: str
    framing: str  #: "sockjs" or "raw" (the floor: plain WebSocket text frames)
    command: Callable[[int], list[str]]
    env: dict[str, str] = field(default_factory=dict)

    @property
    def sockjs(self) -> bool:
        return self.framing == "sockjs"


def default_python() -> str:
    """The interpreter of the gateway and the floor: the project's venv, else this one."""
    return str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").is_dir() else sys.executable


def all_servers(gateway_src: Path | None, py: str) -> list[Server]:
    """Every server; ``py`` runs the gateway and the floor, so that one Python version can
    be measured against another with the same harness."""
    gateway_env = {"BENCH_GATEWAY_SRC": str(gateway_src)} if gateway_src else {}
    return [
        Server(
            "gateway",
            "sockjs_gateway",
            "sockjs",
            lambda port: [py, "-m", "bench.servers", "gateway", str(port)],
            gateway_env,
        ),
        Server(
            "floor",
            "aiohttp WS floor",
            "raw",
            lambda port: [py, "-m", "bench.servers", "floor", str(port)],
        ),
        Server(
            "aiosockjs",
            "aio-libs sockjs 0.13",
            "sockjs",
            lambda port: [
                str(peers.AIOSOCKJS_PYTHON),
                "-m",
                "bench.servers",
                "aiosockjs",
                str(port),
            ],
        ),
        Server(
            "node",
            "sockjs-node 0.3.24",
            "sockjs",
            lambda port: ["node", str(NODE_SERVER), str(port)],
            {"NODE_PATH": str(peers.NODE_MODULES)},
        ),
    ]


@dataclass(frozen=True)
class Scenario:
    key: str  #: e.g. "ws-echo-100"
    title: str
    loadgen: str  #: the generator's scenario name
    sessions: int
    kind: str  #: "echo", "broadcast" or "idle"
    websocket: bool  #: False: HTTP transports only (the floor sits it out)


def all_scenarios(s: Settings) -> list[Scenario]:
    out = [
        Scenario(
            f"ws-echo-{n}",
            f"WebSocket echo, {n:,} session{'s' if n > 1 else ''}",
            "ws-echo",
            n,
            "echo",
            True,
        )
        for n in s.echo_sessions
    ]
    out += [
        Scenario(
            f"ws-broadcast-{n}",
            f"broadcast to {n:,} WebSocket sessions",
            "ws-broadcast",
            n,
            "broadcast",
            True,
        )
        for n in s.broadcast_sessions
    ]
    out += [
        Scenario(
            f"ws-idle-{s.idle_ws}",
            f"{s.idle_ws:,} idle WebSocket sessions",
            "ws-idle",
            s.idle_ws,
            "idle",
            True,
        ),
        Scenario(
            f"xhr-streaming-idle-{s.idle_xhr}",
            f"{s.idle_xhr:,} idle xhr-streaming sessions",
            "xhr-streaming-idle",
            s.idle_xhr,
            "idle",
            False,
        ),
        Scenario(
            f"xhr-polling-echo-{s.poll_sessions}",
            f"xhr-polling echo, {s.poll_sessions:,} sessions",
            "xhr-polling-echo",
            s.poll_sessions,
            "echo",
            False,
        ),
        Scenario(
            f"xhr-streaming-broadcast-{s.xhr_broadcast_sessions}",
            f"broadcast to {s.xhr_broadcast_sessions:,} xhr-streaming sessions",
            "xhr-streaming-broadcast",
            s.xhr_broadcast_sessions,
            "broadcast",
            False,
        ),
    ]
    return out


def applies(scenario: Scenario, server: Server) -> bool:
    # The floor also long-polls (a minimal aiohttp xhr-polling echo), but does not stream.
    return (
        scenario.websocket
        or server.sockjs
        or (server.key == "floor" and scenario.loadgen == "xhr-polling-echo")
    )


# -- /proc ----------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of ``pid``, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of proc(5)


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@dataclass(frozen=True)
class Sample:
    wall: float
    server_cpu: float
    loadgen_cpu: float
    machine_cpu: float  #: every process on the machine, so others' load can be told
    rss: int


def sample(server_pid: int, loadgen_pid: int) -> Sample:
    return Sample(
        time.monotonic(),
        cpu_seconds(server_pid),
        cpu_seconds(loadgen_pid),
        machine_cpu_seconds(),
        rss_kb(server_pid),
    )


def machine_cpu_seconds() -> float:
    """Busy time of all cores (user, nice, system, irq, softirq, steal) from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def wait_for_quiet(max_wait: float, threshold: float = 20.0) -> float:
    """Wait (at most ``max_wait`` s) for a second in which the rest of the machine uses
    under ``threshold`` % of a core, so other work does not share the cores we measure.

    Returns:
        The load seen in the last second, in % of a core.
    """
    deadline = time.monotonic() + max_wait
    while True:
        before = machine_cpu_seconds()
        time.sleep(1.0)
        load = 100 * (machine_cpu_seconds() - before)
        if load < threshold or time.monotonic() >= deadline:
            return load


# -- one measurement ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pinned(core: str, argv: list[str]) -> list[str]:
    return ["taskset", "-c", core, *argv] if PINNING else argv


PINNING = (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None


@contextlib.contextmanager
def running_server(server: Server, port: int, log: IO[str]) -> Iterator[subprocess.Popen[str]]:
    env = {**os.environ, **server.env}
    proc = subprocess.Popen(
        _pinned(SERVER_CORE, server.command(port)),
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{server.label} exited with {proc.returncode}; see {log.name}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{server.label} did not listen on {port} within 30 s")
            time.sleep(0.05)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@dataclass
class Outcome:
    result: dict[str, Any]
    marks: dict[str, Sample]


def run_loadgen(
    cfg: dict[str, Any],
    server_pid: int,
    log: IO[str],
    on_mark: Callable[[str, int], None] | None = None,
) -> Outcome:
    """Run one generator to its end, sampling the server at every mark."""
    proc = subprocess.Popen(
        _pinned(LOAD_CORE, ["node", str(LOADGEN), json.dumps(cfg)]),
        cwd=ROOT,
        env={**os.environ, "NODE_PATH": str(peers.NODE_MODULES)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    watchdog = threading.Timer(cfg["hardLimit"] + 15, proc.kill)
    watchdog.start()
    marks: dict[str, Sample] = {}
    result: dict[str, Any] | None = None
    error = ""
    try:
        stdin, stdout = proc.stdin, proc.stdout
        if stdin is None or stdout is None:
            raise RuntimeError("no pipes to the load generator")
        for line in stdout:
            if line.startswith("MARK "):
                name = line[5:].strip()
                marks[name] = sample(server_pid, proc.pid)
                if on_mark is not None:
                    on_mark(name, proc.pid)
                stdin.write("ok\n")
                stdin.flush()
            elif line.startswith("RESULT "):
                result = json.loads(line[7:])
            elif line.startswith("ERROR"):
                error += line
        proc.wait()
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if result is None:
        raise RuntimeError(f"load generator failed ({proc.returncode}): {error.strip()[:500]}")
    return Outcome(result, marks)


def loadgen_config(s: Settings, scenario: Scenario, server: Server, port: int) -> dict[str, Any]:
    connect_time = scenario.sessions / 300 + 30
    return {
        "scenario": scenario.loadgen,
        "framing": server.framing,
        "port": port,
        "sessions": scenario.sessions,
        "warmup": s.warmup,
        "duration": s.idle if scenario.kind == "idle" else s.duration,
        "settle": s.settle,
        "payload": s.payload,
        "window": s.window,
        "connectConcurrency": s.connect_concurrency,
        "hardLimit": round(connect_time + s.warmup + s.duration + s.idle + s.settle + 60),
    }


def metrics_of(scenario: Scenario, outcome: Outcome) -> dict[str, float]:
    """The figures of one measurement."""
    r, m = outcome.result, outcome.marks
    if scenario.kind == "idle":
        start, end, base = m["idle-start"], m["idle-end"], m["baseline"]
        sessions = max(1, int(r["sessions"]))
        return {
            "kb": (end.rss - base.rss) / sessions,
            "other_busy": max(
                0.0,
                100
                * (end.machine_cpu - start.machine_cpu - end.server_cpu + start.server_cpu)
                / (end.wall - start.wall),
            ),
            "idle_cpu": 100 * (end.server_cpu - start.server_cpu) / (end.wall - start.wall),
            "sessions": sessions,
        }
    start, end = m["start"], m["end"]
    count = float(r["messages"] if scenario.kind == "echo" else r["deliveries"])
    wall = end.wall - start.wall
    out = {
        "rate": count / float(r["elapsed"]),
        "cpu_us": 1e6 * (end.server_cpu - start.server_cpu) / count if count else float("nan"),
        "busy": 100 * (end.server_cpu - start.server_cpu) / wall,
        "loadgen_busy": 100 * (end.loadgen_cpu - start.loadgen_cpu) / wall,
        "other_busy": max(
            0.0,
            100 * (end.machine_cpu - start.machine_cpu) / wall
            - 100
            * (end.server_cpu - start.server_cpu + end.loadgen_cpu - start.loadgen_cpu)
            / wall,
        ),
        "sessions": float(r["sessions"]),
    }
    if r.get("p50") is not None:
        out["p50"] = float(r["p50"])
        out["p99"] = float(r["p99"])
    if r.get("lost"):
        out["lost"] = float(r["lost"])
    return out


def measure(
    s: Settings, scenario: Scenario, server: Server, log_dir: Path, tag: str
) -> dict[str, float] | None:
    wait_for_quiet(s.quiet_wait)
    port = free_port()
    log_path = log_dir / f"{scenario.key}-{server.key}-{tag}.log"
    with open(log_path, "w") as log:
        try:
            with running_server(server, port, log) as proc:
                outcome = run_loadgen(loadgen_config(s, scenario, server, port), proc.pid, log)
                if proc.poll() is not None:
                    raise RuntimeError(f"{server.label} died during the run")
        except RuntimeError as error:
            print(f"    {server.label}: FAILED: {error}", flush=True)
            log.write(f"FAILED: {error}\n")
            return None
    return metrics_of(scenario, outcome)


# -- the table ------------------------------------------------------------------------------

#: scenario key -> one dict per run -> server key -> metrics (a failed run is left out).
Runs = dict[str, list[dict[str, dict[str, float]]]]


def _values(runs: Runs, scenario: str, server: str, key: str) -> list[float]:
    return [r[server][key] for r in runs.get(scenario, []) if key in r.get(server, {})]


def _ratios(runs: Runs, scenario: str, a: str, b: str, key: str) -> list[float]:
    """``a``'s figure over ``b``'s, one per run in which both were measured."""
    out = []
    for r in runs.get(scenario, []):
        x, y = r.get(a, {}).get(key), r.get(b, {}).get(key)
        if x is not None and y:
            out.append(x / y)
    return out


def _rows(scenario: Scenario) -> list[tuple[str, str]]:
    """(metric key, row label) for the table, by scenario kind."""
    if scenario.kind == "idle":
        return [
            ("kb", "KB of server RSS per session"),
            ("idle_cpu", "idle server CPU, % of a core"),
        ]
    if scenario.loadgen == "xhr-polling-echo":
        rate, per = "round trips/s", "server CPU us per round trip"
    elif scenario.kind == "echo":
        rate, per = "msg/s", "server CPU us per msg"
    else:
        rate, per = "deliveries/s", "server CPU us per delivery"
    rows = [("rate", rate), ("cpu_us", per)]
    if scenario.kind == "echo":
        rows.append(("p50", "round trip p50 ms"))
    rows += [
        ("p99", "round trip p99 ms" if scenario.kind == "echo" else "publish-to-receive p99 ms"),
        ("busy", "CPU % of a core: server (load generator, other processes)"),
    ]
    return rows


def _median(values: Sequence[float]) -> float | None:
    values = [v for v in values if v == v]  # drop NaN
    return statistics.median(values) if values else None


def _fmt(key: str, value: float | None) -> str:
    if value is None:
        return "-"
    if key == "rate":
        return f"{value:,.0f}"
    if key in ("p50", "p99"):
        return f"{value:.2f}" if value < 10 else f"{value:.1f}"
    if key in ("busy", "idle_cpu"):
        return f"{value:.0f}" if key == "busy" else f"{value:.2f}"
    return f"{value:.1f}"


def table(scenarios: list[Scenario], servers: list[Server], runs: Runs) -> str:
    pairs = [(a, b) for i, a in enumerate(servers) for b in servers[i + 1 :]]
    short = {"gateway": "gw", "floor": "floor", "aiosockjs": "aio", "node": "node"}
    head = ["scenario", "metric", *(s.label for s in servers)]
    head += [f"{short[a.key]}/{short[b.key]}" for a, b in pairs]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for sc in scenarios:
        for key, label in _rows(sc):
            cells = [sc.title, label]
            for srv in servers:
                cell = _fmt(key, _median(_values(runs, sc.key, srv.key, key)))
                if key == "busy" and cell != "-":
                    loadgen = _median(_values(runs, sc.key, srv.key, "loadgen_busy"))
                    other = _median(_values(runs, sc.key, srv.key, "other_busy"))
                    cell += f" ({_fmt('busy', loadgen)}, {_fmt('busy', other)})"
                cells.append(cell if applies(sc, srv) else "n/a")
            for a, b in pairs:
                ratio = _median(_ratios(runs, sc.key, a.key, b.key, key)) if key in RATIOS else None
                cells.append("-" if ratio is None else f"{ratio:.2f}")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


#: Other processes' CPU (% of a core) above which a measurement is listed as disturbed.
NOISY = 25.0

#: The rows that get ratio columns.
RATIOS = frozenset({"rate", "cpu_us", "kb", "p99"})


# -- performance targets (docs/benchmarks.md) ----------------------------------------------


def targets(scenarios: list[Scenario], runs: Runs) -> list[str]:
    """The performance targets (docs/benchmarks.md), each judged by :mod:`.verdict` on the
    per-run figures and shown with the median and interval it was judged on."""
    out: list[str] = []

    def ratio(name: str, sc: Scenario, key: str, other: str, bound: float, least: bool) -> None:
        v = judge(_ratios(runs, sc.key, "gateway", other, key), bound, at_least=least)
        out.append(f"- {v.word}: {sc.title}: {name} ({v.describe(unit='x')})")

    def value(name: str, sc: Scenario, key: str, bound: float) -> None:
        v = judge(_values(runs, sc.key, "gateway", key), bound, at_least=False)
        out.append(f"- {v.word}: {sc.title}: {name} ({v.describe('.1f', ' KB')})")

    for sc in scenarios:
        if sc.loadgen == "ws-echo" and sc.sessions >= 100:
            ratio("msg/s at least the floor's", sc, "rate", "floor", 1.0, True)
            ratio("msg/s at least sockjs-node's", sc, "rate", "node", 1.0, True)
        elif sc.loadgen == "ws-broadcast":
            ratio("CPU per delivery at most 1.1x the floor's", sc, "cpu_us", "floor", 1.1, False)
        elif sc.loadgen == "ws-idle":
            value("at most 16 KB each", sc, "kb", 16)
        elif sc.loadgen == "xhr-streaming-idle":
            value("at most 12 KB each", sc, "kb", 12)
        elif sc.loadgen == "xhr-polling-echo":
            ratio("round trips/s at least 0.95x the floor's", sc, "rate", "floor", 0.95, True)
            ratio("round trips/s at least sockjs-node's", sc, "rate", "node", 1.0, True)
        elif sc.loadgen == "xhr-streaming-broadcast":
            ratio("CPU per delivery at most sockjs-node's", sc, "cpu_us", "node", 1.0, False)
    return out


# -- profiling ------------------------------------------------------------------------------


def profile(s: Settings, scenarios: list[Scenario], gateway: Server, out_dir: Path) -> str:
    """py-spy on the gateway during the measured window of each scenario; a summary."""
    parts: list[str] = []
    for sc in scenarios:
        raw = out_dir / f"profile-{sc.key}.txt"
        port = free_port()
        log_path = out_dir / "logs" / f"profile-{sc.key}.log"
        with open(log_path, "w") as log, running_server(gateway, port, log) as proc:
            spy = _Spy(proc.pid, raw, s.duration, log)
            outcome = run_loadgen(loadgen_config(s, sc, gateway, port), proc.pid, log, spy.on_mark)
            spy.wait()
        metrics = metrics_of(sc, outcome)
        parts.append(f"### {sc.title}: {metrics['rate']:,.0f}/s, {metrics['cpu_us']:.1f} us each\n")
        parts.append(f"Raw stacks: {raw}\n")
        parts.append(summarise_profile(raw))
    return "\n".join(parts)


class _Spy:
    """Starts ``py-spy record`` on the server at the generator's "start" mark."""

    def __init__(self, pid: int, raw: Path, seconds: float, log: IO[str]) -> None:
        self.pid, self.raw, self.seconds, self.log = pid, raw, seconds, log
        self.proc: subprocess.Popen[bytes] | None = None

    def on_mark(self, name: str, _loadgen_pid: int) -> None:
        if name != "start":
            return
        cmd = [str(peers.PY_SPY), "record", "--pid", str(self.pid), "--rate", "250"]
        cmd += ["--duration", str(max(1, int(self.seconds))), "--nonblocking"]
        cmd += ["--format", "raw", "--output", str(self.raw)]
        self.proc = subprocess.Popen(_pinned(LOAD_CORE, cmd), stdout=self.log, stderr=self.log)

    def wait(self) -> None:
        if self.proc is not None:
            self.proc.wait(60)


def summarise_profile(raw: Path, top: int = 15) -> str:
    """Top functions by self and by total samples from py-spy's raw (collapsed) output."""
    self_n: dict[str, int] = {}
    total_n: dict[str, int] = {}
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        samples += count
        frames = [_frame_name(f) for f in stack.split(";")]
        self_n[frames[-1]] = self_n.get(frames[-1], 0) + count
        for name in set(frames):
            total_n[name] = total_n.get(name, 0) + count
    lines = [f"{samples} busy samples (idle samples in the event loop's poll are left out).\n"]
    lines.append("| self % | total % | function |\n|---|---|---|")
    for name, n in sorted(self_n.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(
            f"| {100 * n / samples:.1f} | {100 * total_n[name] / samples:.1f} | `{name}` |"
        )
    return "\n".join(lines) + "\n"


def _frame_name(frame: str) -> str:
    # py-spy raw frames look like "function (path/to/file.py:123)".
    func, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{path}:{func}"


# -- main -----------------------------------------------------------------------------------


def raise_fd_limit(wanted: int = 65536) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), max(hard, wanted)))
        return wanted
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def gateway_snapshot(ref: str) -> Path:
    """``sockjs_gateway/`` as of git ``ref``, unpacked under bench/.peers/."""
    rev = subprocess.run(
        ["git", "rev-parse", "--short", ref], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()
    dest = peers.PEERS / f"gateway-{rev}"
    if not (dest / "sockjs_gateway").is_dir():
        archive = subprocess.run(
            ["git", "archive", rev, "sockjs_gateway"], cwd=ROOT, check=True, capture_output=True
        ).stdout
        dest.mkdir(parents=True, exist_ok=True)
        tmp = dest / "src.tar"
        tmp.write_bytes(archive)
        with tarfile.open(tmp) as tar:
            tar.extractall(dest, filter="data")
        tmp.unlink()
    return dest


def describe(gateway_ref: str | None, python: str) -> str:
    """The header line: what was measured, on which interpreter (``python``, the one that
    runs the gateway and the floor), aiohttp and node."""

    def out(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True).stdout.strip()
        except OSError:
            return "?"

    rev = out("git", "rev-parse", "--short", gateway_ref or "HEAD")
    if gateway_ref is None and out("git", "status", "--porcelain", "sockjs_gateway"):
        rev += " + uncommitted changes"
    versions = out(
        python, "-c", "import sys, aiohttp; print(sys.version.split()[0], aiohttp.__version__)"
    ).split()
    py_version, aiohttp_version = versions if len(versions) == 2 else ("?", "?")
    return (
        f"sockjs_gateway {rev}; Python {py_version}, aiohttp {aiohttp_version}, "
        f"node {out('node', '--version')}; {os.cpu_count()} cores"
        + ("; server on core 1, load generator on core 0" if PINNING else "; NOT pinned")
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="one short run of smaller scenarios")
    p.add_argument("--runs", type=int, help="alternating runs per scenario (default 3)")
    p.add_argument("--duration", type=float, help="seconds in each measured window")
    p.add_argument("--warmup", type=float, help="seconds of traffic before each window")
    p.add_argument("--only", help="comma-separated scenario keys or prefixes: ws-echo-100,xhr")
    p.add_argument("--servers", help="comma-separated: gateway,floor,aiosockjs,node")
    p.add_argument("--gateway-ref", help="benchmark sockjs_gateway as of this git ref")
    p.add_argument(
        "--python", help="the interpreter of the gateway and the floor (default: .venv's)"
    )
    p.add_argument("--profile", action="store_true", help="py-spy the gateway instead")
    p.add_argument("--output", type=Path, default=RESULTS / "latest.md")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    s = QUICK if args.quick else Settings()
    s = replace(
        s,
        runs=args.runs or s.runs,
        duration=args.duration or s.duration,
        warmup=args.warmup if args.warmup is not None else s.warmup,
    )
    peers.ensure(profiling=args.profile)
    fds = raise_fd_limit()
    if fds < 2 * s.idle_ws + 1000:
        print(f"bench: only {fds} file descriptors; {s.idle_ws:,} idle sessions may fail")
    if PINNING:
        os.sched_setaffinity(0, {int(LOAD_CORE)})  # keep this process off the server's core
    gateway_src = gateway_snapshot(args.gateway_ref) if args.gateway_ref else None
    python = args.python or default_python()
    every = all_servers(gateway_src, python)
    servers = every
    if args.servers:
        wanted = args.servers.split(",")
        servers = [srv for srv in servers if srv.key in wanted]
    scenarios = all_scenarios(s)
    if args.only:
        keys = args.only.split(",")
        scenarios = [
            sc for sc in scenarios if any(sc.key == k or sc.key.startswith(k + "-") for k in keys)
        ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    log_dir = RESULTS / "logs"
    log_dir.mkdir(exist_ok=True)
    started = time.monotonic()
    when = f"{dt.datetime.now():%Y-%m-%d %H:%M}"
    header = f"# Benchmarks\n\n{when}; {describe(args.gateway_ref, python)}\n"

    if args.profile:
        # Without --only: the two scenarios that tell the most about the hot paths.
        default = ("ws-echo-100", "ws-broadcast-1000")
        picked = [sc for sc in scenarios if args.only or sc.key in default]
        gateway = next(srv for srv in every if srv.key == "gateway")
        text = (
            header
            + "\n## Profile of sockjs_gateway (py-spy)\n\n"
            + profile(s, picked, gateway, RESULTS)
        )
        out = RESULTS / "profile.md"
        out.write_text(text)
        print(text)
        print(f"written to {out}")
        return 0

    runs: Runs = {}
    failed: list[str] = []
    noisy: list[str] = []
    for sc in scenarios:
        present = [srv for srv in servers if applies(sc, srv)]
        print(f"{sc.title}: {s.runs} run(s) x {len(present)} servers", flush=True)
        for i in range(s.runs):
            row: dict[str, dict[str, float]] = {}
            for srv in present:
                got = measure(s, sc, srv, log_dir, f"run{i + 1}")
                for retry in range(s.retries):
                    # Others' load hardly moves RSS, so idle rows are retaken only on failure.
                    if got is not None and (got["other_busy"] <= NOISY or sc.kind == "idle"):
                        break
                    print(f"    run {i + 1} {srv.label}: disturbed or failed, again", flush=True)
                    got = measure(s, sc, srv, log_dir, f"run{i + 1}-retry{retry + 1}")
                if got is None:
                    failed.append(f"{sc.key} run {i + 1}: {srv.label} failed (see {log_dir})")
                else:
                    row[srv.key] = got
                    key = "kb" if sc.kind == "idle" else "rate"
                    extra = f", {got['cpu_us']:.1f} us each" if "cpu_us" in got else ""
                    extra += f", other processes {got['other_busy']:.0f}%"
                    print(f"    run {i + 1} {srv.label}: {got[key]:,.1f}{extra}", flush=True)
                    if got["other_busy"] > NOISY and sc.kind != "idle":
                        noisy.append(
                            f"{sc.key} run {i + 1}, {srv.label}: other processes used "
                            f"{got['other_busy']:.0f}% of a core during the window"
                        )
            runs.setdefault(sc.key, []).append(row)

    minutes = (time.monotonic() - started) / 60
    settings = (
        f"{s.runs} alternating run(s) per scenario (servers in the column order, then again); "
        f"{s.warmup:g} s warm-up, {s.duration:g} s measured, {s.payload}-byte messages, "
        f"{s.window} broadcasts in flight; {minutes:.1f} min in all."
    )
    notes = (
        "Medians over the runs. Ratio columns (a/b) are the median of the per-run ratios of "
        "the same row's figure (rates: higher is better for a; CPU, latency and KB: lower is). "
        "Server CPU is utime+stime from /proc/PID/stat over the measured window; RSS is VmRSS "
        "after the sessions settled minus VmRSS before they opened. The floor speaks plain "
        "WebSocket (no SockJS framing); for xhr-polling it is a minimal aiohttp long-poll "
        "echo answering the same frames (no session expiry, heartbeats or CORS), which "
        "shows what aiohttp's per-request cost allows; it sits out the streaming rows."
    )
    lost = [
        f"{sc.key}, {srv}: {m['lost']:.0f} deliveries lost (not received within 5 s)"
        for sc in scenarios
        for r in runs.get(sc.key, [])
        for srv, m in r.items()
        if m.get("lost")
    ]
    text = "\n".join(
        [
            header,
            settings + "\n",
            table(scenarios, servers, runs) + "\n",
            notes + "\n",
            "## Performance targets for sockjs_gateway\n",
            *targets(scenarios, runs),
            "",
            *(
                ["## Problems\n", *(f"- {x}" for x in failed + lost + noisy), ""]
                if failed or lost or noisy
                else []
            ),
        ]
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print("\n" + text)
    print(f"written to {args.output}")
    return 0
