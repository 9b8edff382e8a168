"""The testserver's own rules, checked without a server."""

from __future__ import annotations

import pytest

from sockjs_gateway.testserver import amplify_exponent

CASES = [("1", 1), ("18", 18), ("18.99", 18), (" 7 ", 7), ("19", 1), ("0", 1), ("-3", 1)]
ODD = [("", 1), ("abc", 1), ("nan", 1), ("inf", 1), ("1e1", 10)]


@pytest.mark.parametrize(("message", "exponent"), [*CASES, *ODD])
def test_amplify_exponent_follows_javascript_number(message: str, exponent: int) -> None:
    """``Math.floor(Number(m))`` kept to 1..18, as sockjs-client's test server does."""
    assert amplify_exponent(message) == exponent
