"""Tests of wirehub.auth.jwt: reliability.md J1-J3, J6 and centrifugo-protocol.md §7."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from hypothesis import given, settings, strategies as st
from jwt.utils import der_to_raw_signature

from wirehub.auth import ConnectToken, JwtVerifier, SubscriptionToken
from wirehub.config import TokenConfig
from wirehub.errors import (
    DISCONNECT_INVALID_TOKEN,
    ERROR_PERMISSION_DENIED,
    ERROR_TOKEN_EXPIRED,
    ClientError,
    Disconnect,
)

NOW = 1_700_000_000
# 64 bytes: PyJWT warns about HMAC keys shorter than the digest, and HS512's is 64.
SECRET = "wirehub-test-secret-" + "s" * 44
OTHER_SECRET = "another-test-secret-" + "o" * 44

# Generated once: RSA key generation is slow enough to matter per test.
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def _public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


RSA_PEM = _public_pem(RSA_KEY)
EC_PEM = _public_pem(EC_KEY)


# Helpers.


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: object) -> str:
    # json.dumps, not PyJWT: it writes NaN and doesn't police claim types.
    return b64url(json.dumps(value).encode())


def hmac_token(
    claims: dict[str, Any],
    secret: str | bytes = SECRET,
    *,
    header: dict[str, Any] | None = None,
    digest: Callable[[], Any] = hashlib.sha256,
) -> str:
    """An HS256 token signed by hand, so any secret and any claim can go in."""
    key = secret.encode() if isinstance(secret, str) else secret
    signing_input = f"{segment(header or {'alg': 'HS256', 'typ': 'JWT'})}.{segment(claims)}"
    signature = hmac.new(key, signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64url(signature)}"


def make(**options: Any) -> JwtVerifier:
    return JwtVerifier(TokenConfig(**options), clock=lambda: NOW)


def hs(**options: Any) -> JwtVerifier:
    return make(hmac_secret_key=SECRET, **options)


def assert_invalid(verifier: JwtVerifier, token: Any) -> Disconnect:
    with pytest.raises(Disconnect) as caught:
        verifier.verify_connect_token(token)
    assert (caught.value.code, caught.value.reason) == (3500, "invalid token")
    assert not caught.value.reconnect
    return caught.value


def assert_expired(verify: Callable[[str], object], token: str) -> ClientError:
    with pytest.raises(ClientError) as caught:
        verify(token)
    assert (caught.value.code, caught.value.message) == (109, "token expired")
    return caught.value


def assert_denied(verifier: JwtVerifier, token: Any) -> ClientError:
    with pytest.raises(ClientError) as caught:
        verifier.verify_subscription_token(token)
    assert (caught.value.code, caught.value.message) == (103, "permission denied")
    return caught.value


# Valid tokens, each algorithm family.


@pytest.mark.parametrize("algorithm", ["HS256", "HS384", "HS512"])
def test_hmac_token_is_accepted(algorithm: str) -> None:
    token = jwt.encode({"sub": "42", "exp": NOW + 60}, SECRET, algorithm=algorithm)
    assert hs().verify_connect_token(token) == ConnectToken(
        user="42", expire_at=NOW + 60, info=b"", meta={}, channels=(), subs={}
    )


@pytest.mark.parametrize("algorithm", ["RS256", "RS384", "RS512"])
def test_rsa_token_is_accepted(algorithm: str) -> None:
    token = jwt.encode({"sub": "42"}, RSA_KEY, algorithm=algorithm)
    assert make(rsa_public_key=RSA_PEM).verify_connect_token(token).user == "42"


@pytest.mark.parametrize(
    ("curve", "algorithm"),
    [(ec.SECP256R1(), "ES256"), (ec.SECP384R1(), "ES384"), (ec.SECP521R1(), "ES512")],
)
def test_ec_token_is_accepted(curve: ec.EllipticCurve, algorithm: str) -> None:
    key = EC_KEY if algorithm == "ES256" else ec.generate_private_key(curve)
    token = jwt.encode({"sub": "42"}, key, algorithm=algorithm)
    assert make(ecdsa_public_key=_public_pem(key)).verify_connect_token(token).user == "42"


def test_every_configured_key_works_side_by_side() -> None:
    verifier = make(hmac_secret_key=SECRET, rsa_public_key=RSA_PEM, ecdsa_public_key=EC_PEM)
    tokens = [
        jwt.encode({"sub": "h"}, SECRET, algorithm="HS256"),
        jwt.encode({"sub": "r"}, RSA_KEY, algorithm="RS256"),
        jwt.encode({"sub": "e"}, EC_KEY, algorithm="ES256"),
    ]
    assert [verifier.verify_connect_token(token).user for token in tokens] == ["h", "r", "e"]


def test_missing_sub_is_the_anonymous_user() -> None:
    assert hs().verify_connect_token(hmac_token({})).user == ""


# Claims of a connection token.


def test_info_is_reencoded_as_compact_json() -> None:
    token = hmac_token({"info": {"name": "Alice", "tags": [1, 2]}})
    assert hs().verify_connect_token(token).info == b'{"name":"Alice","tags":[1,2]}'


@pytest.mark.parametrize("claims", [{}, {"info": None}])
def test_absent_info_is_empty(claims: dict[str, Any]) -> None:
    assert hs().verify_connect_token(hmac_token(claims)).info == b""


def test_b64info_is_decoded_and_wins_over_info() -> None:
    token = hmac_token({"info": {"ignored": True}, "b64info": "AAEC/w=="})
    assert hs().verify_connect_token(token).info == b"\x00\x01\x02\xff"


@pytest.mark.parametrize("b64info", ["not base64!", "AAEC/w", "\x80AA=", 42, ["AA=="]])
def test_bad_b64info_is_invalid(b64info: object) -> None:
    assert_invalid(hs(), hmac_token({"b64info": b64info}))


def test_meta_channels_and_subs_are_returned() -> None:
    claims = {
        "meta": {"role": "admin"},
        "channels": ["news", "chat:lobby"],
        "subs": {"news": {"data": {"welcome": 1}}},
    }
    result = hs().verify_connect_token(hmac_token(claims))
    assert result.meta == {"role": "admin"}
    assert result.channels == ("news", "chat:lobby")
    assert result.subs == {"news": {"data": {"welcome": 1}}}


@pytest.mark.parametrize("meta", [1, "admin", ["admin"], True])
def test_meta_must_be_an_object(meta: object) -> None:
    assert_invalid(hs(), hmac_token({"meta": meta}))


@pytest.mark.parametrize("channels", ["news", [1], ["news", None], {"news": True}])
def test_channels_must_be_a_list_of_strings(channels: object) -> None:
    assert_invalid(hs(), hmac_token({"channels": channels}))


@pytest.mark.parametrize("subs", [["news"], "news", {"news": 1}])
def test_subs_must_map_channels_to_objects(subs: object) -> None:
    assert_invalid(hs(), hmac_token({"subs": subs}))


@pytest.mark.parametrize("sub", [42, ["42"], {"id": 42}, None])
def test_sub_must_be_a_string(sub: object) -> None:
    assert_invalid(hs(), hmac_token({"sub": sub}))


@pytest.mark.parametrize("channel", ["news", ""])
def test_channel_claim_in_a_connection_token_is_invalid(channel: str) -> None:
    # §7.1: otherwise a subscription token could open a connection.
    assert_invalid(hs(), hmac_token({"sub": "42", "channel": channel}))


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"expire_at": NOW + 100, "exp": NOW + 10}, NOW + 100),
        ({"expire_at": 0, "exp": NOW + 10}, None),
        ({"expire_at": None, "exp": NOW + 10}, NOW + 10),
        ({"exp": NOW + 10}, NOW + 10),
        ({"exp": NOW + 10.7}, NOW + 10),
        ({}, None),
    ],
)
def test_expire_at(claims: dict[str, Any], expected: int | None) -> None:
    assert hs().verify_connect_token(hmac_token(claims)).expire_at == expected


@pytest.mark.parametrize("expire_at", [-1, 1.5, "1700000000", True])
def test_bad_expire_at_is_invalid(expire_at: object) -> None:
    assert_invalid(hs(), hmac_token({"expire_at": expire_at}))


# Expiry (J4, J6): 109 only for authentic tokens.


def test_expired_token_is_error_109() -> None:
    error = assert_expired(hs().verify_connect_token, hmac_token({"exp": NOW - 1}))
    assert error is not ERROR_TOKEN_EXPIRED


def test_token_expires_at_exp_exactly() -> None:
    assert_expired(hs().verify_connect_token, hmac_token({"exp": NOW}))


def test_not_yet_valid_token_is_error_109() -> None:
    assert_expired(hs().verify_connect_token, hmac_token({"nbf": NOW + 1}))


def test_token_is_valid_from_nbf_exactly() -> None:
    hs().verify_connect_token(hmac_token({"nbf": NOW, "exp": NOW + 1}))


def test_leeway_is_honoured() -> None:
    verifier = hs(leeway=10)
    verifier.verify_connect_token(hmac_token({"exp": NOW - 5}))
    verifier.verify_connect_token(hmac_token({"nbf": NOW + 5}))
    assert_expired(verifier.verify_connect_token, hmac_token({"exp": NOW - 10}))
    assert_expired(verifier.verify_connect_token, hmac_token({"nbf": NOW + 11}))


def test_time_comes_from_the_injected_clock() -> None:
    now = [float(NOW)]
    verifier = JwtVerifier(TokenConfig(hmac_secret_key=SECRET), clock=lambda: now[0])
    token = hmac_token({"nbf": NOW + 10, "exp": NOW + 20})
    assert_expired(verifier.verify_connect_token, token)
    now[0] = NOW + 15
    verifier.verify_connect_token(token)
    now[0] = NOW + 20
    assert_expired(verifier.verify_connect_token, token)


def test_iat_is_not_checked() -> None:
    hs().verify_connect_token(hmac_token({"iat": NOW + 3600}))


def test_expired_token_with_a_bad_signature_is_invalid_not_expired() -> None:
    assert_invalid(hs(), hmac_token({"exp": NOW - 1}, OTHER_SECRET))


@pytest.mark.parametrize("claim", ["exp", "nbf"])
@pytest.mark.parametrize("value", ["soon", True, [NOW], float("nan"), float("inf")])
def test_time_claims_must_be_finite_numbers(claim: str, value: object) -> None:
    # NaN compares false with everything, so unchecked it would never expire.
    assert_invalid(hs(), hmac_token({claim: value}))


# Signatures (J1).


def test_tampered_signature_is_invalid() -> None:
    header, payload, signature = hmac_token({"sub": "42"}).split(".")
    forged = ("B" if signature[0] == "A" else "A") + signature[1:]
    assert_invalid(hs(), f"{header}.{payload}.{forged}")


def test_tampered_payload_is_invalid() -> None:
    header, _, signature = hmac_token({"sub": "42"}).split(".")
    assert_invalid(hs(), f"{header}.{segment({'sub': 'admin'})}.{signature}")


@pytest.mark.parametrize("algorithm", ["HS256", "HS512"])
def test_wrong_secret_is_invalid(algorithm: str) -> None:
    assert_invalid(hs(), jwt.encode({"sub": "42"}, OTHER_SECRET, algorithm=algorithm))


def test_rsa_token_signed_by_another_key_is_invalid() -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert_invalid(make(rsa_public_key=RSA_PEM), jwt.encode({"sub": "42"}, other, "RS256"))


def test_ec_token_signed_by_another_key_is_invalid() -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    assert_invalid(make(ecdsa_public_key=EC_PEM), jwt.encode({"sub": "42"}, other, "ES256"))


@pytest.mark.parametrize(
    "token",
    ["", " ", "abc", "a.b", "a.b.c", "...", "eyJ.eyJ.", "a.b.c.d", "\ud800.\udfff.x"],
)
def test_malformed_token_is_invalid(token: str) -> None:
    assert_invalid(hs(), token)


def test_header_that_is_not_an_object_is_invalid() -> None:
    assert_invalid(hs(), f"{segment(['HS256'])}.{segment({})}.")


@pytest.mark.parametrize("token", [None, b"bytes", 42])
def test_token_that_is_not_a_string_is_invalid(token: object) -> None:
    assert_invalid(hs(), token)


# Algorithms (J2, J3): pinned per key, never chosen by the token.


ALL_KEYS = {"hmac_secret_key": SECRET, "rsa_public_key": RSA_PEM, "ecdsa_public_key": EC_PEM}


@pytest.mark.parametrize("algorithm", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize("signature", ["", b64url(b"anything")])
def test_alg_none_is_invalid(algorithm: str, signature: str) -> None:
    token = f"{segment({'alg': algorithm, 'typ': 'JWT'})}.{segment({'sub': 'admin'})}.{signature}"
    assert_invalid(make(**ALL_KEYS), token)


@pytest.mark.parametrize("header", [{"typ": "JWT"}, {"alg": ""}, {"alg": 256}, {"alg": ["HS256"]}])
def test_missing_or_odd_alg_is_invalid(header: dict[str, Any]) -> None:
    assert_invalid(hs(), hmac_token({"sub": "42"}, header=header))


def _key_formats(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> list[bytes]:
    """The public key in every serialisation an attacker might try as an HMAC secret."""
    public = key.public_key()
    formats = [
        (serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
        (serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH),
    ]
    if isinstance(key, rsa.RSAPrivateKey):
        formats.append((serialization.Encoding.PEM, serialization.PublicFormat.PKCS1))
    else:
        formats.append((serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))
    encoded = [public.public_bytes(encoding, fmt) for encoding, fmt in formats]
    return [*encoded, encoded[0].strip()]


CONFUSION_CASES = [
    pytest.param(secret, config, id=f"{name}-{i}-{'with' if len(config) > 1 else 'no'}-hmac")
    for name, key, pem, option in [
        ("rsa", RSA_KEY, RSA_PEM, "rsa_public_key"),
        ("ec", EC_KEY, EC_PEM, "ecdsa_public_key"),
    ]
    for i, secret in enumerate(_key_formats(key))
    for config in [{option: pem}, {option: pem, "hmac_secret_key": SECRET}]
]


@pytest.mark.parametrize(("secret", "config"), CONFUSION_CASES)
def test_hs256_signed_with_the_public_key_is_invalid(secret: bytes, config: dict[str, str]) -> None:
    # CVE-2022-29217 and kin: the public key is public, so an HMAC over it proves nothing.
    assert_invalid(make(**config), hmac_token({"sub": "admin"}, secret))


@pytest.mark.parametrize("pem", [RSA_PEM, EC_PEM], ids=["rsa", "ec"])
def test_public_key_pasted_as_hmac_secret_fails_at_construction(pem: str) -> None:
    # Misconfiguration that would make the confusion attack work with a naive verifier.
    with pytest.raises(ValueError, match="hmac_secret_key looks like a public key"):
        JwtVerifier(TokenConfig(hmac_secret_key=pem))


def test_rsa_token_with_only_hmac_configured_is_invalid() -> None:
    assert_invalid(hs(), jwt.encode({"sub": "42"}, RSA_KEY, algorithm="RS256"))


def test_ec_token_with_only_rsa_configured_is_invalid() -> None:
    verifier = make(rsa_public_key=RSA_PEM)
    assert_invalid(verifier, jwt.encode({"sub": "42"}, EC_KEY, algorithm="ES256"))


def test_hmac_token_with_only_asymmetric_keys_configured_is_invalid() -> None:
    verifier = make(rsa_public_key=RSA_PEM, ecdsa_public_key=EC_PEM)
    assert_invalid(verifier, jwt.encode({"sub": "42"}, SECRET, algorithm="HS256"))


def test_es_algorithm_must_match_the_curve() -> None:
    # ES384 signed with the configured P-256 key: only ES256 is pinned to that key.
    signing_input = f"{segment({'alg': 'ES384'})}.{segment({'sub': '42'})}".encode()
    der = EC_KEY.sign(signing_input, ec.ECDSA(hashes.SHA384()))
    token = f"{signing_input.decode()}.{b64url(der_to_raw_signature(der, EC_KEY.curve))}"
    assert_invalid(make(ecdsa_public_key=EC_PEM), token)


def test_ps256_with_the_rsa_key_is_invalid() -> None:
    # Same key, another algorithm: only RS* is allowed with rsa_public_key.
    signing_input = f"{segment({'alg': 'PS256'})}.{segment({'sub': '42'})}".encode()
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    signature = RSA_KEY.sign(signing_input, pss, hashes.SHA256())
    assert_invalid(make(rsa_public_key=RSA_PEM), f"{signing_input.decode()}.{b64url(signature)}")


# Audience and issuer (J6).


@pytest.mark.parametrize("aud", ["wirehub", ["other", "wirehub"]])
def test_configured_audience_accepts_a_match(aud: object) -> None:
    hs(audience="wirehub").verify_connect_token(hmac_token({"aud": aud}))


@pytest.mark.parametrize("claims", [{}, {"aud": "other"}, {"aud": ["other"]}, {"aud": "wire"}])
def test_configured_audience_rejects_a_wrong_or_missing_aud(claims: dict[str, Any]) -> None:
    assert_invalid(hs(audience="wirehub"), hmac_token(claims))


def test_audience_is_not_checked_unless_configured() -> None:
    hs().verify_connect_token(hmac_token({"aud": "somebody-else"}))


def test_configured_issuer_accepts_a_match() -> None:
    hs(issuer="https://idp.example").verify_connect_token(
        hmac_token({"iss": "https://idp.example"})
    )


@pytest.mark.parametrize(
    "claims",
    [{}, {"iss": "https://evil.example"}, {"iss": "https://idp"}, {"iss": ["https://idp.example"]}],
)
def test_configured_issuer_rejects_a_wrong_or_missing_iss(claims: dict[str, Any]) -> None:
    assert_invalid(hs(issuer="https://idp.example"), hmac_token(claims))


def test_issuer_is_not_checked_unless_configured() -> None:
    hs().verify_connect_token(hmac_token({"iss": "anyone"}))


# Subscription tokens (§7.2).


def test_subscription_token_is_accepted() -> None:
    claims = {
        "sub": "42",
        "channel": "$private",
        "client": "c1",
        "exp": NOW + 60,
        "info": {"role": "mod"},
        "b64data": base64.b64encode(b"\x00hi").decode(),
        "override": {"presence": {"value": True}},
    }
    assert hs().verify_subscription_token(hmac_token(claims)) == SubscriptionToken(
        user="42",
        channel="$private",
        client="c1",
        expire_at=NOW + 60,
        info=b'{"role":"mod"}',
        data=b"\x00hi",
        override={"presence": {"value": True}},
    )


def test_subscription_token_defaults() -> None:
    token = hmac_token({"channel": "news", "data": {"x": 1}, "expire_at": 0, "exp": NOW + 9})
    assert hs().verify_subscription_token(token) == SubscriptionToken(
        user="", channel="news", client="", expire_at=None, info=b"", data=b'{"x":1}', override={}
    )


def test_expired_subscription_token_is_error_109() -> None:
    token = hmac_token({"channel": "news", "exp": NOW - 1})
    assert assert_expired(hs().verify_subscription_token, token) is not ERROR_TOKEN_EXPIRED


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "",
        hmac_token({"channel": "news"}, OTHER_SECRET),
        f"{segment({'alg': 'none'})}.{segment({'channel': 'news'})}.",
        hmac_token({"sub": "42"}),
        hmac_token({"channel": ""}),
        hmac_token({"channel": 42}),
        hmac_token({"channel": "news", "client": 7}),
        hmac_token({"channel": "news", "override": ["presence"]}),
        hmac_token({"channel": "news", "b64data": "%%%"}),
        hmac_token({"channel": "news", "exp": "tomorrow"}),
    ],
    ids=[
        "garbage",
        "empty",
        "wrong-secret",
        "alg-none",
        "no-channel",
        "empty-channel",
        "channel-not-string",
        "client-not-string",
        "override-not-object",
        "bad-b64data",
        "exp-not-number",
    ],
)
def test_bad_subscription_token_is_permission_denied(token: str) -> None:
    assert assert_denied(hs(), token) is not ERROR_PERMISSION_DENIED


def test_subscription_token_with_wrong_audience_is_permission_denied() -> None:
    assert_denied(hs(audience="wirehub"), hmac_token({"channel": "news", "aud": "other"}))


def test_subscription_token_is_not_a_connection_token() -> None:
    assert_invalid(hs(), hmac_token({"sub": "42", "channel": "news"}))


# Construction.


def test_from_config_without_keys_is_none() -> None:
    assert JwtVerifier.from_config(TokenConfig()) is None
    assert JwtVerifier.from_config(TokenConfig(audience="a", issuer="i", leeway=5)) is None


@pytest.mark.parametrize("option", sorted(ALL_KEYS))
def test_from_config_with_one_key_builds_a_verifier(option: str) -> None:
    config = TokenConfig(**{option: ALL_KEYS[option]})
    assert isinstance(JwtVerifier.from_config(config), JwtVerifier)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("rsa_public_key", "not a pem", "rsa_public_key is not a valid PEM public key"),
        ("ecdsa_public_key", "not a pem", "ecdsa_public_key is not a valid PEM public key"),
        ("rsa_public_key", EC_PEM, "does not hold an RSA public key"),
        ("ecdsa_public_key", RSA_PEM, "does not hold an EC public key"),
        ("ecdsa_public_key", _public_pem(ec.generate_private_key(ec.SECP256K1())), "curve"),
        (
            "rsa_public_key",
            RSA_KEY.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode(),
            "not a valid PEM public key",
        ),
    ],
    ids=["rsa-garbage", "ec-garbage", "ec-as-rsa", "rsa-as-ec", "secp256k1", "private-key"],
)
def test_bad_key_fails_at_construction(option: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        JwtVerifier(TokenConfig(**{option: value}))
    with pytest.raises(ValueError, match=message):
        JwtVerifier.from_config(TokenConfig(**{option: value}))


# Errors and secrecy.


def test_every_raise_is_a_fresh_instance() -> None:
    token = hmac_token({"sub": "42"}, OTHER_SECRET)
    first, second = assert_invalid(hs(), token), assert_invalid(hs(), token)
    assert first is not second
    assert first is not DISCONNECT_INVALID_TOKEN


def test_the_token_leaks_into_no_log_and_no_exception(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    header, payload, _ = hmac_token({"sub": "secret-user"}).split(".")
    token = f"{header}.{payload}.{b64url(b'forged')}"
    error: BaseException | None = assert_invalid(hs(), token)
    while error is not None:
        for text in (str(error), repr(error), *map(str, error.args)):
            assert payload not in text
            assert "secret-user" not in text
        error = error.__cause__ or error.__context__
    assert payload not in caplog.text
    assert "secret-user" not in caplog.text


# Properties: nothing but ClientError or Disconnect ever escapes.

VERIFIER = make(**ALL_KEYS)
ALGORITHMS = ["HS256", "HS384", "HS512", "RS256", "RS512", "ES256", "ES384", "none", "", "PS256"]
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
CLAIM_NAMES = [
    "sub", "exp", "nbf", "iat", "aud", "iss", "jti", "expire_at", "info", "b64info",
    "meta", "channels", "subs", "channel", "client", "data", "b64data", "override",
]  # fmt: skip
claims_strategy = st.fixed_dictionaries(
    {},
    optional={
        **{name: json_values for name in CLAIM_NAMES},
        "exp": st.integers(NOW - 100, NOW + 100) | json_values,
        "channel": st.text(max_size=8) | json_values,
    },
)


def _verify_both(token: Any) -> None:
    for verify in (VERIFIER.verify_connect_token, VERIFIER.verify_subscription_token):
        with contextlib.suppress(ClientError, Disconnect):
            verify(token)


@given(st.text())
@settings(deadline=None)
def test_arbitrary_text_raises_only_protocol_errors(token: str) -> None:
    _verify_both(token)


@given(st.lists(st.text(alphabet=B64URL + "=.", max_size=40), min_size=1, max_size=4))
@settings(deadline=None)
def test_arbitrary_segments_raise_only_protocol_errors(segments: list[str]) -> None:
    _verify_both(".".join(segments))


@given(
    st.dictionaries(st.text(max_size=5), json_values, max_size=3).flatmap(
        lambda extra: st.sampled_from(ALGORITHMS).map(lambda alg: {**extra, "alg": alg})
    ),
    json_values,
    st.binary(max_size=300),
)
@settings(deadline=None)
def test_well_formed_forgeries_raise_only_protocol_errors(
    header: dict[str, Any], claims: object, signature: bytes
) -> None:
    token = f"{segment(header)}.{segment(claims)}.{b64url(signature)}"
    for verify in (VERIFIER.verify_connect_token, VERIFIER.verify_subscription_token):
        with pytest.raises((ClientError, Disconnect)):
            verify(token)


@given(claims_strategy)
@settings(deadline=None, max_examples=500)
def test_authentic_tokens_with_arbitrary_claims_parse_or_raise_protocol_errors(
    claims: dict[str, Any],
) -> None:
    token = hmac_token(claims)
    try:
        connect = VERIFIER.verify_connect_token(token)
    except (ClientError, Disconnect):
        pass
    else:
        assert isinstance(connect.user, str)
        assert isinstance(connect.info, bytes)
        assert connect.expire_at is None or isinstance(connect.expire_at, int)
    code = None
    try:
        subscription = VERIFIER.verify_subscription_token(token)
    except ClientError as error:
        code = error.code
    else:
        assert subscription.channel
    assert code in (None, 103, 109)
