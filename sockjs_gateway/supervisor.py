"""``--workers N``: N processes serving one port, and a parent that watches them.

A session lives in the process that opened it, so N processes on one port only work when
a request that reaches the wrong process is relayed to the right one over the backplane:
the command line refuses ``--workers`` above 1 without ``--redis``.

Each worker is ``python -m sockjs_gateway`` itself, started again with the same arguments
plus ``--port P --reuse-port --supervised PARENT``: it builds its own application and its
own ``RedisBackplane``, and listens with ``SO_REUSEPORT``, so the kernel spreads new
connections over the workers (Linux hashes each connection's addresses to one listener).
Separate interpreters, not ``fork``: nothing (event loop, Redis connection, imported app
state) is shared by accident.

The parent:

* reserves the port first when asked for port 0 (a bound, ``SO_REUSEPORT`` socket that
  never listens), so every worker binds the same free port;
* waits until every worker says it listens, then prints the one "listening" line;
  a worker that exits before that stops the others, and the parent exits 1;
* forwards SIGTERM and SIGINT to every worker, which then drains as a single process does
  (``shutdown_grace``), and exits when all have; a second signal is forwarded too (the
  workers stop at once);
* stops the others and exits 1 if a worker dies on its own (a supervisor such as systemd
  restarts the whole service; the survivors' sessions get 1001 and reconnect).

Workers run in their own process group, so a terminal's Ctrl-C reaches only the parent,
which forwards it once. A worker whose parent vanishes (SIGKILL) notices within a second
(``--supervised``) and shuts down as on SIGTERM: no orphans keep the port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence

__all__ = ["supervise", "watch_parent", "START_TIMEOUT"]

logger = logging.getLogger("sockjs_gateway.workers")

#: Seconds every worker has to import the app and listen.
START_TIMEOUT = 60.0
#: Seconds between two looks at whether the parent still lives.
PARENT_CHECK = 0.5
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _reserve(host: str, port: int) -> socket.socket:
    """A bound (not listening) ``SO_REUSEPORT`` socket on ``host:port``: with port 0 it
    picks the free port every worker then binds."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


async def supervise(argv: Sequence[str], *, workers: int, host: str, port: int) -> int:
    """Run ``workers`` copies of ``python -m sockjs_gateway ARGV`` on one port until a
    signal; returns the exit status (see the module docstring)."""
    try:
        reserved = _reserve(host, port)
    except OSError as error:
        print(f"sockjs_gateway: cannot bind {host}:{port}: {error}", file=sys.stderr)
        return 1
    port = reserved.getsockname()[1]
    args = [*argv, "--workers", "1", "--port", str(port), "--reuse-port"]
    args += ["--supervised", str(os.getpid())]
    stopping = asyncio.Event()
    signals = 0
    children: list[asyncio.subprocess.Process] = []

    def forward(sig: signal.Signals) -> None:
        nonlocal signals
        signals += 1
        stopping.set()
        for child in children:
            if child.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(sig)

    loop = asyncio.get_running_loop()
    for sig in _SIGNALS:
        loop.add_signal_handler(sig, forward, sig)
    try:
        for _ in range(workers):
            children.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "sockjs_gateway",
                    *args,
                    stdout=asyncio.subprocess.PIPE,
                    start_new_session=True,  # Ctrl-C reaches the parent only
                )
            )
        started = await _all_listening(children, stopping)
        reserved.close()
        if not started:
            return await _stop_all(children, 1)
        pids = ", ".join(str(child.pid) for child in children)
        print(
            f"sockjs_gateway listening on http://{host}:{port}/ ({workers} workers: {pids})",
            flush=True,
        )
        relays = [asyncio.ensure_future(_relay_stdout(child)) for child in children]
        exits = {asyncio.ensure_future(child.wait()): child for child in children}
        stop = asyncio.ensure_future(stopping.wait())
        done, _ = await asyncio.wait([stop, *exits], return_when=asyncio.FIRST_COMPLETED)
        if stop not in done:
            child = next(exits[task] for task in done)
            logger.error(
                "Worker %d exited with code %s; stopping the other workers",
                child.pid,
                child.returncode,
            )
            stop.cancel()
            return await _stop_all(children, 1)
        codes = await asyncio.gather(*(child.wait() for child in children))
        for task in relays:
            task.cancel()
        failed = [c for c in codes if c != 0]
        return 1 if failed else 0
    finally:
        reserved.close()
        for sig in _SIGNALS:
            loop.remove_signal_handler(sig)
        for child in children:  # only on an error above: never leave a worker behind
            if child.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    child.kill()
                await child.wait()


async def _all_listening(
    children: list[asyncio.subprocess.Process], stopping: asyncio.Event
) -> bool:
    """Whether every worker printed its "listening" line (before a signal, an exit, or
    :data:`START_TIMEOUT`)."""

    async def announced(child: asyncio.subprocess.Process) -> bool:
        assert child.stdout is not None
        # The app may print too (at import, say): pass that on until the announcement.
        while line := await child.stdout.readline():
            if line.startswith(b"sockjs_gateway listening on"):
                return True
            sys.stdout.buffer.write(line)
            sys.stdout.flush()
        code = await child.wait()
        print(
            f"sockjs_gateway: worker {child.pid} exited with code {code} before listening",
            file=sys.stderr,
            flush=True,
        )
        return False

    waits = [asyncio.ensure_future(announced(child)) for child in children]
    stop = asyncio.ensure_future(stopping.wait())
    try:
        async with asyncio.timeout(START_TIMEOUT):
            pending = set(waits)
            while pending:
                done, pending = await asyncio.wait(
                    {*pending, stop}, return_when=asyncio.FIRST_COMPLETED
                )
                if stop in done or not all(t.result() for t in done if t is not stop):
                    return False
                pending.discard(stop)
        return True
    except TimeoutError:
        print(
            f"sockjs_gateway: the workers did not all listen within {START_TIMEOUT:g} s",
            file=sys.stderr,
            flush=True,
        )
        return False
    finally:
        for task in (*waits, stop):
            task.cancel()


async def _relay_stdout(child: asyncio.subprocess.Process) -> None:
    """Pass on what a worker prints after its "listening" line (so it never blocks on a
    full pipe)."""
    assert child.stdout is not None
    while line := await child.stdout.readline():
        sys.stdout.buffer.write(line)
        sys.stdout.flush()


async def _stop_all(children: list[asyncio.subprocess.Process], status: int) -> int:
    """SIGTERM every running worker and wait for them (they drain as on a signal)."""
    for child in children:
        if child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                child.terminate()
    await asyncio.gather(*(child.wait() for child in children))
    return status


async def watch_parent(parent: int, stop: asyncio.Event) -> None:
    """Set ``stop`` once ``parent`` is no longer this process's parent (it died; the
    worker was re-parented): a worker must not outlive its supervisor."""
    while os.getppid() == parent:  # noqa: ASYNC110  (no event tells a process its parent died)
        await asyncio.sleep(PARENT_CHECK)
    logger.warning("Supervisor %d is gone; shutting down", parent)
    stop.set()
