"""The ``authenticate`` hook on the opening request of every transport, and sessions bound
to their opener's IP address or principal, against a real server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import WSServerHandshakeError, web
from aiohttp.test_utils import TestClient

from sockjs_gateway import Endpoint, Session, SockJSOptions, add_endpoint
from tests.conftest import MakeEndpoint, RecordingHandler
from tests.helpers import TIMEOUT

Client = TestClient[web.Request, web.Application]


@dataclass
class Authenticator:
    """Admits the user named in ``X-User`` (any but "mallory"); refuses the rest (403).
    Records the path of every request it judged."""

    paths: list[str] = field(default_factory=list)

    async def __call__(self, request: web.Request) -> str:
        self.paths.append(request.path)
        user = request.headers.get("X-User")
        if user is None or user == "mallory":
            raise web.HTTPForbidden(text="Who are you?")
        return user


@dataclass
class PrincipalRecorder(RecordingHandler):
    """Records ``session.principal`` as ``on_open`` sees it."""

    principals: list[Any] = field(default_factory=list)

    async def on_open(self, session: Session) -> None:
        self.principals.append(session.principal)
        await super().on_open(session)


# Every way to open a session, as (method, path); each is opened by its first request.
OPENERS = {
    "xhr": ("POST", "/sockjs/000/{sid}/xhr"),
    "xhr_streaming": ("POST", "/sockjs/000/{sid}/xhr_streaming"),
    "eventsource": ("GET", "/sockjs/000/{sid}/eventsource"),
    "htmlfile": ("GET", "/sockjs/000/{sid}/htmlfile?c=cb"),
    "jsonp": ("GET", "/sockjs/000/{sid}/jsonp?c=cb"),
    "websocket": ("WS", "/sockjs/000/{sid}/websocket"),
    "raw-websocket": ("WS", "/sockjs/websocket"),
}


async def open_with(client: Client, opener: str, sid: str, headers: dict[str, str]) -> int:
    """Open a session with ``opener``; the status of the opening request (101 for an
    accepted WebSocket, which is closed again at once)."""
    method, template = OPENERS[opener]
    path = template.format(sid=sid)
    async with asyncio.timeout(TIMEOUT):
        if method == "WS":
            try:
                ws = await client.ws_connect(path, headers=headers)
            except WSServerHandshakeError as refused:
                return refused.status
            if opener == "websocket":
                assert (await ws.receive()).data == "o"
            await ws.close()
            return 101
        response = await client.request(method, path, headers=headers)
        status = response.status
        if status == 200:
            await response.content.readany()  # the stream has begun: the session is open
        response.close()
        return status


@pytest.mark.parametrize("opener", list(OPENERS))
async def test_authenticate_runs_on_the_opening_request(
    make_endpoint: MakeEndpoint, opener: str
) -> None:
    auth = Authenticator()
    handler = PrincipalRecorder()
    client, endpoint = await make_endpoint(handler, authenticate=auth)
    assert await open_with(client, opener, "alice1", {"X-User": "alice"}) in (200, 101)
    await handler.wait_for("open")
    assert handler.principals == ["alice"]
    assert handler.sessions[0].principal == "alice"
    assert auth.paths == [OPENERS[opener][1].format(sid="alice1").partition("?")[0]]
    assert endpoint.stats.refused["auth"] == 0


@pytest.mark.parametrize("opener", list(OPENERS))
@pytest.mark.parametrize("user", [None, "mallory"])
async def test_refused_authentication_is_403_and_opens_nothing(
    make_endpoint: MakeEndpoint, opener: str, user: str | None
) -> None:
    handler = RecordingHandler()
    client, endpoint = await make_endpoint(handler, authenticate=Authenticator())
    headers = {} if user is None else {"X-User": user}
    assert await open_with(client, opener, "nobody", headers) == 403
    assert endpoint.session_count == 0
    assert handler.events == []
    assert endpoint.stats.refused["auth"] == 1
    assert sum(endpoint.stats.opened.values()) == 0


async def test_authenticate_runs_once_per_session_without_binding(
    make_endpoint: MakeEndpoint,
) -> None:
    auth = Authenticator()
    client, _ = await make_endpoint(authenticate=auth)
    alice = {"X-User": "alice"}
    assert await post(client, "/sockjs/000/once/xhr", alice) == (200, "o\n")
    # Later requests of the session are not re-judged (no binding): no header needed.
    assert await post(client, "/sockjs/000/once/xhr_send", {}, '["x"]') == (204, "")
    assert await post(client, "/sockjs/000/once/xhr", {}) == (200, 'a["x"]\n')
    assert auth.paths == ["/sockjs/000/once/xhr"]


async def test_refused_request_for_an_existing_id_leaves_the_session_alone(
    make_endpoint: MakeEndpoint,
) -> None:
    client, endpoint = await make_endpoint(authenticate=Authenticator())
    assert await post(client, "/sockjs/000/mine/xhr", {"X-User": "alice"}) == (200, "o\n")
    # An anonymous xhr_send to an existing session is not an opening request.
    assert await post(client, "/sockjs/000/mine/xhr_send", {}, '["hi"]') == (204, "")
    assert await post(client, "/sockjs/000/mine/xhr", {}) == (200, 'a["hi"]\n')
    assert endpoint.session_count == 1


# -- binding to the client IP ----------------------------------------------------------------


async def post(
    client: Client | aiohttp.ClientSession,
    path: str,
    headers: dict[str, str],
    data: str | None = None,
    *,
    base: Client | None = None,
) -> tuple[int, str]:
    url: Any = path if base is None else base.make_url(path)
    async with asyncio.timeout(TIMEOUT):
        response = await client.post(url, headers=headers, data=data)
        return response.status, await response.text()


@asynccontextmanager
async def client_from(address: str) -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client whose connections come from ``address`` (any of 127.0.0.0/8 is
    loopback on Linux), each on a fresh source port."""
    connector = aiohttp.TCPConnector(local_addr=(address, 0), force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        yield session


async def test_bind_ip_hides_the_session_from_other_addresses(
    make_endpoint: MakeEndpoint,
) -> None:
    handler = RecordingHandler()
    client, endpoint = await make_endpoint(handler, bind_session="ip")
    assert await post(client, "/sockjs/000/pinned/xhr", {}) == (200, "o\n")
    session = endpoint.registry.get("pinned")
    assert session is not None
    assert session.info.remote == "127.0.0.1"
    async with client_from("127.0.0.2") as stranger:
        for path in ("/sockjs/000/pinned/xhr_send", "/sockjs/000/pinned/jsonp_send"):
            status, _ = await post(stranger, path, {}, '["forged"]', base=client)
            assert status == 404
        for path in ("/sockjs/000/pinned/xhr", "/sockjs/000/pinned/xhr_streaming"):
            status, _ = await post(stranger, path, {}, base=client)
            assert status == 404
        async with asyncio.timeout(TIMEOUT):
            response = await stranger.get(client.make_url("/sockjs/000/pinned/eventsource"))
            assert response.status == 404
    # The owner's session is untouched: nothing delivered, nothing taken, not interrupted.
    assert not session.closed
    assert await post(client, "/sockjs/000/pinned/xhr_send", {}, '["mine"]') == (204, "")
    assert await post(client, "/sockjs/000/pinned/xhr", {}) == (200, 'a["mine"]\n')
    assert [event[2] for event in handler.of_kind("message")] == ["mine"]
    assert handler.of_kind("close") == []


async def test_bind_ip_ignores_the_source_port(aiohttp_client: Any) -> None:
    peers: list[tuple[str, int]] = []

    @web.middleware
    async def record_peer(request: web.Request, handler: Any) -> web.StreamResponse:
        assert request.transport is not None
        peers.append(request.transport.get_extra_info("peername")[:2])
        response: web.StreamResponse = await handler(request)
        return response

    app = web.Application(middlewares=[record_peer])
    add_endpoint(app, RecordingHandler(), options=SockJSOptions(bind_session="ip"))
    client: Client = await aiohttp_client(app)
    async with client_from("127.0.0.1") as fresh:  # a new connection, and port, per request
        assert await post(client, "/sockjs/000/roam/xhr", {}) == (200, "o\n")
        assert await post(fresh, "/sockjs/000/roam/xhr_send", {}, '["p"]', base=client) == (
            204,
            "",
        )
        assert await post(fresh, "/sockjs/000/roam/xhr", {}, base=client) == (200, 'a["p"]\n')
    assert {host for host, _ in peers} == {"127.0.0.1"}
    # The opener's connection stays open (keep-alive), so the later ones had other ports.
    assert peers[0][1] not in (peers[1][1], peers[2][1])


async def test_bind_ip_other_address_may_open_its_own_session(
    make_endpoint: MakeEndpoint,
) -> None:
    client, endpoint = await make_endpoint(bind_session="ip")
    async with client_from("127.0.0.2") as other:
        assert await post(other, "/sockjs/000/theirs/xhr", {}, base=client) == (200, "o\n")
    session = endpoint.registry.get("theirs")
    assert session is not None
    assert session.info.remote == "127.0.0.2"
    assert (await post(client, "/sockjs/000/theirs/xhr", {}))[0] == 404


# -- binding to the principal ------------------------------------------------------------------


async def bound_to_principal(make_endpoint: MakeEndpoint) -> tuple[Client, Endpoint, Any]:
    handler = RecordingHandler()
    client, endpoint = await make_endpoint(
        handler, authenticate=Authenticator(), bind_session="principal"
    )
    assert await post(client, "/sockjs/000/acct/xhr", {"X-User": "alice"}) == (200, "o\n")
    return client, endpoint, handler


@pytest.mark.parametrize(
    "headers", [{"X-User": "bob"}, {}, {"X-User": "mallory"}], ids=["bob", "anonymous", "refused"]
)
async def test_bind_principal_hides_the_session_from_others(
    make_endpoint: MakeEndpoint, headers: dict[str, str]
) -> None:
    client, endpoint, handler = await bound_to_principal(make_endpoint)
    assert (await post(client, "/sockjs/000/acct/xhr_send", headers, '["forged"]'))[0] == 404
    assert (await post(client, "/sockjs/000/acct/xhr", headers))[0] == 404
    alice = {"X-User": "alice"}
    assert await post(client, "/sockjs/000/acct/xhr_send", alice, '["mine"]') == (204, "")
    assert await post(client, "/sockjs/000/acct/xhr", alice) == (200, 'a["mine"]\n')
    assert [event[2] for event in handler.of_kind("message")] == ["mine"]
    assert handler.of_kind("close") == []
    assert endpoint.session_count == 1


def test_bind_principal_needs_authenticate() -> None:
    with pytest.raises(ValueError, match="authenticate"):
        SockJSOptions(bind_session="principal")


async def test_bound_principal_is_compared_by_value(make_endpoint: MakeEndpoint) -> None:
    async def token(request: web.Request) -> dict[str, str]:
        return {"user": request.headers.get("X-User", "")}

    client, _ = await make_endpoint(authenticate=token, bind_session="principal")
    assert await post(client, "/sockjs/000/v/xhr", {"X-User": "ann"}) == (200, "o\n")
    assert await post(client, "/sockjs/000/v/xhr_send", {"X-User": "ann"}, '["a"]') == (204, "")
    assert (await post(client, "/sockjs/000/v/xhr_send", {"X-User": "bo"}, '["b"]'))[0] == 404
    assert await post(client, "/sockjs/000/v/xhr", {"X-User": "ann"}) == (200, 'a["a"]\n')


async def test_info_is_refused_too_but_not_its_preflight(make_endpoint: MakeEndpoint) -> None:
    auth = Authenticator()
    client, endpoint = await make_endpoint(authenticate=auth)
    assert (await client.get("/sockjs/info")).status == 403
    ok = await client.get("/sockjs/info", headers={"X-User": "alice"})
    assert ok.status == 200
    assert "websocket" in await ok.json()
    preflight = await client.options("/sockjs/info", headers={"Origin": "http://x.example"})
    assert preflight.status == 204
    assert auth.paths == ["/sockjs/info", "/sockjs/info"]
    assert endpoint.stats.refused["auth"] == 1
