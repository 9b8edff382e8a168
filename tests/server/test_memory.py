"""What hostile WebSocket clients can make the server hold, measured from outside.

The server runs in a subprocess (:mod:`tests.server.memserver`), and its memory is read
from ``/proc/<pid>/status`` (the peak, ``VmHWM``) or from tracemalloc inside it. Every
client loop is bounded in bytes and in time; the bounds asserted are memory, never time.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.wsframes import CONTINUATION, PING, TEXT, client_frame

ROOT = Path(__file__).resolve().parents[2]
MB = 1024 * 1024

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="reads /proc/<pid>/status (Linux)"
)


@contextlib.contextmanager
def memserver(*args: str, **options: Any) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """The server process and its port."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.server.memserver", *args, json.dumps(options)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 30)
        line = process.stdout.readline() if ready else b""
        assert line.startswith(b"port "), f"the server did not start: {line!r}"
        yield process, int(line.split()[1])
    finally:
        process.kill()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


def status_kb(pid: int, field: str) -> int:
    """One ``kB`` field of ``/proc/<pid>/status``: ``VmRSS`` now, ``VmHWM`` its peak."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def upgrade(port: int, path: str, extensions: str | None = None) -> socket.socket:
    """A raw socket past its WebSocket handshake (the 101 and its headers read)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    offer = f"Sec-WebSocket-Extensions: {extensions}\r\n" if extensions else ""
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\n{offer}\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head and len(head) < 8192:
        chunk = sock.recv(4096)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def flood_pings(sock: socket.socket, *, limit: int, seconds: float, stall: float) -> str:
    """Send 125-byte pings and never read, until ``limit`` bytes are sent, ``seconds``
    pass, no byte could be sent for ``stall`` seconds, or the server cuts the connection.
    Returns which of those ended it."""
    batch = client_frame(PING, b"p" * 125, mask=b"mask") * 512
    pending = memoryview(batch)
    sock.setblocking(False)
    sent = 0
    start = progress = time.monotonic()
    while sent < limit:
        now = time.monotonic()
        if now - start > seconds:
            return "time"
        if now - progress > stall:
            return "stalled"
        try:
            count = sock.send(pending)
        except BlockingIOError:
            select.select([], [sock], [], 0.05)
            continue
        except OSError:
            return "cut"
        sent += count
        progress = time.monotonic()
        pending = pending[count:] if count < len(pending) else memoryview(batch)
    return "limit"


ROUTES = {"sockjs": "/echo/000/flood/websocket", "raw": "/echo/websocket"}


@pytest.mark.parametrize("route", sorted(ROUTES))
@pytest.mark.parametrize("policy", ["close", "drop-oldest"])
@pytest.mark.timeout(90)
def test_ping_flood_from_a_client_that_never_reads_is_bounded(route: str, policy: str) -> None:
    """Before: +440 MB in 10 s (defaults), 1.4 GB with drop-oldest; pongs were queued
    without limit. Now the server stops reading once its pongs back up."""
    with memserver(slow_consumer=policy) as (process, port):
        upgrade(port, ROUTES[route]).close()  # the first connection's one-off costs
        time.sleep(0.2)
        baseline = status_kb(process.pid, "VmRSS")
        with contextlib.closing(upgrade(port, ROUTES[route])) as sock:
            ended = flood_pings(sock, limit=400 * MB, seconds=15, stall=1.5)
            growth = (status_kb(process.pid, "VmHWM") - baseline) // 1024
    print(f"ping flood, {route}, {policy}: ended by {ended}, peak growth {growth} MB")
    assert growth < 60


def traced(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/traced", timeout=10) as reply:
        return int(reply.read())


COMPRESSED = "permessage-deflate"


@pytest.mark.parametrize("route", [*sorted(ROUTES), COMPRESSED])
@pytest.mark.timeout(90)
def test_closed_connections_free_unfinished_messages_without_the_cyclic_gc(route: str) -> None:
    """Connections that die in the middle of a fragmented message, with the cyclic GC
    off: their buffers are freed by reference counting alone. Before, the connection and
    its frame reader formed a cycle, and 100-164 dead connections held 393-645 MB."""
    count, fragment = 20, MB
    compressed = route == COMPRESSED
    path = ROUTES["raw" if compressed else route]
    extensions = COMPRESSED if compressed else None
    options = {"websocket_compression": True} if compressed else {}
    with memserver("--no-gc", "--trace", **options) as (_, port):
        upgrade(port, path, extensions).close()
        time.sleep(0.2)
        baseline = traced(port)
        sockets = [upgrade(port, path, extensions) for _ in range(count)]
        for sock in sockets:
            # One whole first fragment, then half of a second one.
            sock.sendall(client_frame(TEXT, b"a" * fragment, fin=False))
            sock.sendall(client_frame(CONTINUATION, b"b" * fragment, fin=True)[: fragment // 2])
        held = traced(port)
        for _ in range(100):  # the server reads it all soon; bounded anyway
            if held - baseline >= count * fragment:
                break
            time.sleep(0.05)
            held = traced(port)
        for sock in sockets:
            sock.close()
        after = traced(port)
        for _ in range(100):
            if after - baseline < 4 * MB:
                break
            time.sleep(0.05)
            after = traced(port)
    print(f"{route}: held {(held - baseline) // MB} MB open, {(after - baseline) // MB} MB closed")
    assert held - baseline >= count * fragment  # the test did make the server hold them
    assert after - baseline < 4 * MB
