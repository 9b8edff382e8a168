"""STOMP /topic recovery with real machines on an in-memory wire: x-stream-offset from
every kind of point, offsets and epochs on every MESSAGE, and the recovered flag."""

from __future__ import annotations

import pytest

from sockjs_gateway.history import Channels, HistoryLimits, Mode, Start
from sockjs_gateway.stomp import Broker, Frame, Payload
from tests.stomp.helpers import BrokerPeer, wire


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


async def connected(broker: Broker) -> BrokerPeer:
    peer = BrokerPeer(broker)
    assert (await peer.connect()).command == "CONNECTED"
    return peer


async def resume(peer: BrokerPeer, destination: str, sub: str, **headers: str) -> None:
    await peer.do(wire("SUBSCRIBE", {"destination": destination, "id": sub, **headers}))


def positions(frames: list[Frame]) -> list[tuple[str, str | None]]:
    return [(f.text, f.get("x-stream-offset")) for f in frames]


@pytest.mark.parametrize("kept", ["store", "hub"])
async def test_messages_carry_offset_and_epoch_and_resume_has_no_gap_or_duplicate(
    kept: str,
) -> None:
    broker = Broker(history=HistoryLimits() if kept == "store" else Channels())
    reader, sender = await connected(broker), await connected(broker)
    await reader.subscribe("/topic/t", "s1")
    for text in ("m1", "m2", "m3"):
        await sender.publish("/topic/t", text)
    seen = reader.take("MESSAGE")
    assert positions(seen) == [("m1", "1"), ("m2", "2"), ("m3", "3")]
    epoch = seen[0].get("x-stream-epoch")
    assert epoch
    assert {f.get("x-stream-epoch") for f in seen} == {epoch}
    assert seen[0].get("x-stream-recovered") is None  # a plain subscription
    await reader.do(wire("DISCONNECT"))
    for text in ("m4", "m5"):
        await sender.publish("/topic/t", text)
    again = await connected(broker)
    await resume(
        again, "/topic/t", "s2", **{"x-stream-offset": "offset=4", "x-stream-epoch": epoch}
    )
    await sender.publish("/topic/t", "m6")
    frames = again.take("MESSAGE")
    assert positions(frames) == [("m4", "4"), ("m5", "5"), ("m6", "6")]
    assert frames[0].get("x-stream-recovered") == "true"
    assert frames[1].get("x-stream-recovered") is None


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        ("first", ["m1", "m2", "m3", "live"]),
        ("last", ["m3", "live"]),
        ("next", ["live"]),
        ("offset=2", ["m2", "m3", "live"]),
        ("timestamp=1700000001", ["m2", "m3", "live"]),
    ],
)
async def test_every_starting_point(offset: str, expected: list[str]) -> None:
    clock = Clock()
    broker = Broker(history=HistoryLimits(), clock=clock)
    sender = await connected(broker)
    for text in ("m1", "m2", "m3"):
        await sender.publish("/topic/t", text)
        clock.now += 1
    reader = await connected(broker)
    await resume(reader, "/topic/t", "s", **{"x-stream-offset": offset, "receipt": "r"})
    [receipt] = reader.take("RECEIPT")
    assert receipt.get("x-stream-recovered") == "true"
    await sender.publish("/topic/t", "live")
    assert reader.bodies() == expected


async def test_a_point_older_than_the_history_is_reported_and_everything_replayed() -> None:
    broker = Broker(history=HistoryLimits(max_messages=2))
    sender = await connected(broker)
    for text in ("m1", "m2", "m3", "m4"):
        await sender.publish("/topic/t", text)
    reader = await connected(broker)
    await resume(reader, "/topic/t", "s", **{"x-stream-offset": "offset=2", "receipt": "r"})
    [receipt] = reader.take("RECEIPT")
    frames = reader.take("MESSAGE")
    assert positions(frames) == [("m3", "3"), ("m4", "4")]
    assert frames[0].get("x-stream-recovered") == "false"
    assert receipt.get("x-stream-recovered") == "false"


async def test_another_epoch_is_reported_on_the_first_live_message_when_nothing_is_kept() -> None:
    broker = Broker(history=HistoryLimits())
    reader = await connected(broker)
    headers = {"x-stream-offset": "offset=8", "x-stream-epoch": "gone1234", "receipt": "r"}
    await resume(reader, "/topic/t", "s", **headers)
    [receipt] = reader.take("RECEIPT")
    assert receipt.get("x-stream-recovered") == "false"
    broker.publish("/topic/t", "new")
    [frame] = reader.take("MESSAGE")
    assert (frame.text, frame.get("x-stream-offset"), frame.get("x-stream-recovered")) == (
        "new",
        "1",
        "false",
    )


async def test_a_send_cannot_forge_positions() -> None:
    broker = Broker(history=HistoryLimits())
    reader, sender = await connected(broker), await connected(broker)
    await reader.subscribe("/topic/t")
    await sender.publish("/topic/t", "x", **{"x-stream-offset": "99", "x-stream-epoch": "fake"})
    [frame] = reader.take("MESSAGE")
    assert [v for k, v in frame.headers if k == "x-stream-offset"] == ["1"]
    assert [v for k, v in frame.headers if k == "x-stream-epoch"] != ["fake"]


async def test_a_message_published_by_the_server_has_a_position_too() -> None:
    broker = Broker(history=HistoryLimits())
    broker.publish("/topic/t", "from the app")
    reader = await connected(broker)
    await resume(reader, "/topic/t", "s", **{"x-stream-offset": "first"})
    [frame] = reader.take("MESSAGE")
    assert (frame.text, frame.get("x-stream-offset")) == ("from the app", "1")
    stored = broker.history
    assert stored is not None
    replay = stored.read("/topic/t", Start(Mode.FIRST), 0)
    assert replay.entries[0].value == Payload((), b"from the app")


@pytest.mark.parametrize(
    ("destination", "offset", "broker_history", "message"),
    [
        ("/topic/t", "soon", True, "use first, last, next, offset=N or timestamp=T"),
        ("/queue/q", "first", True, "x-stream-offset needs a /topic/ destination"),
        ("/topic/t", "first", False, "x-stream-offset needs a /topic/ destination"),
    ],
)
async def test_refused_stream_offsets(
    destination: str, offset: str, broker_history: bool, message: str
) -> None:
    broker = Broker(history=HistoryLimits() if broker_history else None)
    reader = await connected(broker)
    await resume(reader, destination, "s", **{"x-stream-offset": offset})
    assert message in (reader.error() or "")


async def test_a_live_subscriber_is_told_when_its_topic_history_was_lost() -> None:
    broker = Broker(history=HistoryLimits(max_channels=1))
    reader = await connected(broker)
    await resume(reader, "/topic/a", "s", **{"x-stream-offset": "next"})
    broker.publish("/topic/a", "one")
    broker.publish("/topic/b", "evicts a")
    broker.publish("/topic/a", "two")
    first, second = reader.take("MESSAGE")
    assert first.get("x-stream-recovered") == "true"  # the subscription's first MESSAGE
    assert (second.text, second.get("x-stream-offset")) == ("two", "1")
    assert second.get("x-stream-recovered") == "false"
    assert second.get("x-stream-epoch") != first.get("x-stream-epoch")
