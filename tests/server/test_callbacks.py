"""The callback parameter of the two script transports (htmlfile and jsonp): required,
and limited to ``[A-Za-z0-9_.]`` and 32 characters so it cannot carry script."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import MakeEndpoint
from tests.helpers import TIMEOUT

SCRIPT_TRANSPORTS = ["htmlfile", "jsonp"]


REQUIRED = '"callback" parameter required'
INVALID = 'invalid "callback" parameter'


@pytest.mark.parametrize("transport", SCRIPT_TRANSPORTS)
@pytest.mark.parametrize(
    ("query", "answer"),
    [
        pytest.param("", REQUIRED, id="missing"),
        *(
            pytest.param(query, INVALID, id=query)
            for query in ["c=a(b", "c=%20", "c=" + "a" * 33, "c=%3Cx%3E", "c=alert%281%29%3B"]
        ),
    ],
)
async def test_missing_or_invalid_callback_is_refused(
    make_endpoint: MakeEndpoint, transport: str, query: str, answer: str
) -> None:
    client, endpoint = await make_endpoint()
    async with asyncio.timeout(TIMEOUT):
        url = f"/sockjs/000/cb/{transport}" + (f"?{query}" if query else "")
        response = await client.get(url)
        assert response.status == 500
        assert await response.text() == answer
    assert endpoint.session_count == 0
