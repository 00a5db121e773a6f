"""The ``harness`` fixture: one started broker per implementation in ``harness.py``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.brokers.harness import IMPLEMENTATIONS, Harness


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    async with IMPLEMENTATIONS[request.param]() as started:
        yield started
