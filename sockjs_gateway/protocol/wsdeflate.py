"""permessage-deflate (RFC 7692) for the server side, without I/O.

:func:`negotiate` reads the client's ``Sec-WebSocket-Extensions`` offers and returns the
server's answer with the :class:`Deflate` context for the connection, or None when no
offer can be accepted (the connection then runs uncompressed). :meth:`Deflate.inflate`
and :meth:`Deflate.deflate` turn one message's payload from and into its wire form.

Inflating is bounded: it never produces more than the caller's limit, however well the
input compresses, so a deflate bomb costs at most ``max_message_bytes``.
"""

from __future__ import annotations

import zlib

__all__ = ["Deflate", "negotiate"]

_TAIL = b"\x00\x00\xff\xff"  # RFC 7692 7.2.1: stripped by the sender, put back to inflate
_LEVEL = 6  # zlib's default: ratio and speed as aiohttp and browsers use


class Deflate:
    """One connection's compression contexts (see the module docstring)."""

    __slots__ = ("_server_takeover", "_client_takeover", "_bits", "_deflater", "_inflater")

    def __init__(self, *, server_takeover: bool, client_takeover: bool, server_bits: int) -> None:
        self._server_takeover = server_takeover
        self._client_takeover = client_takeover
        self._bits = server_bits
        self._deflater: zlib._Compress | None = None
        self._inflater: zlib._Decompress | None = None

    def inflate(self, payload: bytes | bytearray, limit: int) -> bytes | None:
        """The message a compressed payload carries, or None if it is over ``limit``
        bytes.

        Raises:
            ValueError: the payload is not deflate data.
        """
        inflater = self._inflater
        if inflater is None:
            inflater = zlib.decompressobj(-15)  # any client window fits in 15 bits
            if self._client_takeover:
                self._inflater = inflater
        try:
            data = inflater.decompress(payload + _TAIL, limit + 1)
        except zlib.error as error:
            raise ValueError(str(error)) from None
        if len(data) > limit or inflater.unconsumed_tail:
            return None
        return data

    def deflate(self, payload: bytes) -> bytes:
        """The wire form of one message (the caller sets RSV1 on its first frame)."""
        deflater = self._deflater
        if deflater is None:
            deflater = zlib.compressobj(_LEVEL, zlib.DEFLATED, -self._bits)
            if self._server_takeover:
                self._deflater = deflater
        data = deflater.compress(payload) + deflater.flush(zlib.Z_SYNC_FLUSH)
        return data[:-4] if data.endswith(_TAIL) else data


def _bits(value: str | None) -> int | None:
    if value is None or not value.isdigit():
        return None
    bits = int(value)
    # zlib cannot deflate with an 8-bit window, so an offer that demands one is declined.
    return bits if 9 <= bits <= 15 else None


def _accept(params: list[str]) -> tuple[str, Deflate] | None:
    """The answer to one offer and its context, or None to decline it."""
    seen: dict[str, str | None] = {}
    for param in params:
        key, _, raw = param.partition("=")
        key = key.strip().lower()
        if key in seen:
            return None  # RFC 7692 7: a parameter given twice makes the offer invalid
        seen[key] = raw.strip().strip('"') if raw else None
    answer = ["permessage-deflate"]
    server_bits = 15
    for name, value in seen.items():
        if name in ("server_no_context_takeover", "client_no_context_takeover"):
            if value is not None:
                return None
            answer.append(name)
        elif name == "server_max_window_bits":
            bits = _bits(value)
            if bits is None:
                return None
            server_bits = bits
            answer.append(f"{name}={bits}")
        elif name == "client_max_window_bits":
            if value is not None and _bits(value) is None:
                return None  # the client's window may be anything: we inflate with 15
        else:
            return None
    context = Deflate(
        server_takeover="server_no_context_takeover" not in seen,
        client_takeover="client_no_context_takeover" not in seen,
        server_bits=server_bits,
    )
    return "; ".join(answer), context


def negotiate(offers: str) -> tuple[str, Deflate] | None:
    """The ``Sec-WebSocket-Extensions`` answer and the context for the first acceptable
    permessage-deflate offer in ``offers`` (RFC 7692 5 and 7.1), or None."""
    for offer in offers.split(","):
        name, *params = offer.split(";")
        if name.strip().lower() != "permessage-deflate":
            continue
        accepted = _accept([p for p in params if p.strip()])
        if accepted is not None:
            return accepted
    return None
