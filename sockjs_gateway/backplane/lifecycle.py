"""Start a backplane with an aiohttp application and close it after.

Endpoints and brokers subscribe while the application is being built, before any event
loop runs; the connection can only be made once the application starts. So a backplane
used by an application starts in its ``on_startup`` (waiting briefly for the bus, see
:meth:`~.base.Backplane.start`) and closes in ``on_cleanup``, after ``on_shutdown`` has
said goodbye to every session. Each backplane is registered once per application however
many endpoints use it.
"""

from __future__ import annotations

from aiohttp import web

from .base import Backplane

__all__ = ["BACKPLANES", "run_with_app"]

#: The backplanes an application starts and closes.
BACKPLANES = web.AppKey("sockjs_gateway.backplanes", list[Backplane])


async def _start(app: web.Application) -> None:
    for backplane in app[BACKPLANES]:
        await backplane.start()


async def _close(app: web.Application) -> None:
    for backplane in app[BACKPLANES]:
        await backplane.close()


def run_with_app(app: web.Application, backplane: Backplane) -> None:
    """Start ``backplane`` when ``app`` starts and close it when ``app`` cleans up."""
    if BACKPLANES not in app:
        app[BACKPLANES] = []
        app.on_startup.append(_start)
        app.on_cleanup.append(_close)
    if not any(known is backplane for known in app[BACKPLANES]):
        app[BACKPLANES].append(backplane)
