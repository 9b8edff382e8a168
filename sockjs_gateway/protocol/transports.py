"""The HTTP transports as data rows, not subclasses.

Every HTTP receiver runs the same loop (see :mod:`sockjs_gateway.server.http`); a
:class:`TransportSpec` row says how its responses differ: method, content type, prelude,
how each frame is wrapped, and whether it streams (a byte budget of ``response_limit``) or
polls (one frame per response).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "TransportSpec",
    "TRANSPORTS",
    "TRANSPORT_NAMES",
    "valid_callback",
    "js_string",
    "escape_eventsource",
]

_CALLBACK = re.compile(r"[A-Za-z0-9_.]{1,32}")
_JS_UNSAFE = re.compile("[<>&]")
_EVENTSOURCE_UNSAFE = re.compile("[%\r\n\x00]")
_dumps = json.JSONEncoder(ensure_ascii=False).encode


def valid_callback(name: str) -> bool:
    """A jsonp/htmlfile callback: ``[A-Za-z0-9_.]``, 1 to 32 characters (no XSS room)."""
    return _CALLBACK.fullmatch(name) is not None


def js_string(text: str) -> str:
    """A JavaScript string literal for ``text`` that is also safe inside ``<script>``.

    ``<``, ``>`` and ``&`` become ``\\u003c``, ``\\u003e`` and ``\\u0026``, so a message
    holding ``</script>`` cannot end the htmlfile page's script element.
    """
    return _JS_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", _dumps(text))


def escape_eventsource(text: str) -> str:
    """Percent-escape ``%``, CR, LF and NUL: sockjs-client runs ``decodeURI`` on the data."""
    return _EVENTSOURCE_UNSAFE.sub(lambda m: f"%{ord(m.group()):02X}", text)


_HTMLFILE_HEAD = """<!doctype html>
<html><head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
</head><body><h2>Don't panic!</h2>
  <script>
    document.domain = document.domain;
    var c = parent.%s;
    c.start();
    function p(d) {c.message(d);};
    window.onload = function() {c.stop();};
  </script>"""


def _htmlfile_prelude(callback: str) -> str:
    head = _HTMLFILE_HEAD % callback
    # Old IE renders nothing until it has 1 KiB of the document.
    return head + " " * max(0, 1024 - len(head) + 14) + "\r\n\r\n"


@dataclass(frozen=True, slots=True)
class TransportSpec:
    """How one HTTP receiving transport differs from the others."""

    name: str  #: the name sockjs-client and ``disabled_transports`` use
    suffix: str  #: the last URL segment
    method: str  #: the HTTP method that opens it
    content_type: str
    streaming: bool  #: many frames per response up to ``response_limit``; else one
    needs_callback: bool  #: takes a ``c`` query parameter (htmlfile, jsonp)
    has_send: bool  #: the client sends on ``<suffix>_send`` (xhr, jsonp)
    cors: bool  #: grants CORS and answers OPTIONS (what a cross-origin page calls directly)
    prelude: Callable[[str], str]  #: callback -> text written before any frame
    wrap: Callable[[str, str], str]  #: (frame, callback) -> text on the wire


def _no_prelude(callback: str) -> str:
    return ""


XHR = TransportSpec(
    name="xhr-polling",
    suffix="xhr",
    method="POST",
    content_type="application/javascript; charset=UTF-8",
    streaming=False,
    needs_callback=False,
    has_send=True,
    cors=True,
    prelude=_no_prelude,
    wrap=lambda frame, callback: frame + "\n",
)
XHR_STREAMING = TransportSpec(
    name="xhr-streaming",
    suffix="xhr_streaming",
    method="POST",
    content_type="application/javascript; charset=UTF-8",
    streaming=True,
    needs_callback=False,
    has_send=False,
    cors=True,
    # Some browsers show nothing of an XHR response until 2 KiB arrived.
    prelude=lambda callback: "h" * 2048 + "\n",
    wrap=lambda frame, callback: frame + "\n",
)
EVENTSOURCE = TransportSpec(
    name="eventsource",
    suffix="eventsource",
    method="GET",
    content_type="text/event-stream",
    streaming=True,
    needs_callback=False,
    has_send=False,
    cors=True,  # a cross-origin page may open an EventSource directly
    prelude=lambda callback: "\r\n",  # Opera needs a line before the first event
    wrap=lambda frame, callback: "data: " + escape_eventsource(frame) + "\r\n\r\n",
)
HTMLFILE = TransportSpec(
    name="htmlfile",
    suffix="htmlfile",
    method="GET",
    content_type="text/html; charset=UTF-8",
    streaming=True,
    needs_callback=True,
    has_send=False,
    cors=False,
    prelude=_htmlfile_prelude,
    wrap=lambda frame, callback: "<script>\np(" + js_string(frame) + ");\n</script>\r\n",
)
JSONP = TransportSpec(
    name="jsonp-polling",
    suffix="jsonp",
    method="GET",
    content_type="application/javascript; charset=UTF-8",
    streaming=False,
    needs_callback=True,
    has_send=True,
    cors=False,
    prelude=_no_prelude,
    # "/**/" keeps the first bytes out of attacker control (the Rosetta Flash attack).
    wrap=lambda frame, callback: "/**/" + callback + "(" + js_string(frame) + ");\r\n",
)

#: Receiving transports by URL suffix.
TRANSPORTS: dict[str, TransportSpec] = {
    spec.suffix: spec for spec in (XHR, XHR_STREAMING, EVENTSOURCE, HTMLFILE, JSONP)
}

#: Every name ``disabled_transports`` accepts.
TRANSPORT_NAMES = frozenset(
    {"websocket", "raw-websocket"} | {spec.name for spec in TRANSPORTS.values()}
)
