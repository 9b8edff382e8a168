"""The in-memory hub with its reads held until a test lets them go, as a Redis round trip
holds them: what is published meanwhile crosses the seam between replay and live."""

from __future__ import annotations

import asyncio

from sockjs_gateway.history import Channels, Replay, Start


class HeldReads(Channels):
    """:class:`Channels` whose :meth:`read` waits for :attr:`release`."""

    def __init__(self) -> None:
        super().__init__()
        self.reading = asyncio.Event()
        self.release = asyncio.Event()

    async def read(self, channel: str, start: Start) -> Replay[str]:
        self.reading.set()
        await self.release.wait()
        return await super().read(channel, start)
