"""The callback parameter of the two script transports (htmlfile and jsonp): required,
and limited to ``[A-Za-z0-9_.]`` and 32 characters so it cannot carry script."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import MakeEndpoint
from tests.helpers import TIMEOUT

SCRIPT_TRANSPORTS = ["htmlfile", "jsonp"]


@pytest.mark.parametrize("transport", SCRIPT_TRANSPORTS)
async def test_missing_callback_is_refused(make_endpoint: MakeEndpoint, transport: str) -> None:
    client, endpoint = await make_endpoint()
    async with asyncio.timeout(TIMEOUT):
        response = await client.get(f"/sockjs/000/cb1/{transport}")
        assert response.status == 500
        assert await response.text() == '"callback" parameter required'
    assert endpoint.session_count == 0


@pytest.mark.parametrize("transport", SCRIPT_TRANSPORTS)
@pytest.mark.parametrize(
    "query", ["c=a(b", "c=%20", "c=" + "a" * 33, "c=%3Cx%3E", "c=alert%281%29%3B"]
)
async def test_invalid_callback_is_refused(
    make_endpoint: MakeEndpoint, transport: str, query: str
) -> None:
    client, endpoint = await make_endpoint()
    async with asyncio.timeout(TIMEOUT):
        response = await client.get(f"/sockjs/000/cb2/{transport}?{query}")
        assert response.status == 500
        assert await response.text() == 'invalid "callback" parameter'
    assert endpoint.session_count == 0
