"""STOMP frames: one immutable :class:`Frame`, one writer (:func:`encode`) and one
incremental reader (:class:`FrameDecoder`).

Spec: https://stomp.github.io/stomp-specification-1.2.html ("STOMP Frames", "Value
Encoding", "Repeated Header Entries", "Size Limits", "Heart-beating").

Choices worth knowing:

* Bodies are ``bytes`` and lengths are counted in bytes, as the spec does, so a
  ``content-length`` body may hold NUL. Text input (what SockJS delivers) is UTF-8 encoded
  first; command and headers must be valid UTF-8.
* Header escapes depend on the version (1.0 has none, 1.1 has ``\\n \\c \\\\``, 1.2 adds
  ``\\r``) and never apply to CONNECT and CONNECTED. The decoder's :attr:`version` can
  change between frames, which is why it hands out one frame at a time
  (:meth:`FrameDecoder.next_frame`): the CONNECT frame decides the version of the rest.
* A :class:`Frame` keeps every header in wire order, repeats included, so encoding and
  decoding are exact inverses; :meth:`Frame.get` returns the first (the one that wins).
* Bytes between frames may only be EOLs (LF or CRLF): those are heart-beats.
* Limits are checked while bytes arrive, so a peer can never make us buffer more than
  ``max_frame_bytes`` plus one read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..exceptions import LocalProtocolError
from .errors import FrameError, LimitExceeded, StompError

__all__ = [
    "Frame",
    "FrameLimits",
    "FrameDecoder",
    "encode",
    "encode_text",
    "CLIENT_COMMANDS",
    "SERVER_COMMANDS",
    "BODY_COMMANDS",
    "VERSIONS",
]

#: Versions this codec speaks, oldest first.
VERSIONS = ("1.0", "1.1", "1.2")
CLIENT_COMMANDS = frozenset(
    {"CONNECT", "STOMP", "SEND", "SUBSCRIBE", "UNSUBSCRIBE", "ACK", "NACK"}
    | {"BEGIN", "COMMIT", "ABORT", "DISCONNECT"}
)
SERVER_COMMANDS = frozenset({"CONNECTED", "MESSAGE", "RECEIPT", "ERROR"})
#: The only commands that may carry a body (STOMP 1.2, "Body").
BODY_COMMANDS = frozenset({"SEND", "MESSAGE", "ERROR"})
_COMMANDS = CLIENT_COMMANDS | SERVER_COMMANDS
_UNESCAPED = frozenset({"CONNECT", "CONNECTED"})  # their headers are never escaped

_ESCAPES = {
    "1.0": {},
    "1.1": {"\\": "\\\\", "\n": "\\n", ":": "\\c"},
    "1.2": {"\\": "\\\\", "\r": "\\r", "\n": "\\n", ":": "\\c"},
}
_UNESCAPES = {v: {code[1]: char for char, code in table.items()} for v, table in _ESCAPES.items()}
_ESCAPE_SEQUENCE = re.compile(r"\\(.?)", re.DOTALL)
_DIGITS = re.compile(rb"[0-9]{1,10}")
_Head = tuple[str, tuple[tuple[str, str], ...], int | None]  # command, headers, length


@dataclass(frozen=True, slots=True)
class FrameLimits:
    """How much one frame may hold; crossing a limit raises :class:`LimitExceeded`."""

    #: Bytes of a whole frame: command, headers and body (NUL and EOLs excluded).
    max_frame_bytes: int = 64 * 1024
    #: Header lines per frame, repeats included.
    max_headers: int = 64
    #: Bytes of one header line (name, colon and value, escaped) or of the command line.
    max_header_bytes: int = 8 * 1024


@dataclass(frozen=True, slots=True)
class Frame:
    """One STOMP frame. ``headers`` keeps wire order and repeats; the first one wins."""

    command: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    @classmethod
    def build(
        cls,
        command: str,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        body: bytes | str = b"",
    ) -> Frame:
        """A frame with ``content-length`` set whenever there is a body (the spec's SHOULD,
        and what lets a body hold NUL)."""
        pairs = list(headers.items() if isinstance(headers, Mapping) else headers)
        data = body.encode() if isinstance(body, str) else body
        pairs = [(k, v) for k, v in pairs if k != "content-length"]
        if data:
            pairs.append(("content-length", str(len(data))))
        return cls(command, tuple(pairs), data)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name`` (STOMP 1.2, "Repeated Header Entries")."""
        for key, value in self.headers:
            if key == name:
                return value
        return default

    @property
    def text(self) -> str:
        """The body as text (UTF-8; undecodable bytes become U+FFFD)."""
        return self.body.decode("utf-8", errors="replace")


def _escape(text: str, table: Mapping[str, str]) -> str:
    return "".join(table.get(char, char) for char in text) if table else text


def _check_raw(text: str, what: str) -> None:
    if "\n" in text or text.endswith("\r"):
        raise LocalProtocolError(f"{what} {text!r} cannot be sent unescaped")


def encode(frame: Frame, version: str = "1.2") -> bytes:
    """The wire bytes of ``frame`` for a connection speaking ``version``.

    Raises:
        LocalProtocolError: the frame cannot be represented (unknown command, a body on a
            command that must not have one, a NUL in a body without ``content-length``, a
            ``content-length`` that does not match, or a header this version cannot escape).
    """
    if frame.command not in _COMMANDS:
        raise LocalProtocolError(f"unknown STOMP command {frame.command!r}")
    if frame.body and frame.command not in BODY_COMMANDS:
        raise LocalProtocolError(f"{frame.command} frames cannot have a body")
    length = frame.get("content-length")
    if length is None and b"\0" in frame.body:
        raise LocalProtocolError("a body holding NUL needs a content-length header")
    if length is not None and length != str(len(frame.body)):
        raise LocalProtocolError(f"content-length {length} but the body has {len(frame.body)}")
    table = {} if frame.command in _UNESCAPED else _ESCAPES[version]
    lines = [frame.command]
    for name, value in frame.headers:
        if not name:
            raise LocalProtocolError("header names cannot be empty")
        name, value = _escape(name, table), _escape(value, table)
        _check_raw(name, "header name")
        _check_raw(value, "header value")
        if "\0" in name or "\0" in value:
            raise LocalProtocolError("headers cannot hold NUL")
        if ":" in name:
            raise LocalProtocolError(f"header name {name!r} cannot hold ':' here")
        lines.append(f"{name}:{value}")
    try:
        head = ("\n".join(lines) + "\n\n").encode()
    except UnicodeEncodeError:
        raise LocalProtocolError("headers cannot hold lone surrogates") from None
    return head + frame.body + b"\0"


def encode_text(frame: Frame, version: str = "1.2") -> str:
    """:func:`encode` as text, for carriers of text such as SockJS.

    Raises:
        LocalProtocolError: as :func:`encode`, or the body is not UTF-8.
    """
    try:
        return encode(frame, version).decode("utf-8")
    except UnicodeDecodeError:
        raise LocalProtocolError("SockJS carries text: frame bodies must be UTF-8") from None


def _unescape(raw: str, table: Mapping[str, str]) -> str:
    if "\\" not in raw or not table:
        return raw

    def one(match: re.Match[str]) -> str:
        char = table.get(match.group(1))
        if char is None:
            raise FrameError(f"invalid escape sequence {match.group(0)!r} in a header")
        return char

    return _ESCAPE_SEQUENCE.sub(one, raw)


def _utf8(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError(f"{what} is not valid UTF-8") from None


class FrameDecoder:
    """Turns a byte stream, in chunks of any size, into frames.

    Feed bytes with :meth:`receive_data`, then take frames with :meth:`next_frame` until it
    returns None (or use :meth:`feed` for both). A malformed stream raises
    :class:`FrameError`, a crossed limit :class:`LimitExceeded` (both :class:`StompError`);
    the decoder is then broken and raises the same error on every later call, since a STOMP
    stream cannot resync.
    """

    def __init__(self, limits: FrameLimits | None = None, *, version: str = "1.2") -> None:
        self.limits = limits or FrameLimits()
        #: The version whose header escapes apply; may change between frames.
        self.version = version
        #: EOLs seen between frames (heart-beats), for the curious.
        self.heartbeats = 0
        self._buffer = bytearray()
        self._error: StompError | None = None
        self._reset()

    def _reset(self) -> None:
        self._lines: list[bytes] = []  # command and header lines of the current frame
        self._scan = 0  # where to look for the next LF (or NUL) in the buffer
        self._head: _Head | None = None
        self._head_bytes = 0
        self._nul_scan = 0  # where the search for a body's NUL goes on

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a returned frame."""
        return len(self._buffer)

    def receive_data(self, data: bytes | str) -> None:
        """Append ``data`` (text is encoded as UTF-8).

        Raises:
            FrameError: ``data`` is text holding a lone surrogate (not encodable).
        """
        if isinstance(data, str):
            try:
                data = data.encode("utf-8")
            except UnicodeEncodeError:
                self._error = FrameError("the text holds a lone surrogate")
                raise self._error from None
        self._buffer += data

    def feed(self, data: bytes | str) -> list[Frame]:
        """:meth:`receive_data`, then every complete frame."""
        self.receive_data(data)
        frames = []
        while (frame := self.next_frame()) is not None:
            frames.append(frame)
        return frames

    def next_frame(self) -> Frame | None:
        """The next complete frame, or None until more bytes arrive.

        Raises:
            FrameError: the stream is malformed.
            LimitExceeded: a frame crossed one of :attr:`limits`.
        """
        if self._error is not None:
            raise self._error
        try:
            return self._next()
        except StompError as error:  # FrameError or LimitExceeded
            self._error = error
            raise

    def _next(self) -> Frame | None:
        head = self._head
        if head is None:
            if not self._lines and not self._skip_heartbeats():
                return None
            head = self._head = self._read_head()
            if head is None:
                return None
        return self._read_body(*head)

    def _skip_heartbeats(self) -> bool:
        buffer = self._buffer
        start = 0
        while start < len(buffer):
            if buffer[start] == 0x0A:
                start += 1
            elif buffer[start] == 0x0D:
                if start + 1 == len(buffer):
                    break
                if buffer[start + 1] != 0x0A:
                    raise FrameError("a CR between frames must start a CRLF heart-beat")
                start += 2
            else:
                break
            self.heartbeats += 1
        del buffer[:start]
        return bool(buffer) and buffer[0] != 0x0D

    def _read_head(self) -> _Head | None:
        buffer, limits = self._buffer, self.limits
        while True:
            line_start = self._scan
            end = buffer.find(b"\n", line_start)
            if end < 0:
                if len(buffer) - line_start > limits.max_header_bytes + 1:
                    raise self._line_too_long()
                return None
            line = bytes(buffer[line_start : end - 1 if buffer[end - 1 : end] == b"\r" else end])
            self._scan = end + 1
            if not line:
                if not self._lines:
                    raise FrameError("a frame must start with a command")
                break
            if len(line) > limits.max_header_bytes:
                raise self._line_too_long()
            self._lines.append(line)
            if len(self._lines) > limits.max_headers + 1:
                raise LimitExceeded(f"too many headers (limit {limits.max_headers})")
            self._head_bytes += len(line)
            if self._head_bytes > limits.max_frame_bytes:
                raise self._frame_too_large()
        return self._parse_head(self._lines)

    def _parse_head(self, lines: list[bytes]) -> _Head:
        command = _utf8(lines[0], "the command")
        if command not in _COMMANDS:
            raise FrameError(f"unknown command {command[:32]!r}")
        table = {} if command in _UNESCAPED else _UNESCAPES[self.version]
        headers = []
        length: int | None = None
        for raw in lines[1:]:
            name, colon, value = raw.partition(b":")
            if not colon or not name or b"\0" in raw:
                raise FrameError(f"malformed header line {raw[:64]!r} in {command}")
            if name == b"content-length" and length is None:
                if _DIGITS.fullmatch(value) is None:
                    raise FrameError(f"invalid content-length {value[:32]!r}")
                length = int(value)
                if length > self.limits.max_frame_bytes:
                    raise self._frame_too_large()
            key, text = _utf8(name, "a header name"), _utf8(value, "a header value")
            headers.append((_unescape(key, table), _unescape(text, table)))
        return command, tuple(headers), length

    def _read_body(
        self, command: str, headers: tuple[tuple[str, str], ...], length: int | None
    ) -> Frame | None:
        buffer, start = self._buffer, self._scan
        if length is not None:
            self._check_size(length)
            end = start + length
            if len(buffer) <= end:
                return None
            if buffer[end] != 0:
                raise FrameError(f"{command} body is not followed by NUL after content-length")
        else:
            end = buffer.find(b"\0", max(start, self._nul_scan))
            if end < 0:
                self._nul_scan = len(buffer)
                self._check_size(len(buffer) - start)
                return None
        self._check_size(end - start)
        body = bytes(buffer[start:end])
        if body and command not in BODY_COMMANDS:
            raise FrameError(f"{command} frames must not have a body")
        del buffer[: end + 1]
        self._reset()
        return Frame(command, headers, body)

    def _check_size(self, body_bytes: int) -> None:
        if self._head_bytes + body_bytes > self.limits.max_frame_bytes:
            raise self._frame_too_large()

    def _frame_too_large(self) -> LimitExceeded:
        return LimitExceeded(f"frame too large (limit {self.limits.max_frame_bytes} bytes)")

    def _line_too_long(self) -> LimitExceeded:
        return LimitExceeded(f"header too long (limit {self.limits.max_header_bytes} bytes)")
