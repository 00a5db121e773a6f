"""Huge, negative and odd numbers in JWT time claims (reliability.md A9): rejected, or
a ``ttl`` clamped to the protocol's ``uint32`` on the wire; never an overflowed value,
never an exception escaping. Real HS256 tokens through the real verifier, then through
a Node to JSON and Protobuf clients (FakeTransport), for connection tokens, refresh and
subscription tokens.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from centrifuge.protocol import client_pb2 as pb

from tests.auth.test_jwt import NOW, SECRET, assert_expired, assert_invalid, hmac_token, hs
from tests.core.fakes import FakeClock, connect, frame, make_config, pb_frame
from wirehub import Node
from wirehub.core.expiry import MAX_TIMER_DELAY, MAX_TTL
from wirehub.protocol.protobuf_codec import PROTOBUF_CODEC

pytestmark = pytest.mark.anyio

FAR = [
    pytest.param({"exp": 10**30}, id="exp=10**30"),
    pytest.param({"exp": 1e30}, id="exp=1e30"),
    pytest.param({"exp": 1.7e308}, id="exp=1.7e308"),
    pytest.param({"exp": 10**400}, id="exp=10**400"),
    pytest.param({"expire_at": 10**30}, id="expire_at=10**30"),
    pytest.param({"expire_at": 2**64 + 1, "exp": 2**40}, id="expire_at>uint64"),
]


@pytest.mark.parametrize("claims", FAR)
def test_far_expiry_claims_verify(claims: dict[str, Any]) -> None:
    token = hs().verify_connect_token(hmac_token({"sub": "1", **claims}))
    assert token.expire_at is not None
    assert token.expire_at > NOW
    sub = hs().verify_subscription_token(hmac_token({"channel": "$c", **claims}))
    assert sub.expire_at == token.expire_at


@pytest.mark.parametrize(
    "claims", [{"exp": -1}, {"exp": -1e30}, {"exp": -(10**400)}, {"nbf": 10**30}]
)
def test_past_or_future_bounds_are_error_109(claims: dict[str, Any]) -> None:
    assert_expired(hs().verify_connect_token, hmac_token(claims))


@pytest.mark.parametrize("expire_at", [-1, -(10**30), 1e30])
def test_bad_expire_at_is_3500(expire_at: object) -> None:
    assert_invalid(hs(), hmac_token({"expire_at": expire_at}))


def test_far_in_the_past_nbf_and_odd_iat_are_fine() -> None:
    claims = {"nbf": -1e30, "iat": 10**400, "exp": NOW + 10}
    assert hs().verify_connect_token(hmac_token(claims)).expire_at == NOW + 10


NAMESPACES = [{"name": "private", "allow_publish_for_subscriber": True}]


def make_node() -> Node:
    config = make_config(
        client={"token": {"hmac_secret_key": SECRET}},
        channel={"namespaces": NAMESPACES},
    )
    # The node's default verifier reads the real clock: tokens expire far from now.
    return Node(config, clock=FakeClock(time.time()))


@pytest.mark.parametrize("claims", FAR)
async def test_connect_ttl_on_the_wire_is_clamped(claims: dict[str, Any]) -> None:
    async with make_node() as node:
        token = hmac_token({"sub": "1", **claims})
        client, transport = await connect(node, token)
        result = transport.messages[0]["connect"]
        assert (result["expires"], result["ttl"]) == (True, MAX_TTL)
        assert client._expire_timer is not None
        assert client._expire_timer.when() - node.loop.time() <= MAX_TIMER_DELAY
        _, pb_transport = await connect(node, token, codec=PROTOBUF_CODEC)
        reply = pb_transport.replies[0]  # type: ignore[attr-defined]
        assert (reply.connect.expires, reply.connect.ttl) == (True, MAX_TTL)


async def test_refresh_and_subscription_tokens_are_clamped_too() -> None:
    async with make_node() as node:
        client, transport = await connect(node, hmac_token({"sub": "1", "exp": 2**40}))
        refresh = hmac_token({"sub": "1", "exp": 1e30})
        client.handle_frame(frame({"refresh": {"token": refresh}, "id": 2}))
        result = (await transport.next_message())["refresh"]
        assert (result["expires"], result["ttl"]) == (True, MAX_TTL)

        sub_token = hmac_token({"sub": "1", "channel": "$private:1", "exp": 10**400})
        request = {"channel": "$private:1", "token": sub_token}
        client.handle_frame(frame({"subscribe": request, "id": 3}))
        result = (await transport.next_message())["subscribe"]
        assert (result["expires"], result["ttl"]) == (True, MAX_TTL)
        client.handle_frame(frame({"sub_refresh": request, "id": 4}))
        result = (await transport.next_message())["sub_refresh"]
        assert (result["expires"], result["ttl"]) == (True, MAX_TTL)

        pb_client, pb_transport = await connect(
            node, hmac_token({"sub": "1"}), codec=PROTOBUF_CODEC
        )
        pb_request = pb.SubscribeRequest(channel="$private:1", token=sub_token)
        pb_client.handle_frame(pb_frame(pb.Command(id=2, subscribe=pb_request)))
        reply = await pb_transport.next_reply()  # type: ignore[attr-defined]
        assert (reply.subscribe.expires, reply.subscribe.ttl) == (True, MAX_TTL)
        assert not transport.closed
