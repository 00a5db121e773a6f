"""Plugs JWT verification into the core's connect flow."""

from __future__ import annotations

from wirehub.auth.jwt import JwtVerifier
from wirehub.config import TokenConfig
from wirehub.core.events import Credentials, TokenVerifier
from wirehub.core.payload import to_raw
from wirehub.errors import DISCONNECT_INVALID_TOKEN, Disconnect

__all__ = ["JwtConnectVerifier", "connect_verifier_from_config"]


class JwtConnectVerifier:
    """A :class:`~wirehub.core.events.TokenVerifier` for connection JWTs."""

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
        return Credentials(user=claims.user, info=info, expire_at=claims.expire_at)


def connect_verifier_from_config(config: TokenConfig) -> TokenVerifier | None:
    """The JWT verifier for ``config``, or ``None`` when no key is configured."""
    verifier = JwtVerifier.from_config(config)
    return None if verifier is None else JwtConnectVerifier(verifier)
