"""Fixtures for the balancer tests: the real-client fixtures of tests/clients (Chromium
via Playwright, one browser per module, a fresh page per test) are reused, not copied."""

from tests.clients.conftest import browser, page

__all__ = ["browser", "page"]
