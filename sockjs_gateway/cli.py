"""Command line: ``python -m sockjs_gateway serve|testserver``.

Both bind 127.0.0.1 unless ``--host`` says otherwise. ``--redis URL`` makes the process
one node of a cluster: every endpoint's broadcast and every STOMP broker's topics cross
nodes through a :class:`~sockjs_gateway.backplane.RedisBackplane` (extra ``redis``).
``--workers N`` (with ``--redis``) runs N such nodes as processes on one port (see
:mod:`sockjs_gateway.supervisor`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import importlib.util
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

from aiohttp import web

from .backplane.base import Backplane
from .server.runner import HEADER_TIMEOUT, GracefulRunner

__all__ = ["main", "load_factory"]


def load_factory(spec: str) -> Callable[[], web.Application]:
    """Import ``module:factory`` or ``path/to/file.py:factory`` and return the factory
    (``factory`` may also name an ``Application`` itself).

    A file is imported as a module named after it, with its folder first on ``sys.path``
    (as ``python path/to/file.py`` would), so it can import its neighbours.
    """
    target, _, attr = spec.rpartition(":")
    if not target or not attr:
        raise SystemExit(
            f"--app must look like module:factory or path/to/file.py:factory, not {spec!r}"
        )
    if target.endswith(".py") or os.sep in target or "/" in target:
        module = _import_file(Path(target))
    else:
        module = importlib.import_module(target)
    factory = getattr(module, attr, None)
    if isinstance(factory, web.Application):
        app = factory
        return lambda: app  # a module-level app, as gunicorn accepts too
    if not callable(factory):
        raise SystemExit(f"{spec!r} is neither an aiohttp Application nor a callable")
    return factory  # type: ignore[no-any-return]


def _import_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise SystemExit(f"--app: no such file {str(path)!r}")
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    name = path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"--app: cannot import {str(path)!r}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sockjs_gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve", help="run the demo, or your app with --app", formatter_class=_Help
    )
    _common(serve, port=8080, access_log=True)
    serve.add_argument(
        "--app",
        metavar="MODULE:FACTORY",
        help="module:factory or path/to/file.py:factory returning an aiohttp Application, "
        "or naming one (default: the chat demo)",
    )
    serve.add_argument(
        "--allowed-hosts",
        metavar="NAMES",
        default="",
        help="comma-separated Host names served besides the defaults (the --host name,"
        " localhost, 127.0.0.1, ::1, this machine's name, any IP address); '*' serves"
        " every name. Other names get 421 (DNS-rebinding defence); default: none more",
    )
    test = sub.add_parser(
        "testserver",
        help="the endpoints the SockJS protocol suite expects",
        formatter_class=_Help,
    )
    _common(test, port=8081, access_log=False)
    test.add_argument(
        "--response-limit",
        type=int,
        default=4096,
        metavar="BYTES",
        help="streaming response recycle size in bytes",
    )
    test.add_argument(
        "--heartbeat-delay",
        type=_positive_float,
        default=25.0,
        metavar="SECONDS",
        help="heartbeat_delay of every endpoint (short, for tests that wait for an h frame)",
    )
    test.add_argument(
        "--disconnect-delay",
        type=_positive_float,
        default=5.0,
        metavar="SECONDS",
        help="disconnect_delay of every endpoint",
    )
    test.add_argument(
        "--sockjs-url",
        metavar="URL",
        help="where the iframe page loads sockjs-client from (default: the public CDN)",
    )
    return parser


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text}")
    return value


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Every flag's help ends with its default (flags without one say it in words)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, ""):
            return action.help
        return super()._get_help_string(action)


def _backplane(url: str) -> Backplane:
    try:
        from .backplane.redis import RedisBackplane
    except ImportError:
        raise SystemExit(
            "--redis needs the redis extra: pip install 'sockjs-gateway[redis]'"
        ) from None
    return RedisBackplane(url)


def _common(parser: argparse.ArgumentParser, *, port: int, access_log: bool) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=port, help="port to listen on (0: any free)")
    parser.add_argument(
        "--redis",
        metavar="URL",
        help="join the nodes sharing this Redis, e.g. redis://127.0.0.1:6379 (extra: redis; "
        "default: one process on its own)",
    )
    parser.add_argument(
        "--header-timeout",
        metavar="SECONDS",
        type=_positive_float,
        default=HEADER_TIMEOUT,
        help="close a connection whose request headers are not complete within this"
        " time, and idle keep-alive connections after it",
    )
    parser.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        metavar="N",
        help="processes serving the port (SO_REUSEPORT, Linux); above 1 needs --redis, which"
        " relays each request to the worker holding its session",
    )
    # Internal: how the supervisor starts each worker.
    parser.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--supervised", type=int, metavar="PID", help=argparse.SUPPRESS)
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        type=str.upper,
        help="lowest level logged to stderr; refusals are WARNING, state changes INFO",
    )
    parser.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=access_log,
        help="log one line per HTTP request (logger aiohttp.access)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if args.workers > 1:
        if not args.redis:
            parser.error(
                f"--workers {args.workers} needs --redis URL: a session lives in one worker,"
                " and the kernel hands each request to any worker, so the workers must"
                " relay requests to each other through Redis"
            )
        if not hasattr(socket, "SO_REUSEPORT"):
            parser.error("--workers above 1 needs SO_REUSEPORT (Linux), missing here")
    # A worker names itself in every line, so that its logs can be told apart.
    process = "[worker %(process)d] " if args.supervised else ""
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format=f"%(asctime)s %(levelname)s {process}%(name)s %(message)s",
    )
    if args.workers > 1:
        from .supervisor import supervise

        with contextlib.suppress(KeyboardInterrupt):
            return asyncio.run(
                supervise(argv, workers=args.workers, host=args.host, port=args.port)
            )
        return 1
    if args.command == "testserver":
        from .options import SockJSOptions
        from .testserver import make_app

        options = SockJSOptions(
            allowed_origins=("*",),
            heartbeat_delay=args.heartbeat_delay,
            disconnect_delay=args.disconnect_delay,
        )
        if args.sockjs_url:
            options = replace(options, sockjs_url=args.sockjs_url)
        app = make_app(response_limit=args.response_limit, options=options)
    elif args.app:
        app = load_factory(args.app)()
    else:
        from .demo import make_app as make_demo

        app = make_demo()
    if args.command == "serve":
        _check_hosts(app, args.host, args.allowed_hosts)
    if args.redis:
        from .cluster import use_backplane

        use_backplane(app, _backplane(args.redis))
    with contextlib.suppress(KeyboardInterrupt):
        timeout = args.header_timeout
        asyncio.run(
            _serve(
                app,
                args.host,
                args.port,
                timeout,
                access_log=args.access_log,
                reuse_port=args.reuse_port,
                parent=args.supervised,
            )
        )
    return 0


def _check_hosts(app: web.Application, bind_host: str, extra: str) -> None:
    """Answer only the Host names ``serve`` is meant for, on every route of ``app``."""
    from .server.hosts import allowed_hosts_middleware, default_host_policy

    names = tuple(name.strip() for name in extra.split(",") if name.strip())
    app.middlewares.insert(0, allowed_hosts_middleware(default_host_policy(bind_host, names)))


async def _serve(
    app: web.Application,
    host: str,
    port: int,
    header_timeout: float = HEADER_TIMEOUT,
    *,
    access_log: bool = True,
    reuse_port: bool = False,
    parent: int | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM, then shut down cleanly: every session gets 1001,
    and the listener stays up for the endpoints' ``shutdown_grace`` so that polling
    clients come back for it. A worker of ``--workers`` (``parent`` is its supervisor's
    pid) also stops so when its supervisor is gone."""
    kwargs: dict[str, Any] = {} if access_log else {"access_log": None}
    runner = GracefulRunner(app, header_timeout=header_timeout, **kwargs)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if parent is not None:
        from .supervisor import watch_parent

        watcher = asyncio.ensure_future(watch_parent(parent, stop))
    bound = runner.addresses[0][1] if runner.addresses else port
    print(f"sockjs_gateway listening on http://{host}:{bound}/", flush=True)
    try:
        await stop.wait()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)  # a second signal stops at once
    finally:
        if parent is not None:
            watcher.cancel()
        await runner.cleanup()
