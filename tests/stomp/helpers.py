"""A STOMP machine driven by plain calls with a fake clock, seen from the client's side."""

from __future__ import annotations

from collections.abc import Mapping

from sockjs_gateway.stomp import (
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
        events = []
        while (event := self.machine.next_event()) is not None:
            events.append(event)
        return events

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
