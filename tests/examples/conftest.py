"""Fixtures of the example apps' browser tests: one Chromium per test module.

Module-scoped: while sync Playwright runs, its event loop is the thread's current loop,
and an anyio test (``test_proxy_backend.py`` here, any package after) could not start
its own; a launch costs about a second."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.examples.harness import CHROMIUM, CHROMIUM_ARGS


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
