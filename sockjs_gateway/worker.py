"""A gunicorn worker class: ``gunicorn 'myapp:make_app' --worker-class
sockjs_gateway.worker.GunicornWorker``.

aiohttp's own ``aiohttp.GunicornWebWorker`` serves a sockjs_gateway app too (sessions work
and SIGTERM gives streaming and WebSocket clients 1001), but it stops listening before
the app hears of the shutdown, so polling clients miss their 1001, and it cannot accept
Hixie-76 WebSocket handshakes. This subclass runs the app on
:class:`~sockjs_gateway.server.runner.GracefulRunner` instead (the shutdown grace, Hixie-76
and the 10 s request-header deadline), with the same gunicorn settings (access log,
keep-alive, graceful timeout), and also accepts a plain (synchronous) factory as the app,
as ``python -m sockjs_gateway serve --app`` does.

Needs ``gunicorn`` installed (it is not a dependency of the package).
"""

from __future__ import annotations

import inspect
from typing import Any

from aiohttp import web
from aiohttp.worker import GunicornWebWorker

from .server.runner import GracefulRunner

__all__ = ["GunicornWorker"]


class GunicornWorker(GunicornWebWorker):
    """aiohttp's gunicorn worker, with the shutdown grace and Hixie-76."""

    async def _run(self) -> None:
        app = await _application(getattr(self, "wsgi"))  # noqa: B009  (untyped in gunicorn)
        access_log = self.log.access_log if self.cfg.accesslog else None
        runner = GracefulRunner(
            app,
            logger=self.log,
            keepalive_timeout=self.cfg.keepalive,
            access_log=access_log,
            access_log_format=self._get_valid_log_format(self.cfg.access_log_format),
            shutdown_timeout=self.cfg.graceful_timeout / 100 * 95,
        )

        async def ready() -> web.AppRunner:
            return runner

        # aiohttp's worker serves a runner returned by an async "wsgi" callable as it is.
        self.wsgi = ready
        await super()._run()


async def _application(target: Any) -> web.Application:
    """The app gunicorn loaded: an Application, or a factory (async or not) making one."""
    if isinstance(target, web.Application):
        return target
    if callable(target):
        made = target()
        if inspect.isawaitable(made):
            made = await made
        if isinstance(made, web.Application):
            return made
    raise RuntimeError(
        "the gunicorn app must be an aiohttp Application or a factory returning one, "
        f"not {target!r}"
    )
