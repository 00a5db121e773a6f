"""Who a connection is: its connect (token, connect proxy, ``on_connecting``), its
refreshes (token or ``on_refresh``) and its subscription tokens.

Rules (``docs/proxies.md`` for the proxy's place):

1. A connect proxy, when it handles the request (no token), decides first; the
   ``on_connecting`` handler, when set, runs after it, sees its credentials and may
   keep, replace or refuse them.
2. Without credentials from either, a token is verified (3500 when no key is
   configured), anonymous connections get user ``""`` when allowed, and anything else
   is refused with 3501, with a log line that says why.
3. Every server-side channel a connection gets must be in a known namespace (102).
4. A ``refresh`` command goes to ``on_refresh`` when set, else its token is verified
   and must name the same user (3500 otherwise; an expired token: 3005).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from wirehub.core.events import (
    ConnectingEvent,
    ConnectingHandler,
    Credentials,
    RefreshEvent,
    RefreshHandler,
    SubscriptionCredentials,
    TokenVerifier,
)
from wirehub.core.payload import to_raw
from wirehub.errors import (
    DISCONNECT_BAD_REQUEST,
    DISCONNECT_EXPIRED,
    DISCONNECT_INVALID_TOKEN,
    ERROR_BAD_REQUEST,
    ERROR_PERMISSION_DENIED,
    ClientError,
)
from wirehub.protocol.codes import ErrorCode

if TYPE_CHECKING:
    from msgspec import Raw

    from wirehub.core.client import Client
    from wirehub.core.node import Node
    from wirehub.protocol.types import ConnectRequest

__all__ = ["NO_AUTH", "Authenticator"]

logger = logging.getLogger("wirehub.node")

NO_AUTH = (
    "no authentication is configured: set client.token.hmac_secret_key (or an RSA/ECDSA "
    "public key) for connection tokens, set client.allow_anonymous_connect_without_token, "
    "or register an on_connecting handler"
)


class Authenticator:
    """The connect and refresh decisions of one :class:`~wirehub.core.node.Node`."""

    def __init__(self, node: Node, verifier: TokenVerifier | None) -> None:
        self._node = node
        self.verifier = verifier
        self.on_connecting: ConnectingHandler | None = None
        self.on_refresh: RefreshHandler | None = None

    def refuses_everyone(self) -> bool:
        """True when no connection could be accepted (said at start, once)."""
        client = self._node.config.client
        return (
            self.verifier is None
            and self.on_connecting is None
            and not client.allow_anonymous_connect_without_token
            and not self._node.proxies.connect_enabled
        )

    async def authenticate(
        self, client: Client, request: ConnectRequest
    ) -> tuple[Credentials, Raw | None, tuple[str, ...]]:
        """Who ``client`` is, custom connect data, and its server-side channels."""
        proxies = self._node.proxies
        credentials, data = None, None
        channels: tuple[str, ...] = ()
        if proxies.proxies_connect(request):
            proxied = await proxies.connect(client, request)
            if proxied is not None:
                credentials, data = proxied.credentials, proxied.data
        if self.on_connecting is not None:
            reply = await self.on_connecting(_connecting_event(client, request, credentials))
            if reply is not None:
                if reply.credentials is not None:
                    credentials = reply.credentials
                if reply.data is not None:
                    data = to_raw(reply.data)
                channels = reply.channels
        if credentials is None:
            credentials = self._from_request(client, request)
        all_channels = tuple(dict.fromkeys((*credentials.channels, *channels)))
        rules = self._node.rules
        for channel in all_channels:
            rules.namespace(channel)  # an unknown namespace fails the connect: 102
        return credentials, data, all_channels

    def _from_request(self, client: Client, request: ConnectRequest) -> Credentials:
        if request.token:
            if self.verifier is None:
                logger.info("client %s sent a token, but no token key is configured", client.id)
                raise DISCONNECT_INVALID_TOKEN
            return self.verifier.verify_connect(request.token)
        if self._node.config.client.allow_anonymous_connect_without_token:
            return Credentials(user="")
        if self._node.proxies.proxies_connect(request):
            logger.info("client %s: the connect proxy gave no credentials", client.id)
        elif self.verifier is None and self.on_connecting is None:
            logger.warning("client %s refused with 3501: %s", client.id, NO_AUTH)
        else:
            logger.info("client %s sent no credentials", client.id)
        raise DISCONNECT_BAD_REQUEST

    async def refresh(self, client: Client, token: str) -> int | None:
        """The connection's new expiry after a ``refresh`` command."""
        if self.on_refresh is not None:
            reply = await self.on_refresh(RefreshEvent(client.id, client.user, token))
            if reply.expired:
                raise DISCONNECT_EXPIRED
            return reply.expire_at
        if not token:
            raise ERROR_BAD_REQUEST
        if self.verifier is None:
            raise DISCONNECT_INVALID_TOKEN
        try:
            credentials = self.verifier.verify_connect(token)
        except ClientError as exc:
            if exc.code == ErrorCode.TOKEN_EXPIRED:
                raise DISCONNECT_EXPIRED from None
            raise
        if credentials.user != client.user:
            raise DISCONNECT_INVALID_TOKEN
        return credentials.expire_at

    def verify_subscription(self, token: str) -> SubscriptionCredentials:
        if self.verifier is None:
            raise ClientError(ERROR_PERMISSION_DENIED.code, ERROR_PERMISSION_DENIED.message)
        return self.verifier.verify_subscription(token)


def _connecting_event(
    client: Client, request: ConnectRequest, credentials: Credentials | None
) -> ConnectingEvent:
    return ConnectingEvent(
        client_id=client.id,
        transport=client.transport.info,
        token=request.token,
        data=bytes(request.data),
        name=request.name,
        version=request.version,
        headers=request.headers or {},
        credentials=credentials,
    )
