"""Fixtures for the STOMP end-to-end tests: the real-client fixtures of tests/clients
(Chromium via Playwright) are reused, not copied."""

from tests.clients.conftest import browser

__all__ = ["browser"]
