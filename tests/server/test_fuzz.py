"""Random bytes and random JSON against every inbound path of a live server.

Paths: ``xhr_send`` bodies, ``jsonp_send`` raw and form bodies, SockJS WebSocket frames,
raw WebSocket frames, ``c``/``callback`` query strings of jsonp and htmlfile, and session
ids in the URL. The invariant for every input: the answer is the documented one (status
and body, or echo / close code), the server stays healthy (a long-lived *witness*
session on another transport echoes after every example) and other sessions are untouched
(a *bystander* session hears nothing and stays open). One server per test function.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode

import pytest
from aiohttp import ClientWebSocketResponse, WSMsgType, web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sockjs_gateway import Endpoint, Session
from tests.conftest import MakeEndpoint, RecordingHandler
from tests.helpers import TIMEOUT, decode_oracle

MAX = 1024  # max_message_bytes of the fuzzed server
Client = TestClient[web.Request, web.Application]
if TYPE_CHECKING:
    WebSocket = ClientWebSocketResponse[Any]
else:  # generic only from aiohttp 3.14; the suite also runs on the lowest release it supports
    WebSocket = ClientWebSocketResponse
BROKEN = "Broken JSON encoding."
EXPECTED = "Payload expected."
FORM = "application/x-www-form-urlencoded"
_ID = re.compile(r"[\x20-\x2d\x30-\x7e]{1,128}")
_CALLBACK = re.compile(r"[A-Za-z0-9_.]{1,32}")

#: Inputs sent, by path; reported once the module's tests are done.
SENT: Counter[str] = Counter()


def fuzz(examples: int) -> settings:
    """Settings of every fuzz test: one server serves all examples of a test function."""
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


# -- inputs ---------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)
json_texts = st.builds(json.dumps, json_values, ensure_ascii=st.booleans())
#: Text bodies: random JSON, arrays of strings (the valid case), and arbitrary text.
texts = st.one_of(
    json_texts,
    st.lists(st.text(max_size=80), max_size=6).map(json.dumps),
    st.lists(st.text(max_size=80), max_size=6).map(lambda v: json.dumps(v, ensure_ascii=False)),
    st.text(max_size=300),
)
bodies = st.one_of(st.binary(max_size=1500), texts.map(lambda text: text.encode()))


# -- the rig: one server, a witness on each transport family, a bystander --------------------


class FuzzHandler(RecordingHandler):
    """Echoes, except for the sessions that swallow fuzzed HTTP bodies ("sink...")."""

    async def on_message(self, session: Session, message: str) -> None:
        self._record("message", session, message)
        if not session.id.startswith("sink"):
            session.send(message)

    def messages_of(self, session_id: str) -> list[str]:
        return [e[2] for e in self.of_kind("message") if e[1].id == session_id]


@dataclass
class Rig:
    client: Client
    endpoint: Endpoint
    handler: FuzzHandler
    witness_ws: WebSocket
    markers: list[str] = field(default_factory=list)
    examples: int = 0

    def next_id(self, prefix: str) -> str:
        self.examples += 1
        return f"{prefix}{self.examples}"

    async def ws_witness_echoes(self) -> None:
        """The WebSocket witness still echoes (after an HTTP example)."""
        marker = f"marker {len(self.markers)}"
        self.markers.append(marker)
        await self.witness_ws.send_str(json.dumps([marker]))
        async with asyncio.timeout(TIMEOUT):
            while True:
                msg = await self.witness_ws.receive()
                assert msg.type is WSMsgType.TEXT, msg
                if msg.data != "h":
                    assert msg.data == "a" + json.dumps([marker]), msg.data
                    return

    async def xhr_witness_echoes(self) -> None:
        """The xhr-polling witness still echoes (after a WebSocket example)."""
        marker = f"marker {len(self.markers)}"
        self.markers.append(marker)
        async with asyncio.timeout(TIMEOUT):
            sent = await self.client.post(
                "/sockjs/000/witness-xhr/xhr_send", data=json.dumps([marker])
            )
            assert sent.status == 204
            while True:
                body = await (await self.client.post("/sockjs/000/witness-xhr/xhr")).text()
                if body != "h\n":
                    assert body == "a" + json.dumps([marker]) + "\n", body
                    return


@pytest.fixture(scope="module", autouse=True)
def report_inputs(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    total = sum(SENT.values())
    detail = ", ".join(f"{path}={count}" for path, count in sorted(SENT.items()))
    line = f"\nfuzz inputs sent: {total} ({detail})"
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print(line)


@pytest.fixture
async def rig(make_endpoint: MakeEndpoint) -> AsyncIterator[Rig]:
    handler = FuzzHandler()
    client, endpoint = await make_endpoint(
        handler, max_message_bytes=MAX, disconnect_delay=60.0, heartbeat_delay=60.0
    )
    async with asyncio.timeout(TIMEOUT):
        for session_id in ("sink", "witness-xhr", "bystander"):
            opened = await client.post(f"/sockjs/000/{session_id}/xhr")
            assert await opened.text() == "o\n"
    async with client.ws_connect("/sockjs/000/witness-ws/websocket") as witness:
        assert (await witness.receive(timeout=TIMEOUT)).data == "o"
        rig = Rig(client, endpoint, handler, witness)
        yield rig
        # Other sessions were untouched: the bystander heard nothing and is still open,
        # the witnesses heard exactly their markers, and every id is a documented one.
        bystander = endpoint.registry.get("bystander")
        assert bystander is not None
        assert not bystander.closed
        assert handler.messages_of("bystander") == []
        witnessed = handler.messages_of("witness-ws") + handler.messages_of("witness-xhr")
        assert sorted(witnessed) == sorted(rig.markers)
        assert all(_ID.fullmatch(session.id) for session in endpoint.registry if session.id)
        assert endpoint.stats.handler_errors == 0


# -- xhr_send and jsonp_send ------------------------------------------------------------------


async def post_body(rig: Rig, path: str, body: bytes, content_type: str) -> tuple[int, str]:
    async with asyncio.timeout(TIMEOUT):
        response = await rig.client.post(path, data=body, headers={"Content-Type": content_type})
        return response.status, await response.text()


async def check_upstream(rig: Rig, transport: str, body: bytes, decoded: list[str] | str) -> None:
    """Send ``body`` to the sink session and check the documented answer."""
    before = len(rig.handler.messages_of("sink"))
    content_type = FORM if body.startswith(b"d=") and transport == "jsonp_send" else "text/plain"
    status, text = await post_body(rig, f"/sockjs/000/sink/{transport}", body, content_type)
    if len(body) > MAX:
        assert (status, text) == (413, "Payload too large.")
    elif isinstance(decoded, str):
        assert (status, text) == (500, decoded)
    else:
        assert (status, text) == ((204, "") if transport == "xhr_send" else (200, "ok"))
        await rig.handler.wait_until(
            lambda: len(rig.handler.messages_of("sink")) >= before + len(decoded)
        )
    assert rig.handler.messages_of("sink")[before:] == (
        [] if isinstance(decoded, str) or len(body) > MAX else decoded
    )
    await rig.ws_witness_echoes()


@fuzz(300)
@given(body=bodies)
async def test_xhr_send_bodies(rig: Rig, body: bytes) -> None:
    SENT["xhr_send"] += 1
    await check_upstream(rig, "xhr_send", body, decode_oracle(body))


@fuzz(200)
@given(body=bodies.filter(lambda b: not b.startswith(b"d=")))
async def test_jsonp_send_raw_bodies(rig: Rig, body: bytes) -> None:
    SENT["jsonp_send raw"] += 1
    await check_upstream(rig, "jsonp_send", body, decode_oracle(body))


@fuzz(200)
@given(text=texts)
async def test_jsonp_send_form_bodies(rig: Rig, text: str) -> None:
    SENT["jsonp_send form"] += 1
    body = ("d=" + quote(text, safe="")).encode()
    await check_upstream(rig, "jsonp_send", body, decode_oracle(text))


@fuzz(150)
@given(body=st.binary(max_size=600))
async def test_jsonp_send_random_form_bytes(rig: Rig, body: bytes) -> None:
    """Arbitrary bytes declared as a form: a documented answer, whatever they hold."""
    SENT["jsonp_send form bytes"] += 1
    status, text = await post_body(rig, "/sockjs/000/sink/jsonp_send", body, FORM)
    assert (status, text) in ((200, "ok"), (500, BROKEN), (500, EXPECTED))
    await rig.ws_witness_echoes()


# -- WebSocket frames ---------------------------------------------------------------------------

frames = st.one_of(
    texts,
    st.text(max_size=40).map(json.dumps),  # a bare string: one message on WebSocket
    st.binary(max_size=200),
    st.text(min_size=MAX - 10, max_size=MAX + 10, alphabet="ab"),  # around the limit
)


async def read_until_marker_or_close(
    ws: WebSocket, marker: str, raw: bool
) -> tuple[list[str], int | None]:
    """Messages echoed before ``marker`` came back, or before the socket closed (code)."""
    messages: list[str] = []
    async with asyncio.timeout(TIMEOUT):
        while True:
            msg = await ws.receive()
            if msg.type is WSMsgType.CLOSE:
                return messages, int(msg.data)
            if msg.type in (WSMsgType.CLOSED, WSMsgType.CLOSING):
                return messages, ws.close_code
            assert msg.type is WSMsgType.TEXT, msg
            if raw:
                batch = [msg.data]
            elif msg.data == "h":
                continue
            else:
                assert msg.data.startswith("a["), msg.data
                batch = json.loads(msg.data[1:])
            for text in batch:
                if text == marker:
                    return messages, None
                messages.append(text)


def size_of(frame: str | bytes) -> int:
    return len(frame if isinstance(frame, bytes) else frame.encode())


async def check_websocket(rig: Rig, frame: str | bytes, *, raw: bool) -> None:
    session_id = rig.next_id("ws")
    path = "/sockjs/websocket" if raw else f"/sockjs/000/{session_id}/websocket"
    marker = f"after {session_id}"
    async with rig.client.ws_connect(path, max_msg_size=0) as ws:
        if not raw:
            assert (await ws.receive(timeout=TIMEOUT)).data == "o"
        if isinstance(frame, bytes):
            await ws.send_bytes(frame)
        else:
            await ws.send_str(frame)
        with contextlib.suppress(ConnectionError):  # the server may have closed already
            await ws.send_str(marker if raw else json.dumps([marker]))
        echoed, code = await read_until_marker_or_close(ws, marker, raw)
    size = size_of(frame)
    if size > MAX or (size == MAX and code == 1009):  # (exactly MAX: see test_capacity)
        assert (echoed, code) == ([], 1009)
    elif isinstance(frame, bytes):
        assert (echoed, code) == ([], 1003)
    elif raw:
        assert (echoed, code) == ([frame], None)
    elif frame == "":
        assert (echoed, code) == ([], None)  # empty frames are ignored
    else:
        decoded = decode_oracle(frame, allow_single=True)
        if isinstance(decoded, str):
            assert (echoed, code) == ([], 1007)

            def told() -> bool:
                return any(
                    event[1].id == session_id and event[2:] == (1007, decoded)
                    for event in rig.handler.of_kind("close")
                )

            await rig.handler.wait_until(told)
        else:
            assert (echoed, code) == (decoded, None)
    await rig.xhr_witness_echoes()


@fuzz(250)
@given(frame=frames)
async def test_sockjs_websocket_frames(rig: Rig, frame: str | bytes) -> None:
    SENT["sockjs websocket frame"] += 1
    await check_websocket(rig, frame, raw=False)


@fuzz(200)
@given(frame=st.one_of(st.text(max_size=300), json_texts, st.binary(max_size=200), frames))
async def test_raw_websocket_frames(rig: Rig, frame: str | bytes) -> None:
    SENT["raw websocket frame"] += 1
    await check_websocket(rig, frame, raw=True)


# -- query strings ----------------------------------------------------------------------------

callbacks = st.one_of(
    st.from_regex(_CALLBACK, fullmatch=True),
    st.text(max_size=40),
    st.just(""),
    st.sampled_from(["cb</script>", "alert(1)", "a" * 33, "x;y", "a-b", "\u0430"]),
)
params = st.lists(
    st.tuples(st.sampled_from(["c", "callback", "d", "t"]) | st.text(max_size=8), callbacks),
    max_size=4,
)


@fuzz(200)
@given(
    transport=st.sampled_from(["jsonp", "htmlfile"]),
    query=st.one_of(params.map(urlencode), st.text(max_size=60).map(lambda t: quote(t, safe="=&"))),
)
async def test_callback_query_strings(rig: Rig, transport: str, query: str) -> None:
    SENT[f"{transport} query"] += 1
    session_id = rig.next_id("q")
    parsed = dict(reversed(parse_qsl(query, keep_blank_values=True)))  # first value wins
    callback = parsed.get("c") or parsed.get("callback") or ""
    async with asyncio.timeout(TIMEOUT):
        response = await rig.client.get(f"/sockjs/000/{session_id}/{transport}?{query}")
        status = response.status
        if status == 200:
            head = await response.content.readany()
            response.close()
        else:
            text = await response.text()
    assert status in (200, 500)
    if status == 500:
        assert text in ('"callback" parameter required', 'invalid "callback" parameter')
        assert not _CALLBACK.fullmatch(callback) or "%" in query  # raw queries may differ
        assert rig.endpoint.registry.get(session_id) is None
    else:
        served = re.search(rb'/\*\*/([A-Za-z0-9_.]{1,32})\("o"\);\r\n$', head) or re.search(
            rb"c = parent\.([A-Za-z0-9_.]{1,32});", head
        )
        assert served is not None, head[:200]
        assert served.group(1).decode() == callback or "%" in query
        assert b"<" not in served.group(1)
    await rig.ws_witness_echoes()


# -- session ids ------------------------------------------------------------------------------


@fuzz(250)
@given(
    server_id=st.one_of(st.just("000"), st.text(max_size=6)),
    session_text=st.one_of(st.text(max_size=140), st.text(alphabet="ab .%/", max_size=8)),
    websocket=st.booleans(),
)
async def test_session_ids_in_the_path(
    rig: Rig, server_id: str, session_text: str, websocket: bool
) -> None:
    SENT["session id"] += 1
    session_id = rig.next_id("s") + "-" + session_text
    path = f"/sockjs/{quote(server_id, safe='')}/{quote(session_id, safe='')}/"
    valid = bool(_ID.fullmatch(session_id) and _ID.fullmatch(server_id))
    if server_id in (".", ".."):
        valid = False  # a dot segment is not an id (and is normalised away)
    async with asyncio.timeout(TIMEOUT):
        if websocket:
            from aiohttp import WSServerHandshakeError

            try:
                async with rig.client.ws_connect(path + "websocket") as ws:
                    assert (await ws.receive()).data == "o"
                    status = 101
            except WSServerHandshakeError as refused:
                status = refused.status
            assert status == (101 if valid else 404), (server_id, session_id)
        else:
            response = await rig.client.post(path + "xhr")
            assert (response.status, await response.text()) == (
                (200, "o\n") if valid else (404, "404: Not Found")
            ), (server_id, session_id)
            assert (rig.endpoint.registry.get(session_id) is not None) == valid
    await rig.ws_witness_echoes()
