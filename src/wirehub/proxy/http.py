"""One pooled keep-alive HTTP client per proxy endpoint, and calls bounded in time and
size (``centrifugo-server-side.md`` §3.2, §3.6).

aiohttp, not httpx: for a small JSON POST on loopback (uvicorn backend, 2 shared
cores) aiohttp made 2,800 requests/s one at a time and 9,500/s twenty at a time,
httpx 0.29 800/s and 340/s (``docs/proxies.md``).

Rules:

1. ``POST <endpoint>``, the JSON body, ``Content-Type: application/json`` set last
   (after static and forwarded headers). No cookie jar: what the backend sets is never
   sent back, so a request carries exactly the headers configured.
2. One call takes at most the proxy's ``timeout``, connecting and reading the whole
   body included; a body beyond ``max_response_size`` is not read further.
3. Any status other than 200, no answer in time, a connection error, or a body too large
   is a :class:`ProxyFailure`; the caller decides what the client sees.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import aiohttp

__all__ = ["Endpoint", "ProxyFailure"]

# Connections kept per endpoint (Centrifugo keeps 255 idle per host); beyond, a call
# waits for one within its own timeout.
_POOL = 256
_CHUNK = 65_536


class ProxyFailure(Exception):
    """A proxy call that gave no usable answer."""

    def __init__(self, kind: str, reason: str, *, status: int = 0) -> None:
        super().__init__(reason)
        self.kind = kind
        """``stopped``, ``status``, ``too_large``, ``timeout`` or ``connection``."""
        self.reason = reason
        self.status = status
        """The backend's HTTP status when it answered with one other than 200."""


class Endpoint:
    """The pooled client of one endpoint URL; :meth:`start` in the node's loop."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=_POOL, limit_per_host=_POOL)
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=None),
        )

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def post(
        self, body: bytes, headers: Mapping[str, str], *, seconds: float, limit: int
    ) -> bytes:
        """The 200 response's body.

        Raises:
            ProxyFailure: no answer within ``seconds``, a connection error, a status
                other than 200, or a body larger than ``limit`` bytes.
        """
        session = self._session
        if session is None:
            raise ProxyFailure("stopped", "the proxy client is not running")
        try:
            async with asyncio.timeout(seconds):
                async with session.post(
                    self.url, data=body, headers=headers, allow_redirects=False
                ) as response:
                    if response.status != 200:
                        raise ProxyFailure(
                            "status", f"HTTP status {response.status}", status=response.status
                        )
                    length = response.content_length
                    if length is not None and length > limit:
                        raise ProxyFailure(
                            "too_large", f"a {length}-byte response exceeds {limit} bytes"
                        )
                    chunks: list[bytes] = []
                    size = 0
                    async for chunk in response.content.iter_chunked(_CHUNK):
                        size += len(chunk)
                        if size > limit:
                            raise ProxyFailure("too_large", f"the response exceeds {limit} bytes")
                        chunks.append(chunk)
                    return b"".join(chunks)
        except TimeoutError:
            raise ProxyFailure("timeout", f"no answer within {seconds:g} s") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise ProxyFailure("connection", f"{type(exc).__name__}: {exc}") from None
