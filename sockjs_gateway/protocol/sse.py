"""The ``text/event-stream`` wire format (HTML Living Standard, "Server-sent events"),
for the native EventSource endpoint. Pure functions: strings in, strings out.

A message's text may hold any line break; each line goes out as its own ``data:`` field
and the browser joins them with LF, so ``data`` round-trips except that CR and CRLF come
back as LF (the format cannot carry them). NUL is carried as is.
"""

from __future__ import annotations

import re

__all__ = ["event", "comment", "retry"]

_LINES = re.compile(r"\r\n|\r|\n")


def event(
    data: str, *, event_id: str | None = None, name: str | None = None, retry_ms: int = 0
) -> str:
    """One event: ``id:``, ``event:``, ``retry:`` when given, then ``data:`` lines."""
    fields = []
    if event_id is not None:
        fields.append(f"id: {event_id}\n")
    if name is not None:
        fields.append(f"event: {name}\n")
    if retry_ms:
        fields.append(f"retry: {retry_ms}\n")
    for line in _LINES.split(data):
        fields.append(f"data: {line}\n")
    fields.append("\n")
    return "".join(fields)


def comment(text: str = "") -> str:
    """A comment line: the browser ignores it; it keeps proxies and the socket alive."""
    return f": {text}\n\n" if text else ":\n\n"


def retry(ms: int) -> str:
    """A field block that only sets the reconnection delay."""
    return f"retry: {ms}\n\n"
