"""centrifuge-python helpers shared by the tests."""

from __future__ import annotations

import asyncio

from centrifuge import Client

from tests.support.server import timeout

__all__ = ["disconnect"]


async def disconnect(client: Client) -> None:
    """Disconnect and wait for the SDK's background tasks, the closing handshake among them.

    disconnect() only starts that handshake, in a task nothing awaits: were the test to
    end first, the loop would be closed under it and the socket leak (a ResourceWarning,
    an error in whichever test runs next). The SDK offers no public way to wait for it,
    hence the private attribute (centrifuge-python 0.7).
    """
    await client.disconnect()
    tasks = set(getattr(client, "_background_tasks", ()))
    if tasks:
        await asyncio.wait(tasks, timeout=timeout(10))
