"""Verification of connection and subscription JWTs (``centrifugo-protocol.md`` §7).

Security rules (``reliability.md`` J1-J3, J6, J8):

1. Keys are typed and each pins its algorithm family: HS* only with the HMAC secret,
   RS* only with the RSA key, ES* only with the EC key and only the one algorithm that
   matches its curve. The token's ``alg`` header is read unverified solely to pick the
   key; ``jwt.decode`` then gets that single algorithm. An asymmetric public key is
   never handed to HMAC, so the PEM-as-HMAC-secret confusion cannot happen.
2. ``none`` and every other algorithm, or one whose key is not configured, are invalid.
3. ``exp``/``nbf`` are checked here against an injectable clock, after the signature:
   only an authentic token can earn "token expired" (109) instead of "invalid".
4. ``aud``/``iss`` are verified only when configured, and then required. ``iat`` is
   not checked; ``sub`` and ``jti``, when present, must be strings.
5. The token never appears in an exception message, a chained cause, or a log.

Nothing here does I/O or imports asyncio.
"""

from __future__ import annotations

import base64
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import jwt
import msgspec
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt.algorithms import HMACAlgorithm
from jwt.types import Options

from wirehub.config import TokenConfig
from wirehub.errors import (
    DISCONNECT_INVALID_TOKEN,
    ERROR_PERMISSION_DENIED,
    ERROR_TOKEN_EXPIRED,
    ClientError,
    Disconnect,
)

__all__ = [
    "ConnectToken",
    "JwtVerifier",
    "ServerSubscriptionOptions",
    "SubscriptionToken",
    "server_subscription_options",
]

_HMAC_ALGORITHMS: Final = frozenset({"HS256", "HS384", "HS512"})
_RSA_ALGORITHMS: Final = frozenset({"RS256", "RS384", "RS512"})
# ECDSA signatures are only meaningful with the curve their algorithm names (RFC 7518
# §3.4), so an EC key admits exactly one algorithm.
_EC_ALGORITHM_BY_CURVE: Final = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}

_Key = bytes | RSAPublicKey | EllipticCurvePublicKey
_encode_json = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class ConnectToken:
    """The verified claims of a connection token.

    Attributes:
        user: claim ``sub``; ``""`` is the anonymous user.
        expire_at: Unix seconds at which the connection expires, ``None`` for never:
            claim ``expire_at`` if present (``0`` means never), else ``exp``.
        info: claim ``info`` as compact JSON, or the decoded ``b64info`` (which wins);
            ``b""`` when absent.
        meta: claim ``meta``, private metadata never sent to clients.
        channels: claim ``channels``, server-side subscriptions.
        subs: claim ``subs`` as sent (channel -> options); the caller interprets it.
    """

    user: str
    expire_at: int | None
    info: bytes
    meta: dict[str, Any]
    channels: tuple[str, ...]
    subs: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SubscriptionToken:
    """The verified claims of a subscription token.

    The caller must still check ``channel``, ``user`` and ``client`` against the
    subscribe request and the connection.

    Attributes:
        user: claim ``sub``; ``""`` is the anonymous user.
        channel: claim ``channel``, never empty.
        client: claim ``client``; ``""`` when absent (any client of the user).
        expire_at: Unix seconds at which the subscription expires, as for connections.
        info: claim ``info``/``b64info``, the channel info; ``b""`` when absent.
        data: claim ``data``/``b64data``, sent in the subscribe result; ``b""`` when absent.
        override: claim ``override``, per-subscription option overrides.
    """

    user: str
    channel: str
    client: str
    expire_at: int | None
    info: bytes
    data: bytes
    override: dict[str, Any]


class _InvalidTokenError(Exception):
    """The token is not acceptable. The message is a fixed text, never token content."""


class _TokenExpiredError(Exception):
    """The token is authentic but outside its ``nbf``..``exp`` window."""


class JwtVerifier:
    """Verifies HS*/RS*/ES* tokens with the keys of a :class:`TokenConfig`.

    Args:
        config: keys, audience, issuer and leeway.
        clock: returns the current Unix time; tests pass a fake one.

    Raises:
        ValueError: a configured key can't be loaded or is of the wrong kind (a public
            key as the HMAC secret included); the message names the option.
    """

    def __init__(self, config: TokenConfig, *, clock: Callable[[], float] = time.time) -> None:
        self._hmac_key = _hmac_key(config.hmac_secret_key) if config.hmac_secret_key else None
        self._rsa_key = _load_rsa_key(config.rsa_public_key) if config.rsa_public_key else None
        self._ec_key: EllipticCurvePublicKey | None = None
        self._ec_algorithm = ""
        if config.ecdsa_public_key:
            self._ec_key, self._ec_algorithm = _load_ec_key(config.ecdsa_public_key)
        self._audience = config.audience or None
        self._issuer = config.issuer or None
        self._leeway = config.leeway
        self._clock = clock
        self._options: Options = {
            "verify_signature": True,
            # Time claims are checked in _check_times, against the injected clock.
            "verify_exp": False,
            "verify_nbf": False,
            "verify_iat": False,
            # PyJWT would reject any aud when no audience is given; Centrifugo ignores it.
            "verify_aud": self._audience is not None,
            "verify_iss": self._issuer is not None,
        }

    @classmethod
    def from_config(cls, config: TokenConfig) -> JwtVerifier | None:
        """Build a verifier, or return ``None`` when no key is configured at all.

        Raises:
            ValueError: as for the constructor.
        """
        if not (config.hmac_secret_key or config.rsa_public_key or config.ecdsa_public_key):
            return None
        return cls(config)

    def verify_connect_token(self, token: str) -> ConnectToken:
        """Verify a connection token and return its claims.

        Raises:
            ClientError: 109 "token expired": authentic, but past ``exp`` or before
                ``nbf`` (beyond the leeway); the client should fetch a new token.
            Disconnect: 3500 "invalid token" for anything else wrong with the token.
        """
        try:
            return _connect_token(self._verify(token))
        except _TokenExpiredError:
            raise _token_expired() from None
        except _InvalidTokenError as exc:
            raise _invalid_token() from exc

    def verify_subscription_token(self, token: str) -> SubscriptionToken:
        """Verify a subscription token and return its claims.

        Raises:
            ClientError: 109 "token expired" as for connections; 103 "permission
                denied" for anything else wrong, a missing ``channel`` included.
        """
        try:
            return _subscription_token(self._verify(token))
        except _TokenExpiredError:
            raise _token_expired() from None
        except _InvalidTokenError as exc:
            raise _permission_denied() from exc

    def _verify(self, token: str) -> dict[str, Any]:
        """Check signature, ``aud``, ``iss``, ``exp`` and ``nbf``; return the claims."""
        claims = self._decode(token)
        self._check_times(claims)
        return claims

    def _decode(self, token: str) -> dict[str, Any]:
        if not isinstance(token, str) or not token:
            raise _InvalidTokenError("no token")
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
            if not isinstance(algorithm, str):
                raise _InvalidTokenError("no algorithm")
            key = self._key_for(algorithm)
            return jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                options=self._options,
                audience=self._audience,
                issuer=self._issuer,
            )
        except jwt.PyJWTError as exc:
            # PyJWT messages may quote decoded input; its class name is enough to debug.
            raise _InvalidTokenError(type(exc).__name__) from None
        except (ValueError, TypeError, RecursionError):
            # Undecodable text (e.g. lone surrogates) or absurdly nested JSON.
            raise _InvalidTokenError("malformed token") from None

    def _key_for(self, algorithm: str) -> _Key:
        """The configured key for ``algorithm``; the header is not trusted beyond this."""
        key: _Key | None = None
        if algorithm in _HMAC_ALGORITHMS:
            key = self._hmac_key
        elif algorithm in _RSA_ALGORITHMS:
            key = self._rsa_key
        elif algorithm == self._ec_algorithm:  # "" with no EC key, and then key stays None
            key = self._ec_key
        if key is None:
            raise _InvalidTokenError("algorithm not allowed")
        return key

    def _check_times(self, claims: dict[str, Any]) -> None:
        exp = _numeric_date(claims, "exp")
        nbf = _numeric_date(claims, "nbf")
        now = self._clock()
        # Same boundaries as PyJWT: a token is dead at exp, alive from nbf.
        if exp is not None and exp <= now - self._leeway:
            raise _TokenExpiredError
        if nbf is not None and nbf > now + self._leeway:
            raise _TokenExpiredError


def _hmac_key(secret: str) -> bytes:
    key = secret.encode()
    try:
        # PyJWT refuses a PEM or SSH public key as an HMAC secret on every token; say so
        # once, at startup, instead of rejecting every HS* token without a clue.
        HMACAlgorithm(HMACAlgorithm.SHA256).prepare_key(key)
    except jwt.InvalidKeyError:
        raise ValueError(
            "client.token.hmac_secret_key looks like a public key; HMAC needs a shared secret"
        ) from None
    return key


def _load_rsa_key(pem: str) -> RSAPublicKey:
    key = _load_public_key(pem, "rsa_public_key")
    if not isinstance(key, RSAPublicKey):
        # A wrong config value, not a wrong argument type: ValueError like a bad PEM.
        raise ValueError("client.token.rsa_public_key does not hold an RSA public key")
    return key


def _load_ec_key(pem: str) -> tuple[EllipticCurvePublicKey, str]:
    key = _load_public_key(pem, "ecdsa_public_key")
    if not isinstance(key, EllipticCurvePublicKey):
        raise ValueError("client.token.ecdsa_public_key does not hold an EC public key")
    algorithm = _EC_ALGORITHM_BY_CURVE.get(key.curve.name)
    if algorithm is None:
        raise ValueError(
            f"client.token.ecdsa_public_key: curve {key.curve.name} is not supported "
            "(use P-256, P-384 or P-521)"
        )
    return key, algorithm


def _load_public_key(pem: str, option: str) -> object:
    try:
        return load_pem_public_key(pem.encode())
    except (ValueError, TypeError) as exc:
        raise ValueError(f"client.token.{option} is not a valid PEM public key: {exc}") from None


# Claims. Absent and JSON null mean the same, as they do for Centrifugo's Go structs.


def _connect_token(claims: dict[str, Any]) -> ConnectToken:
    if "channel" in claims:
        # A subscription token must never pass as a connection token (§7.1).
        raise _InvalidTokenError("channel claim in a connection token")
    return ConnectToken(
        user=_string(claims, "sub"),
        expire_at=_expire_at(claims),
        info=_payload(claims, "info", "b64info"),
        meta=_object(claims, "meta"),
        channels=_strings(claims, "channels"),
        subs=_subs(claims),
    )


def _subscription_token(claims: dict[str, Any]) -> SubscriptionToken:
    channel = _string(claims, "channel")
    if not channel:
        raise _InvalidTokenError("no channel claim")
    return SubscriptionToken(
        user=_string(claims, "sub"),
        channel=channel,
        client=_string(claims, "client"),
        expire_at=_expire_at(claims),
        info=_payload(claims, "info", "b64info"),
        data=_payload(claims, "data", "b64data"),
        override=_object(claims, "override"),
    )


def _string(claims: dict[str, Any], name: str) -> str:
    value = claims.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _InvalidTokenError(f"claim {name} is not a string")
    return value


def _object(claims: dict[str, Any], name: str) -> dict[str, Any]:
    value = claims.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _InvalidTokenError(f"claim {name} is not an object")
    return value


def _strings(claims: dict[str, Any], name: str) -> tuple[str, ...]:
    value = claims.get(name)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _InvalidTokenError(f"claim {name} is not a list of strings")
    return tuple(value)


def _subs(claims: dict[str, Any]) -> dict[str, Any]:
    subs = _object(claims, "subs")
    # Each value is a SubscribeOptions object for Centrifugo; anything else fails there.
    if not all(isinstance(options, dict) for options in subs.values()):
        raise _InvalidTokenError("claim subs holds a non-object")
    return subs


def _payload(claims: dict[str, Any], name: str, b64_name: str) -> bytes:
    """``b64_name`` base64-decoded if present, else ``name`` as compact JSON, else b""."""
    encoded = claims.get(b64_name)
    if encoded is not None:
        if not isinstance(encoded, str):
            raise _InvalidTokenError(f"claim {b64_name} is not a string")
        try:
            # Strict, like Go's base64.StdEncoding: junk characters are an error.
            return base64.b64decode(encoded, validate=True)
        except ValueError:  # binascii.Error, or non-ASCII text
            raise _InvalidTokenError(f"claim {b64_name} is not base64") from None
    value = claims.get(name)
    if value is None:
        return b""
    try:
        return _encode_json(value)
    except (TypeError, ValueError, OverflowError, RecursionError):
        raise _InvalidTokenError(f"claim {name} is not JSON-encodable") from None


def _numeric_date(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    # bool is an int in Python; NaN would compare false and so never expire.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _InvalidTokenError(f"claim {name} is not a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise _InvalidTokenError(f"claim {name} is not finite")
    return value


def _expire_at(claims: dict[str, Any]) -> int | None:
    value = claims.get("expire_at")
    if value is None:
        exp = _numeric_date(claims, "exp")
        return None if exp is None else math.floor(exp)
    # An int64 in Centrifugo. A negative value has no documented meaning, so refuse
    # it rather than guess "never expire".
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _InvalidTokenError("claim expire_at is not a non-negative integer")
    return value or None


# Fresh instances: a raised exception collects a traceback, so the shared constants in
# wirehub.errors must not be raised themselves.


@dataclass(frozen=True, slots=True)
class ServerSubscriptionOptions:
    """One entry of a connection token's ``subs`` claim."""

    info: bytes
    """``info`` as compact JSON or the decoded ``b64info``; ``b""`` when absent."""
    data: bytes
    """``data``/``b64data``, sent in the subscription's result; ``b""`` when absent."""
    override: dict[str, Any]
    """``override``, as sent; the caller interprets it."""


def server_subscription_options(options: dict[str, Any]) -> ServerSubscriptionOptions:
    """Parse one ``subs`` entry of a verified connection token.

    Raises:
        Disconnect: 3500, the entry is malformed (the token is invalid).
    """
    try:
        return ServerSubscriptionOptions(
            info=_payload(options, "info", "b64info"),
            data=_payload(options, "data", "b64data"),
            override=_object(options, "override"),
        )
    except _InvalidTokenError as exc:
        raise _invalid_token() from exc


def _invalid_token() -> Disconnect:
    return Disconnect(DISCONNECT_INVALID_TOKEN.code, DISCONNECT_INVALID_TOKEN.reason)


def _token_expired() -> ClientError:
    return ClientError(ERROR_TOKEN_EXPIRED.code, ERROR_TOKEN_EXPIRED.message)


def _permission_denied() -> ClientError:
    return ClientError(ERROR_PERMISSION_DENIED.code, ERROR_PERMISSION_DENIED.message)
