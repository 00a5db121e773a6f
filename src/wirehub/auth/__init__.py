"""Authentication of connections and subscriptions: pure, no I/O."""

from __future__ import annotations

from wirehub.auth.jwt import ConnectToken, JwtVerifier, SubscriptionToken

__all__ = ["ConnectToken", "JwtVerifier", "SubscriptionToken"]
