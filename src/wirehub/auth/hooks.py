"""Plugs JWT verification into the core's connect flow."""

from __future__ import annotations

from typing import Any

from wirehub.auth.jwt import JwtVerifier, server_subscription_options
from wirehub.config import TokenConfig
from wirehub.core.events import (
    Credentials,
    ServerSubscription,
    SubscriptionCredentials,
    TokenVerifier,
)
from wirehub.core.payload import to_raw
from wirehub.errors import (
    DISCONNECT_INVALID_TOKEN,
    ERROR_PERMISSION_DENIED,
    ClientError,
    Disconnect,
)

__all__ = ["JwtConnectVerifier", "connect_verifier_from_config"]


class JwtConnectVerifier:
    """A :class:`~wirehub.core.events.TokenVerifier` for connection and subscription JWTs."""

    def __init__(self, verifier: JwtVerifier) -> None:
        self._verifier = verifier

    def verify_connect(self, token: str) -> Credentials:
        claims = self._verifier.verify_connect_token(token)
        try:
            info = to_raw(claims.info) if claims.info else None
        except ValueError:
            # b64info holding binary: JSON clients could never be sent it.
            raise Disconnect(
                DISCONNECT_INVALID_TOKEN.code, DISCONNECT_INVALID_TOKEN.reason
            ) from None
        # As Centrifugo: with a subs claim, channels is ignored.
        channels = tuple(claims.subs) if claims.subs else claims.channels
        return Credentials(
            user=claims.user,
            info=info,
            expire_at=claims.expire_at,
            channels=channels,
            subscriptions={
                channel: _server_subscription(options) for channel, options in claims.subs.items()
            },
        )

    def verify_subscription(self, token: str) -> SubscriptionCredentials:
        claims = self._verifier.verify_subscription_token(token)
        try:
            info = to_raw(claims.info) if claims.info else None
            data = to_raw(claims.data) if claims.data else None
        except ValueError:
            raise ClientError(
                ERROR_PERMISSION_DENIED.code, ERROR_PERMISSION_DENIED.message
            ) from None
        return SubscriptionCredentials(
            user=claims.user,
            channel=claims.channel,
            client=claims.client,
            expire_at=claims.expire_at,
            info=info,
            data=data,
            override=_override(claims.override),
        )


def _server_subscription(options: dict[str, Any]) -> ServerSubscription:
    parsed = server_subscription_options(options)
    try:
        info = to_raw(parsed.info) if parsed.info else None
        data = to_raw(parsed.data) if parsed.data else None
    except ValueError:
        raise Disconnect(DISCONNECT_INVALID_TOKEN.code, DISCONNECT_INVALID_TOKEN.reason) from None
    return ServerSubscription(info=info, data=data, override=_override(parsed.override))


_OVERRIDABLE = frozenset(
    {"presence", "join_leave", "force_push_join_leave", "force_recovery", "force_positioning"}
)


def _override(claim: dict[str, Any]) -> dict[str, bool]:
    """The token's ``override`` claim, ``{"presence": {"value": true}, ...}``, as flags;
    unknown names and malformed entries are ignored (Centrifugo's shape)."""
    flags = {}
    for name, entry in claim.items():
        value = entry.get("value") if isinstance(entry, dict) else None
        if name in _OVERRIDABLE and isinstance(value, bool):
            flags[name] = value
    return flags


def connect_verifier_from_config(config: TokenConfig) -> TokenVerifier | None:
    """The JWT verifier for ``config``, or ``None`` when no key is configured."""
    verifier = JwtVerifier.from_config(config)
    return None if verifier is None else JwtConnectVerifier(verifier)
