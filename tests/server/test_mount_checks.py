"""Handlers and hooks are checked when they are mounted: a mistake raises ``TypeError``
naming it at start-up, instead of failing every session at runtime. And the one rule for
every hook, async or plain ``def``, holds at runtime too."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest
from aiohttp import web

from sockjs_gateway import Session, SockJSOptions, add_endpoint
from sockjs_gateway.compat import aiosockjs
from sockjs_gateway.stomp import AppMessage, Broker
from tests.conftest import MakeEndpoint
from tests.helpers import TIMEOUT


class Echo:
    async def on_open(self, session: Session) -> None: ...

    async def on_message(self, session: Session, message: str) -> None:
        session.send(message)

    async def on_close(self, session: Session, code: int, reason: str) -> None: ...


class NoClose:
    async def on_open(self, session: Session) -> None: ...

    async def on_message(self, session: Session, message: str) -> None: ...


class BadSignature(Echo):
    async def on_message(self, session: Session) -> None:  # type: ignore[override]
        ...


async def just_a_function(session: Session, message: str) -> None: ...


@pytest.mark.parametrize(
    ("handler", "expected"),
    [
        (Echo, "handler is the class Echo, not an instance: pass Echo()"),
        (None, "handler is None: pass an object with on_open, on_message, on_close"),
        (just_a_function, "handler is a function: pass an object with on_open"),
        (NoClose(), "handler NoClose has no on_close"),
        (BadSignature(), "BadSignature.on_message cannot be called as"),
        (object(), "handler object has no on_open, on_message, on_close"),
    ],
)
def test_add_endpoint_refuses_what_is_not_a_handler(handler: Any, expected: str) -> None:
    app = web.Application()
    with pytest.raises(TypeError, match=re.escape(expected)):
        add_endpoint(app, handler, prefix="/sockjs")
    assert not list(app.router.routes())  # nothing half-mounted


def test_add_endpoint_refuses_an_authenticate_that_takes_no_request() -> None:
    async def authenticate() -> str:
        return "nobody"

    options = SockJSOptions(authenticate=authenticate)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=re.escape("authenticate cannot be called as")):
        add_endpoint(web.Application(), Echo(), options=options)


def test_broker_refuses_hooks_with_the_wrong_parameters() -> None:
    def authorize(destination: str) -> bool:
        return True

    with pytest.raises(TypeError, match="Broker authorize_send cannot be called as"):
        Broker(authorize_send=authorize)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Broker authenticate must be callable"):
        Broker(authenticate="alice")  # type: ignore[arg-type]
    broker = Broker()
    with pytest.raises(TypeError, match="mapping for '/echo' cannot be called as"):
        broker.message_mapping("/echo")(lambda: None)  # type: ignore[arg-type,misc]


def test_the_drop_in_refuses_a_handler_with_the_wrong_parameters() -> None:
    async def chat(msg: Any, session: Any) -> None: ...  # aio-libs' handler takes three

    with pytest.raises(TypeError, match="handler cannot be called as"):
        aiosockjs.add_endpoint(web.Application(), chat)  # type: ignore[arg-type]


class PlainHooks:
    """Every hook a plain ``def``: they run, in order, as async ones would."""

    def __init__(self) -> None:
        self.calls: list[Any] = []

    def on_open(self, session: Session) -> None:
        self.calls.append(("open", session.principal))

    def on_message(self, session: Session, message: str) -> None:
        self.calls.append(("message", message))
        session.send(message.upper())

    def on_close(self, session: Session, code: int, reason: str) -> None:
        self.calls.append(("close", code))


async def test_plain_function_hooks_and_authenticate_run(make_endpoint: MakeEndpoint) -> None:
    handler = PlainHooks()

    def authenticate(request: web.Request) -> str:
        return request.query.get("user", "anonymous")

    client, _ = await make_endpoint(handler, authenticate=authenticate)
    async with asyncio.timeout(TIMEOUT):
        response = await client.post("/sockjs/000/p1/xhr?user=ada")
        assert await response.text() == "o\n"
        response = await client.post("/sockjs/000/p1/xhr_send", data=json.dumps(["hi"]))
        assert response.status == 204
        response = await client.post("/sockjs/000/p1/xhr")
        assert await response.text() == 'a["HI"]\n'
    assert handler.calls == [("open", "ada"), ("message", "hi")]


async def test_a_plain_mapping_and_plain_broker_hooks_are_accepted() -> None:
    def authorize(user: str | None, destination: str) -> bool:
        return True

    broker = Broker(authorize_send=authorize, authorize_subscribe=authorize)

    @broker.message_mapping("/echo")
    def echo(message: AppMessage) -> None:
        message.reply(message.text)

    assert broker.authorize_send is authorize
