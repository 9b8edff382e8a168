"""The relaying node's half: a request for a session this node does not hold.

:func:`route` asks the directory who owns the session. A receiving request claims the
id (nobody owns it, or its owner died: the session opens here, as for any unknown id);
a send only looks it up (a send never creates a session). If a live node owns it, the
request is relayed there (:mod:`.relay`); else the caller goes on locally.

Answers the client sees when relaying cannot be done (each logged):

* directory unreachable (Redis down): a receiving request opens its session here without
  a claim (the trade-off: if the session in fact lives on another node, the client now
  has two; sockjs-client never reuses an id, so this only touches requests in flight
  during the outage); a send gets 503 "Session relay unavailable.";
* ``max_relays`` relayed requests in progress on this node: 503 "Too many relayed
  requests.";
* the owner fails meanwhile (:mod:`.relay` leases): a receiving request ends with
  ``c[1011,"Session owner unreachable"]``, a send gets 503 "Session relay unavailable.".
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from aiohttp import web

from ..backplane.base import BackplaneUnavailable
from ..logs import refusal
from ..protocol.frames import Close, encode
from ..protocol.replies import TEXT_PLAIN
from ..protocol.transports import TransportSpec
from . import http
from .disconnect import watch_disconnect
from .relay import OWNER_UNREACHABLE, Outgoing, Relay, RelayFull
from .static import text_response

if TYPE_CHECKING:
    from .endpoint import Endpoint

__all__ = ["route", "RELAY_UNAVAILABLE", "TOO_MANY_RELAYS"]

log = logging.getLogger("sockjs_gateway.relay")

#: Body of the 503 answer to a send that cannot be relayed (directory or owner down).
RELAY_UNAVAILABLE = "Session relay unavailable."
#: Body of the 503 answer past ``max_relays``.
TOO_MANY_RELAYS = "Too many relayed requests."


async def route(
    relay: Relay,
    request: web.Request,
    spec: TransportSpec,
    upstream: bool,
    callback: str,
    session_id: str,
) -> web.StreamResponse | None:
    """Relay the request if another live node owns the session; None to go on locally
    (the session is, or may now be opened, here)."""
    owner = relay.cached_owner(session_id)
    if owner is None:
        found = await _lookup(relay, request, upstream, session_id)
        if not isinstance(found, str):
            return found  # a refusal, or None: go on locally
        if found == relay.node:
            return None
        owner = found
    try:
        if upstream:
            return await _send(relay, request, spec, session_id, owner)
        answer = await _receive(relay, request, spec, session_id, callback, owner)
        if answer is None:  # the owner no longer has it: ask the directory once more
            relay.forget_owner(session_id)
            found = await _lookup(relay, request, upstream, session_id)
            if isinstance(found, str) and found != relay.node:
                answer = await _receive(relay, request, spec, session_id, callback, found)
                if answer is None:  # its key not yet released there: claim it soon
                    relay.opened_unclaimed(session_id)
        return answer
    except RelayFull:
        relay.endpoint.stats.refused["relays"] += 1
        refusal(
            "relays",
            "%s refused: max_relays (%d) relayed requests in progress, from %s",
            request.path,
            relay.max_relays,
            request.remote,
        )
        return text_response(503, TOO_MANY_RELAYS)


async def _lookup(
    relay: Relay, request: web.Request, upstream: bool, session_id: str
) -> str | web.StreamResponse | None:
    """The session's live owner from the directory (a receiving request claims the id:
    then the owner may be this node); an answer if the directory cannot be reached."""
    key = relay.key(session_id)
    try:
        if upstream:
            owner = await relay.directory.owner(key)
        else:
            owner = await relay.directory.claim(key)
    except BackplaneUnavailable as error:
        relay.directory_failed(error)
        if upstream:
            return _unavailable(relay.endpoint, request, "session directory unreachable")
        relay.opened_unclaimed(session_id)
        return None
    relay.directory_answered()
    if owner is not None and owner != relay.node:
        relay.remember(session_id, owner)
    return owner


def _unavailable(endpoint: Endpoint, request: web.Request, why: str) -> web.Response:
    endpoint.stats.refused["relay"] += 1
    refusal("relay", "%s cannot be relayed (%s), from %s", request.path, why, request.remote)
    return text_response(503, RELAY_UNAVAILABLE)


async def _send(
    relay: Relay, request: web.Request, spec: TransportSpec, session_id: str, owner: str
) -> web.StreamResponse:
    endpoint = relay.endpoint
    options = endpoint.options
    try:
        async with asyncio.timeout(options.body_timeout):
            body = await http.read_body(request, options.max_message_bytes)
    except TimeoutError:
        return http.too_slow(request, endpoint)
    if body is None:
        return text_response(413, http.PAYLOAD_TOO_LARGE, close=True)
    item = relay.open(owner)
    form = http.is_form(request, spec)
    header = {"k": "send", "r": item.rid, "s": session_id, "t": spec.suffix, "form": int(form)}
    try:
        relay.publish(owner, header, body)
        while True:
            answer, text = await item.next()
            if answer["k"] == "v":
                break
            if answer["k"] == "fail":
                relay.forget_owner(session_id)
                return _unavailable(endpoint, request, str(answer.get("why")))
    finally:
        relay.finish(item)
    status = answer.get("st")
    if status in (200, 204):
        headers = endpoint.session_headers(request, spec, TEXT_PLAIN)
        return web.Response(status=status, body=text or None, headers=headers)
    if status == 404:
        relay.forget_owner(session_id)
        raise web.HTTPNotFound()
    if not isinstance(status, int):
        status = 500
    return text_response(status, text.decode(errors="replace"), close=status == 413)


async def _receive(
    relay: Relay,
    request: web.Request,
    spec: TransportSpec,
    session_id: str,
    callback: str,
    owner: str,
) -> web.StreamResponse | None:
    item = relay.open(owner)
    relay.publish(
        owner, {"k": "attach", "r": item.rid, "s": session_id, "t": spec.suffix, "c": callback}
    )
    try:
        with watch_disconnect(request, item.lose):
            header, body = await item.next()
            if header["k"] == "e" and header.get("u"):
                return None  # the owner forgot it meanwhile
            if spec.streaming:
                return await _stream(relay, request, spec, callback, item, header, body)
            return _poll_answer(relay, request, spec, callback, await _gather(item, header, body))
    finally:
        relay.finish(item)


async def _gather(item: Outgoing, header: dict[str, object], body: bytes) -> bytes | None:
    """A poll's body (the owner's one frame), or None if the owner is unreachable."""
    while True:
        kind = header["k"]
        if kind == "d" and header.get("end"):
            return body
        if kind == "e":
            return b""
        if kind == "fail":
            return None
        if kind == "lost":
            return b""
        header, body = await item.next()


def _poll_answer(
    relay: Relay, request: web.Request, spec: TransportSpec, callback: str, body: bytes | None
) -> web.Response:
    endpoint = relay.endpoint
    if body is None:
        body = spec.wrap(encode(Close(*OWNER_UNREACHABLE)), callback).encode()
    headers = endpoint.session_headers(request, spec, spec.content_type)
    return web.Response(body=body, headers=headers)


async def _stream(
    relay: Relay,
    request: web.Request,
    spec: TransportSpec,
    callback: str,
    item: Outgoing,
    header: dict[str, object],
    body: bytes,
) -> web.StreamResponse:
    endpoint = relay.endpoint
    response = web.StreamResponse(
        headers=endpoint.session_headers(request, spec, spec.content_type)
    )
    if request.version < (1, 1):
        response.force_close()
    step = max(1, relay.window // 4)
    unreported = 0
    transport = request.transport
    if transport is not None:
        item.on_cut = transport.abort
    try:
        await response.prepare(request)
        await response.write(spec.prelude(callback).encode())
        while True:
            kind = header["k"]
            if kind == "d":
                item.writing = True
                await response.write(body)
                item.writing = False
                unreported += len(body)
                if header.get("end"):
                    break
                if unreported >= step:
                    relay.publish(item.owner, {"k": "ack", "r": item.rid, "b": unreported})
                    unreported = 0
            elif kind == "e":
                if header.get("x"):  # cut off as a slow consumer (done on arrival)
                    return response
                break
            elif kind == "fail":
                close = encode(Close(*OWNER_UNREACHABLE))
                await response.write(spec.wrap(close, callback).encode())
                break
            elif kind == "lost":
                return response
            header, body = await item.next()
        await response.write_eof()
    except ConnectionError:
        pass  # the client left: relay.finish tells the owner
    return response
