"""What an application implements, and what it learns about a connection.

A handler never learns which transport carries a session's traffic; ``ConnectionInfo``
says which one opened it, for logging and auth decisions only.

One rule for every hook the library calls (a handler's three hooks, ``authenticate``,
STOMP broker hooks and ``/app`` mappings, the aio-libs drop-in's handler): it may be an
``async def`` or a plain ``def``. What it returns is awaited if it is awaitable, and
otherwise taken as it is. Hooks are checked when they are mounted (:func:`check_handler`,
:func:`check_hook`), so a class passed instead of an instance, a missing hook or a wrong
signature raises ``TypeError`` at start-up instead of failing every session later.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, ParamSpec, Protocol, TypeVar

from .info import ConnectionInfo

if TYPE_CHECKING:
    from .server.session import Session

#: ``ConnectionInfo`` is defined in :mod:`.info` and re-exported here, where users import it.
__all__ = ["Handler", "ConnectionInfo", "run_blocking", "check_handler", "check_hook"]

#: The hooks of a handler and the positional arguments each is called with.
HOOKS = (
    ("on_open", ("session",)),
    ("on_message", ("session", "message")),
    ("on_close", ("session", "code", "reason")),
)

_P = ParamSpec("_P")
_T = TypeVar("_T")


async def run_blocking(func: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """Run blocking ``func(*args, **kwargs)`` in the loop's default executor (a thread pool)
    and return its result, so a hook that must call blocking code (a database driver, a
    file, CPU-heavy work) does not stall the event loop, heartbeats or other sessions.

    Example::

        async def on_message(self, session, message):
            reply = await run_blocking(lookup_in_legacy_db, message)
            session.send(reply)
    """
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(func, *args, **kwargs))


class Handler(Protocol):
    """The three hooks of a SockJS application. Each runs in its session's own order:
    ``on_open`` first, then ``on_message`` once per message, then ``on_close`` once.

    Hooks may call ``session.send`` and ``session.close`` freely; they must not block the
    event loop (run blocking work in an executor).
    """

    async def on_open(self, session: Session) -> None:
        """The session is open; ``session.send`` works from now on."""

    async def on_message(self, session: Session, message: str) -> None:
        """The client sent ``message``."""

    async def on_close(self, session: Session, code: int, reason: str) -> None:
        """The session is closed (by either side, by a timeout, or by a lost connection)."""


def check_hook(name: str, hook: object, params: tuple[str, ...]) -> None:
    """Raise ``TypeError`` unless ``hook`` can be called with ``params`` positionally.

    Args:
        name: what the hook is called in the message, e.g. ``"Echo.on_message"``.
        hook: the callable to check.
        params: the names of the arguments it will get, for the message.
    """
    call = f"{name}({', '.join(params)})"
    if not callable(hook):
        raise TypeError(f"{name} must be callable as {call}, not {hook!r}")
    try:
        signature = inspect.signature(hook)
    except (TypeError, ValueError):  # some builtins have none: nothing to check
        return
    try:
        signature.bind(*params)
    except TypeError as error:
        raise TypeError(f"{name} cannot be called as {call}: {error}") from None


def check_handler(handler: object) -> None:
    """Raise ``TypeError`` unless ``handler`` is an object with the three hooks.

    Raises:
        TypeError: naming the problem (``None``, a class instead of an instance, a plain
            function, a missing hook, or a hook with the wrong signature).
    """
    hooks = ", ".join(name for name, _ in HOOKS)
    if handler is None:
        raise TypeError(f"handler is None: pass an object with {hooks}")
    if isinstance(handler, type):
        name = handler.__name__
        raise TypeError(f"handler is the class {name}, not an instance: pass {name}()")
    kind = type(handler).__name__
    missing = [name for name, _ in HOOKS if not hasattr(handler, name)]
    if missing:
        if inspect.isroutine(handler):
            raise TypeError(f"handler is a function: pass an object with {hooks}")
        raise TypeError(f"handler {kind} has no {', '.join(missing)} (a handler needs {hooks})")
    for name, params in HOOKS:
        check_hook(f"{kind}.{name}", getattr(handler, name), params)
