"""Fixtures of the example apps' browser tests: one Chromium for all of them.

Package-scoped, not session-scoped: while sync Playwright runs, its event loop is the
thread's current loop, and the anyio tests of other packages could not start theirs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.examples.harness import CHROMIUM, CHROMIUM_ARGS


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
