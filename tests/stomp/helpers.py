"""A STOMP machine driven by plain calls with a fake clock, seen from the client's side."""

from __future__ import annotations

from collections.abc import Mapping

from sockjs_gateway.handler import ConnectionInfo
from sockjs_gateway.stomp import (
    Broker,
    Event,
    Frame,
    FrameDecoder,
    StompMachine,
    StompOptions,
    encode_text,
)


def wire(command: str, headers: Mapping[str, str] | None = None, body: str = "") -> str:
    """A client frame's text, as stompjs would put it in one SockJS message."""
    return encode_text(Frame.build(command, headers or {}, body))


CONNECT = wire("CONNECT", {"accept-version": "1.2", "heart-beat": "0,0"})


class Peer:
    """One machine plus the client's view of it: what it sent back, decoded."""

    def __init__(self, options: StompOptions | None = None, now: float = 0.0) -> None:
        self.now = now
        self.machine = StompMachine(now, "s-1", options)
        self.heartbeats = 0
        self._decoder = FrameDecoder()

    def send(self, data: str, now: float | None = None) -> list[Event]:
        """Feed ``data`` at ``now`` and return every event it yields (unanswered)."""
        if now is not None:
            self.now = now
        self.machine.receive_data(data, self.now)
        return list(self.machine.events_received())

    def frames(self) -> list[Frame]:
        """Frames the machine has for the client now (heart-beats are counted apart)."""
        out = []
        for text in self.machine.data_to_send(self.now):
            if text == "\n":
                self.heartbeats += 1
                continue
            out += self._decoder.feed(text)
            if out and out[-1].command == "CONNECTED":
                self._decoder.version = out[-1].get("version") or "1.0"
        return out

    def frame(self) -> Frame:
        """The one frame the machine has for the client now."""
        [only] = self.frames()
        return only

    def tick(self, now: float) -> None:
        self.now = now
        self.machine.timer_fired(now)


class BrokerPeer(Peer):
    """A :class:`Peer` attached to a broker, handled the way ``StompHandler`` does it."""

    def __init__(self, broker: Broker, info: ConnectionInfo | None = None) -> None:
        super().__init__(broker.options)
        self.broker = broker
        self.client = broker.attach(self.machine, lambda: None, info)
        self.inbox: list[Frame] = []

    async def do(self, data: str) -> None:
        """Feed ``data`` and let the broker handle every event."""
        for event in self.send(data):
            await self.broker.handle(self.client, event)

    async def connect(self, **headers: str) -> Frame:
        await self.do(wire("CONNECT", {"accept-version": "1.2", **headers}))
        [answer] = self.take()
        return answer

    async def subscribe(self, destination: str, sub_id: str = "0", ack: str = "auto") -> None:
        await self.do(wire("SUBSCRIBE", {"id": sub_id, "destination": destination, "ack": ack}))

    async def publish(self, destination: str, body: str, **headers: str) -> None:
        await self.do(wire("SEND", {"destination": destination, **headers}, body))

    def take(self, command: str | None = None) -> list[Frame]:
        """Frames received since the last call (of ``command`` only, if given)."""
        self.inbox += self.frames()
        taken: list[Frame] = []
        kept: list[Frame] = []
        for frame in self.inbox:
            (taken if command is None or frame.command == command else kept).append(frame)
        self.inbox = kept
        return taken

    def bodies(self) -> list[str]:
        return [frame.text for frame in self.take("MESSAGE")]

    def error(self) -> str | None:
        errors = self.take("ERROR")
        return errors[0].get("message") if errors else None
