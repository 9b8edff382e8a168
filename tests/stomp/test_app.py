"""``StompHandler`` on a real endpoint, spoken to over the raw ``/websocket`` route (one
STOMP frame per text message): the SockJS glue, its timers and its teardown."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import ClientWebSocketResponse, WSMsgType

from sockjs_gateway import Session
from sockjs_gateway.stomp import Broker, Frame, FrameDecoder, StompHandler, StompOptions
from tests.conftest import MakeEndpoint
from tests.stomp.helpers import CONNECT, wire

RAW_URL = "/sockjs/websocket"


class Wire:
    """A raw WebSocket carrying STOMP text, read frame by frame."""

    def __init__(self, ws: ClientWebSocketResponse[Any]) -> None:
        self.ws = ws
        self.heartbeats = 0
        self._decoder = FrameDecoder()

    async def frame(self, timeout: float = 5.0) -> Frame:
        while True:
            if (frame := self._decoder.next_frame()) is not None:
                return frame
            msg = await self.ws.receive(timeout=timeout)
            assert msg.type is WSMsgType.TEXT, msg
            if msg.data == "\n":
                self.heartbeats += 1
            self._decoder.receive_data(msg.data)

    async def closed(self, timeout: float = 5.0) -> int | None:
        msg = await self.ws.receive(timeout=timeout)
        assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING), msg
        return self.ws.close_code


class ObservedHandler(StompHandler):
    """A StompHandler that says when a session's teardown has run."""

    def __init__(self, broker: Broker | None = None) -> None:
        super().__init__(broker)
        self.closed = asyncio.Event()

    async def on_close(self, session: Session, code: int, reason: str) -> None:
        await super().on_close(session, code, reason)
        self.closed.set()

    async def torn_down(self) -> None:
        await asyncio.wait_for(self.closed.wait(), 5.0)
        assert (self.connections, self.broker.clients) == (0, 0)


async def test_connect_subscribe_send_and_receive(make_endpoint: MakeEndpoint) -> None:
    client, _ = await make_endpoint(StompHandler())
    async with client.ws_connect(RAW_URL) as ws:
        peer = Wire(ws)
        await ws.send_str(CONNECT)
        connected = await peer.frame()
        assert (connected.command, connected.get("version")) == ("CONNECTED", "1.2")
        await ws.send_str(wire("SUBSCRIBE", {"id": "0", "destination": "/topic/t"}))
        await ws.send_str(wire("SEND", {"destination": "/topic/t", "receipt": "r"}, "hi"))
        frames = [await peer.frame(), await peer.frame()]
        assert sorted(f.command for f in frames) == ["MESSAGE", "RECEIPT"]


async def test_disconnect_receipt_then_the_session_closes(make_endpoint: MakeEndpoint) -> None:
    handler = ObservedHandler()
    client, _ = await make_endpoint(handler)
    async with client.ws_connect(RAW_URL) as ws:
        peer = Wire(ws)
        await ws.send_str(CONNECT)
        await peer.frame()
        await ws.send_str(wire("DISCONNECT", {"receipt": "bye"}))
        receipt = await peer.frame()
        assert (receipt.command, receipt.get("receipt-id")) == ("RECEIPT", "bye")
        assert await peer.closed() == 1000
    await handler.torn_down()


async def test_error_closes_the_session(make_endpoint: MakeEndpoint) -> None:
    client, _ = await make_endpoint(StompHandler())
    async with client.ws_connect(RAW_URL) as ws:
        peer = Wire(ws)
        await ws.send_str(wire("SEND", {"destination": "/topic/t"}))
        error = await peer.frame()
        assert error.get("message") == "expected CONNECT or STOMP, got SEND"
        assert await peer.closed() == 1002


async def test_connect_timeout_uses_a_loop_timer(make_endpoint: MakeEndpoint) -> None:
    broker = Broker(StompOptions(connect_timeout=0.2))
    client, _ = await make_endpoint(StompHandler(broker))
    async with client.ws_connect(RAW_URL) as ws:
        peer = Wire(ws)
        error = await peer.frame()
        assert error.get("message") == "not connected within 0.2 s"
        assert await peer.closed() == 1002


async def test_server_heart_beats_flow_on_an_idle_connection(make_endpoint: MakeEndpoint) -> None:
    broker = Broker(StompOptions(heartbeat_send_ms=50, heartbeat_receive_ms=0))
    client, _ = await make_endpoint(StompHandler(broker))
    async with client.ws_connect(RAW_URL) as ws:
        peer = Wire(ws)
        await ws.send_str(wire("CONNECT", {"accept-version": "1.2", "heart-beat": "0,50"}))
        await peer.frame()
        for _ in range(3):
            msg = await ws.receive(timeout=5)
            assert (msg.type, msg.data) == (WSMsgType.TEXT, "\n")


async def test_dropped_connection_requeues_and_stops_its_timer(make_endpoint: MakeEndpoint) -> None:
    handler = ObservedHandler(Broker(StompOptions(heartbeat_send_ms=50)))
    client, _ = await make_endpoint(handler)
    async with client.ws_connect(RAW_URL) as ws:
        peer = Wire(ws)
        await ws.send_str(wire("CONNECT", {"accept-version": "1.2", "heart-beat": "0,50"}))
        await peer.frame()
        await ws.send_str(
            wire("SUBSCRIBE", {"id": "0", "destination": "/queue/q", "ack": "client"})
            + wire("SEND", {"destination": "/queue/q"}, "unacked")
        )
        assert (await peer.frame()).text == "unacked"
    # The socket is gone without DISCONNECT: the message goes to the next consumer.
    await handler.torn_down()
    async with client.ws_connect(RAW_URL) as ws:
        peer = Wire(ws)
        await ws.send_str(CONNECT + wire("SUBSCRIBE", {"id": "0", "destination": "/queue/q"}))
        await peer.frame()
        again = await peer.frame()
        assert (again.text, again.get("redelivered")) == ("unacked", "true")
