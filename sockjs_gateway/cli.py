"""Command line: ``python -m sockjs_gateway serve|testserver``.

Both bind 127.0.0.1 unless ``--host`` says otherwise. ``--redis URL`` makes the process
one node of a cluster: every endpoint's broadcast and every STOMP broker's topics cross
nodes through a :class:`~sockjs_gateway.backplane.RedisBackplane` (extra ``redis``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import signal
from collections.abc import Callable, Sequence

from aiohttp import web

from .backplane.base import Backplane
from .server.runner import HEADER_TIMEOUT, GatewayRunner

__all__ = ["main", "load_factory"]


def load_factory(spec: str) -> Callable[[], web.Application]:
    """Import ``module:factory`` and return the factory."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise SystemExit(f"--app must look like module:factory, not {spec!r}")
    factory = getattr(importlib.import_module(module_name), attr, None)
    if not callable(factory):
        raise SystemExit(f"{spec!r} is not a callable")
    return factory  # type: ignore[no-any-return]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sockjs_gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the demo, or your app with --app")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--app", help="module:factory returning an aiohttp Application")
    serve.add_argument("--redis", metavar="URL", help=_REDIS_HELP)
    serve.add_argument(
        "--allowed-hosts",
        metavar="NAMES",
        default="",
        help="comma-separated Host names served besides the defaults (the --host name,"
        " localhost, 127.0.0.1, ::1, this machine's name, any IP address); '*' serves"
        " every name. Other names get 421 (DNS-rebinding defence).",
    )
    serve.add_argument(
        "--header-timeout",
        metavar="SECONDS",
        type=float,
        default=HEADER_TIMEOUT,
        help="close a connection whose request headers are not complete within this"
        f" time, and idle keep-alive connections after it (default {HEADER_TIMEOUT:g})",
    )
    test = sub.add_parser("testserver", help="the endpoints the SockJS protocol suite expects")
    test.add_argument("--host", default="127.0.0.1")
    test.add_argument("--port", type=int, default=8081)
    test.add_argument(
        "--response-limit",
        type=int,
        default=4096,
        help="streaming response recycle size in bytes (default 4096)",
    )
    test.add_argument("--redis", metavar="URL", help=_REDIS_HELP)
    return parser


_REDIS_HELP = "join the nodes sharing this Redis, e.g. redis://127.0.0.1:6379 (extra: redis)"


def _backplane(url: str) -> Backplane:
    try:
        from .backplane.redis import RedisBackplane
    except ImportError:
        raise SystemExit(
            "--redis needs the redis extra: pip install 'sockjs-gateway[redis]'"
        ) from None
    return RedisBackplane(url)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.command == "testserver":
        from .testserver import make_app

        app = make_app(response_limit=args.response_limit)
    elif args.app:
        app = load_factory(args.app)()
    else:
        from .demo import make_app as make_demo

        app = make_demo()
    if args.command == "serve":
        _check_hosts(app, args.host, args.allowed_hosts)
    if args.redis:
        from .backplane.app import use_backplane

        use_backplane(app, _backplane(args.redis))
    with contextlib.suppress(KeyboardInterrupt):
        timeout = getattr(args, "header_timeout", HEADER_TIMEOUT)
        asyncio.run(_serve(app, args.host, args.port, timeout))
    return 0


def _check_hosts(app: web.Application, bind_host: str, extra: str) -> None:
    """Answer only the Host names ``serve`` is meant for, on every route of ``app``."""
    from .server.hosts import allowed_hosts_middleware, default_host_policy

    names = tuple(name.strip() for name in extra.split(",") if name.strip())
    app.middlewares.insert(0, allowed_hosts_middleware(default_host_policy(bind_host, names)))


async def _serve(
    app: web.Application, host: str, port: int, header_timeout: float = HEADER_TIMEOUT
) -> None:
    """Serve until SIGINT or SIGTERM, then shut down cleanly (sessions get 1001)."""
    runner = GatewayRunner(app, header_timeout=header_timeout)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    bound = runner.addresses[0][1] if runner.addresses else port
    print(f"sockjs_gateway listening on http://{host}:{bound}/", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
