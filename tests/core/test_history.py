"""History, positioning and recovery through a Node (centrifugo-protocol.md §5, §8.3).

The ``history`` command (§5.6), the stream model (§5.1: offsets from 1, epochs,
history_size and history_ttl), what a subscribe result says (§5.2), recovery (§5.4),
gap detection (§5.7), and payloads from Protobuf clients reaching JSON clients through
history and recovery (§11.1; what they may publish: tests/core/test_payloads.py). Every test runs a Node with a MemoryBroker (whose
history read can be held at a gate) and FakeTransport clients.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from centrifuge.protocol import client_pb2 as pb
from msgspec import Raw

from tests.core.fakes import (
    FakeClock,
    FakeTransport,
    FakeVerifier,
    GatedBroker,
    connect,
    frame,
    make_config,
    pb_frame,
)
from wirehub import Node
from wirehub.core.client import Client
from wirehub.protocol.protobuf_codec import PROTOBUF_CODEC
from wirehub.protocol.types import Publication, StreamPosition

pytestmark = pytest.mark.anyio

HISTORY = {"history_size": 10, "history_ttl": 300}

NAMESPACES: list[dict[str, Any]] = [
    # History readable by any authenticated user, who may therefore ask for
    # positioning and recovery.
    {
        "name": "h",
        **HISTORY,
        "allow_subscribe_for_client": True,
        "allow_publish_for_client": True,
        "allow_history_for_client": True,
    },
    # Three publications kept; recovery for everyone.
    {
        "name": "small",
        "history_size": 3,
        "history_ttl": 300,
        "allow_subscribe_for_client": True,
        "allow_history_for_client": True,
        "force_recovery": True,
    },
    {
        "name": "sub",
        **HISTORY,
        "allow_subscribe_for_client": True,
        "allow_history_for_subscriber": True,
    },
    {
        "name": "anon",
        **HISTORY,
        "allow_subscribe_for_client": True,
        "allow_subscribe_for_anonymous": True,
        "allow_history_for_client": True,
        "allow_history_for_anonymous": True,
    },
    # History off: recovery and positioning can't be on either.
    {
        "name": "off",
        "allow_subscribe_for_client": True,
        "allow_history_for_client": True,
        "force_recovery": True,
        "force_positioning": True,
    },
    # History kept, but nobody may read it (nor ask for positioning/recovery).
    {"name": "closed", **HISTORY, "allow_subscribe_for_client": True},
    {"name": "ttl", "history_size": 10, "history_ttl": 10, "allow_history_for_client": True},
    {"name": "pos", **HISTORY, "allow_subscribe_for_client": True, "force_positioning": True},
    {
        "name": "rec",
        **HISTORY,
        "allow_subscribe_for_client": True,
        "allow_publish_for_client": True,
        "force_recovery": True,
    },
    {"name": "allowrec", **HISTORY, "allow_subscribe_for_client": True, "allow_recovery": True},
    {"name": "allowpos", **HISTORY, "allow_subscribe_for_client": True, "allow_positioning": True},
    # No history at all.
    {"name": "live", "allow_subscribe_for_client": True, "allow_publish_for_client": True},
    # Binary payloads allowed: only Protobuf clients may subscribe or read history.
    {
        "name": "bin",
        **HISTORY,
        "publication_data_format": "binary",
        "allow_subscribe_for_client": True,
        "allow_publish_for_client": True,
        "allow_history_for_client": True,
        "force_recovery": True,
    },
]


def make_node(broker_clock: FakeClock | None = None, **client: Any) -> tuple[Node, GatedBroker]:
    broker = GatedBroker(clock=broker_clock or FakeClock())
    config = make_config(
        client={"allow_anonymous_connect_without_token": True, **client},
        channel={"namespaces": NAMESPACES},
    )
    return Node(config, broker=broker, token_verifier=FakeVerifier()), broker


async def command(transport: FakeTransport, client: Client, **cmd: Any) -> dict[str, Any]:
    client.handle_frame(frame(cmd))
    return await transport.next_message()


async def publish_n(node: Node, channel: str, count: int) -> StreamPosition:
    """Publish {"n": 1} .. {"n": count}; return the last position."""
    position = StreamPosition()
    for n in range(1, count + 1):
        position = await node.publish(channel, {"n": n})
    return position


def stored(*offsets: int) -> list[dict[str, Any]]:
    """Publications made by publish_n, as a JSON client sees them."""
    return [{"data": {"n": n}, "offset": n} for n in offsets]


async def history(
    transport: FakeTransport, client: Client, channel: str, **request: Any
) -> dict[str, Any]:
    return await command(transport, client, history={"channel": channel, **request}, id=9)


# The history command.


async def test_offsets_start_at_one_and_grow_by_one() -> None:
    node, _ = make_node()
    async with node:
        positions = [await node.publish("h:1", {"n": n}) for n in range(1, 4)]
        assert [p.offset for p in positions] == [1, 2, 3]
        (epoch,) = {p.epoch for p in positions}
        assert len(epoch) == 8
        client, transport = await connect(node)
        reply = await history(transport, client, "h:1", limit=-1)
        assert reply == {
            "id": 9,
            "history": {"publications": stored(1, 2, 3), "epoch": epoch, "offset": 3},
        }


async def test_limit_zero_is_the_position_only_with_every_key() -> None:
    node, _ = make_node()
    async with node:
        client, transport = await connect(node)
        empty = await history(transport, client, "h:1")
        assert empty["history"]["publications"] == []
        assert empty["history"]["offset"] == 0  # written even though zero
        epoch = empty["history"]["epoch"]
        assert epoch
        top = await publish_n(node, "h:1", 3)
        assert top.epoch == epoch  # the stream read first keeps its epoch
        reply = await history(transport, client, "h:1", limit=0)
        assert reply == {"id": 9, "history": {"publications": [], "epoch": epoch, "offset": 3}}


async def test_positive_limit_returns_the_oldest_first() -> None:
    node, _ = make_node()
    async with node:
        top = await publish_n(node, "h:1", 5)
        client, transport = await connect(node)
        reply = await history(transport, client, "h:1", limit=2)
        assert reply["history"] == {"publications": stored(1, 2), "epoch": top.epoch, "offset": 5}


async def test_negative_limit_is_all_capped_by_history_max_publication_limit() -> None:
    node, _ = make_node(history_max_publication_limit=3)
    async with node:
        await publish_n(node, "h:1", 5)
        client, transport = await connect(node)
        reply = await history(transport, client, "h:1", limit=-1)
        assert reply["history"]["publications"] == stored(1, 2, 3)
        reply = await history(transport, client, "h:1", limit=100)
        assert reply["history"]["publications"] == stored(1, 2, 3)


async def test_since_returns_what_follows_the_offset() -> None:
    node, _ = make_node()
    async with node:
        top = await publish_n(node, "h:1", 5)
        client, transport = await connect(node)
        since = {"offset": 2, "epoch": top.epoch}
        reply = await history(transport, client, "h:1", limit=-1, since=since)
        assert reply["history"] == {
            "publications": stored(3, 4, 5),
            "epoch": top.epoch,
            "offset": 5,
        }
        reply = await history(transport, client, "h:1", limit=2, since=since)
        assert reply["history"]["publications"] == stored(3, 4)
        at_top = {"offset": 5, "epoch": top.epoch}
        reply = await history(transport, client, "h:1", limit=-1, since=at_top)
        assert reply["history"]["publications"] == []


async def test_since_without_epoch_is_accepted() -> None:
    node, _ = make_node()
    async with node:
        await publish_n(node, "h:1", 3)
        client, transport = await connect(node)
        reply = await history(transport, client, "h:1", limit=-1, since={"offset": 1})
        assert reply["history"]["publications"] == stored(2, 3)


async def test_since_an_evicted_offset_starts_at_the_oldest_kept() -> None:
    node, _ = make_node()
    async with node:
        top = await publish_n(node, "small:1", 5)
        client, transport = await connect(node)
        since = {"offset": 1, "epoch": top.epoch}
        reply = await history(transport, client, "small:1", limit=-1, since=since)
        assert reply["history"]["publications"] == stored(3, 4, 5)


async def test_reverse_is_newest_first() -> None:
    node, _ = make_node()
    async with node:
        top = await publish_n(node, "h:1", 5)
        client, transport = await connect(node)
        reply = await history(transport, client, "h:1", limit=-1, reverse=True)
        assert reply["history"]["publications"] == stored(5, 4, 3, 2, 1)
        reply = await history(transport, client, "h:1", limit=2, reverse=True)
        assert reply["history"] == {"publications": stored(5, 4), "epoch": top.epoch, "offset": 5}


async def test_reverse_with_since_is_what_precedes_the_offset_descending() -> None:
    node, _ = make_node()
    async with node:
        top = await publish_n(node, "h:1", 5)
        client, transport = await connect(node)
        since = {"offset": 4, "epoch": top.epoch}
        reply = await history(transport, client, "h:1", limit=-1, since=since, reverse=True)
        assert reply["history"]["publications"] == stored(3, 2, 1)
        reply = await history(transport, client, "h:1", limit=2, since=since, reverse=True)
        assert reply["history"]["publications"] == stored(3, 2)


async def test_reverse_with_since_offset_zero_is_107() -> None:
    node, _ = make_node()
    async with node:
        top = await publish_n(node, "h:1", 2)
        client, transport = await connect(node)
        since = {"offset": 0, "epoch": top.epoch}
        reply = await history(transport, client, "h:1", limit=-1, since=since, reverse=True)
        assert reply == {"id": 9, "error": {"code": 107, "message": "bad request"}}
        assert not transport.closed


async def test_since_with_another_epoch_is_112() -> None:
    node, _ = make_node()
    async with node:
        await publish_n(node, "h:1", 2)
        client, transport = await connect(node)
        since = {"offset": 1, "epoch": "NotThis1"}
        reply = await history(transport, client, "h:1", limit=-1, since=since)
        assert reply == {"id": 9, "error": {"code": 112, "message": "unrecoverable position"}}
        assert not transport.closed


@pytest.mark.parametrize(
    ("token", "channel", "subscribe", "error"),
    [
        ("user:42", "off:1", False, (108, "not available")),
        ("user:42", "closed:1", False, (103, "permission denied")),
        ("user:42", "closed:1", True, (103, "permission denied")),
        ("user:42", "nope:1", False, (102, "unknown channel")),
        ("user:42", "h:" + "x" * 300, False, (107, "bad request")),
        ("user:42", "sub:1", False, (103, "permission denied")),  # subscribers only
        ("user:42", "sub:1", True, None),
        ("", "h:1", False, (103, "permission denied")),  # anonymous needs _for_anonymous
        ("", "anon:1", False, None),
        ("user:42", "anon:1", False, None),
    ],
)
async def test_history_permissions(
    token: str, channel: str, subscribe: bool, error: tuple[int, str] | None
) -> None:
    node, _ = make_node()
    async with node:
        client, transport = await connect(node, token)
        if subscribe:
            reply = await command(transport, client, subscribe={"channel": channel}, id=2)
            assert "subscribe" in reply
        reply = await history(transport, client, channel, limit=-1)
        if error is None:
            assert reply["history"]["publications"] == []
        else:
            assert reply == {"id": 9, "error": {"code": error[0], "message": error[1]}}
        assert not transport.closed


async def test_history_size_trims_the_oldest() -> None:
    node, _ = make_node()
    async with node:
        top = await publish_n(node, "small:1", 5)
        assert top.offset == 5
        client, transport = await connect(node)
        reply = await history(transport, client, "small:1", limit=-1)
        assert reply["history"] == {
            "publications": stored(3, 4, 5),
            "epoch": top.epoch,
            "offset": 5,
        }


async def test_history_ttl_expires_publications_but_not_the_position() -> None:
    clock = FakeClock()
    node, _ = make_node(clock)
    async with node:
        await node.publish("ttl:1", {"n": 1})
        clock.advance(5)
        top = await node.publish("ttl:1", {"n": 2})
        client, transport = await connect(node)
        clock.advance(5)  # the first is 10 s old: gone
        reply = await history(transport, client, "ttl:1", limit=-1)
        assert reply["history"] == {"publications": stored(2), "epoch": top.epoch, "offset": 2}
        clock.advance(5)
        reply = await history(transport, client, "ttl:1", limit=-1)
        assert reply["history"] == {"publications": [], "epoch": top.epoch, "offset": 2}
        assert (await node.publish("ttl:1", {"n": 3})).offset == 3


async def test_client_publications_keep_their_info_in_history() -> None:
    node, _ = make_node()
    async with node:
        client, transport = await connect(node)
        reply = await command(transport, client, publish={"channel": "h:1", "data": "hi"}, id=2)
        assert reply == {"id": 2, "publish": {}}
        reply = await history(transport, client, "h:1", limit=-1)
        assert reply["history"]["publications"] == [
            {"data": "hi", "info": {"user": "42", "client": client.id}, "offset": 1}
        ]


async def test_publications_carry_offsets_only_with_history() -> None:
    node, _ = make_node()
    async with node:
        client, transport = await connect(node)
        for n, channel in enumerate(("h:1", "live:1"), start=2):
            await command(transport, client, subscribe={"channel": channel}, id=n)
        await node.publish("h:1", "a")
        await node.publish("live:1", "b")
        assert await transport.next_message() == {
            "push": {"channel": "h:1", "pub": {"data": "a", "offset": 1}}
        }
        assert await transport.next_message() == {
            "push": {"channel": "live:1", "pub": {"data": "b"}}
        }


async def test_node_history_api() -> None:
    node, _ = make_node()
    async with node:
        top = await publish_n(node, "h:1", 3)
        page = await node.history("h:1")
        assert (page.publications, page.position) == ([], top)
        page = await node.history("h:1", limit=-1, since=StreamPosition(offset=1), reverse=False)
        assert [p.offset for p in page.publications] == [2, 3]
        page = await node.history("h:1", limit=1, reverse=True)
        assert [p.offset for p in page.publications] == [3]


# What a subscribe result says (§5.2).


async def subscribe(
    transport: FakeTransport, client: Client, channel: str, **request: Any
) -> dict[str, Any]:
    return await command(transport, client, subscribe={"channel": channel, **request}, id=2)


@pytest.mark.parametrize(
    ("channel", "request_"),
    [
        ("h:1", {}),
        ("h:1", {"flag": 1}),
        ("closed:1", {"positioned": True, "recoverable": True}),  # not permitted
        ("allowrec:1", {"positioned": True}),  # only recovery may be asked for
        ("allowpos:1", {"recoverable": True}),
        ("off:1", {"positioned": True, "recoverable": True}),  # no history: neither
        ("live:1", {}),
    ],
)
async def test_plain_subscription_has_no_stream_fields(
    channel: str, request_: dict[str, Any]
) -> None:
    node, _ = make_node()
    async with node:
        client, transport = await connect(node)
        assert await subscribe(transport, client, channel, **request_) == {
            "id": 2,
            "subscribe": {},
        }
        assert not node.hub._positioned


@pytest.mark.parametrize(
    ("channel", "request_"),
    [
        ("pos:1", {}),
        ("allowpos:1", {"positioned": True}),
        ("h:1", {"positioned": True}),  # history access permits it
    ],
)
async def test_positioned_subscription_reports_the_top(
    channel: str, request_: dict[str, Any]
) -> None:
    node, _ = make_node()
    async with node:
        top = await publish_n(node, channel, 3)
        client, transport = await connect(node)
        assert await subscribe(transport, client, channel, **request_) == {
            "id": 2,
            "subscribe": {"epoch": top.epoch, "offset": 3, "positioned": True},
        }


@pytest.mark.parametrize(
    ("channel", "request_"),
    [
        ("rec:1", {}),
        ("small:1", {"flag": 1}),
        ("allowrec:1", {"recoverable": True}),
        ("h:1", {"recoverable": True}),
    ],
)
async def test_recoverable_subscription(channel: str, request_: dict[str, Any]) -> None:
    node, _ = make_node()
    async with node:
        top = await publish_n(node, channel, 3)
        client, transport = await connect(node)
        assert await subscribe(transport, client, channel, **request_) == {
            "id": 2,
            "subscribe": {
                "recoverable": True,
                "epoch": top.epoch,
                "offset": 3,
                "positioned": True,
            },
        }


async def test_recoverable_subscription_on_an_empty_stream() -> None:
    node, _ = make_node()
    async with node:
        client, transport = await connect(node)
        result = (await subscribe(transport, client, "rec:1"))["subscribe"]
        assert result == {"recoverable": True, "epoch": result["epoch"], "positioned": True}
        assert len(result["epoch"]) == 8
        assert (await node.publish("rec:1", 1)).epoch == result["epoch"]
        assert await transport.next_message() == {
            "push": {"channel": "rec:1", "pub": {"data": 1, "offset": 1}}
        }


@pytest.mark.parametrize("channel", ["live:1", "pos:1"])
async def test_recover_where_recovery_is_off_only_says_was_recovering(channel: str) -> None:
    node, _ = make_node()
    async with node:
        await publish_n(node, channel, 3)
        client, transport = await connect(node)
        result = (await subscribe(transport, client, channel, recover=True, offset=1))["subscribe"]
        assert result["was_recovering"] is True
        assert "recovered" not in result
        assert "publications" not in result
        assert "recoverable" not in result
        if channel == "pos:1":
            assert (result["offset"], result["positioned"]) == (3, True)


# Recovery (§5.4).


async def test_recover_success() -> None:
    node, _ = make_node()
    async with node:
        top = await publish_n(node, "rec:1", 5)
        client, transport = await connect(node)
        reply = await subscribe(
            transport, client, "rec:1", recover=True, offset=2, epoch=top.epoch, flag=1
        )
        assert reply == {
            "id": 2,
            "subscribe": {
                "recoverable": True,
                "epoch": top.epoch,
                "publications": stored(3, 4, 5),
                "recovered": True,
                "offset": 2,  # the client's offset, not the top
                "positioned": True,
                "was_recovering": True,
            },
        }
        # Live publications follow, once each and in order.
        await node.publish("rec:1", {"n": 6})
        await node.publish("rec:1", {"n": 7})
        assert [await transport.next_message() for _ in range(2)] == [
            {"push": {"channel": "rec:1", "pub": p}} for p in stored(6, 7)
        ]
        assert transport.unread == []


async def test_recover_from_the_top_recovers_nothing() -> None:
    node, _ = make_node()
    async with node:
        top = await publish_n(node, "rec:1", 3)
        client, transport = await connect(node)
        result = (
            await subscribe(transport, client, "rec:1", recover=True, offset=3, epoch=top.epoch)
        )["subscribe"]
        assert result["recovered"] is True
        assert result.get("publications", []) == []
        assert (result["offset"], result["epoch"]) == (3, top.epoch)
        assert result["was_recovering"] is True
        await node.publish("rec:1", {"n": 4})
        assert (await transport.next_message())["push"]["pub"] == stored(4)[0]


async def test_recover_without_epoch() -> None:
    """centrifuge-js omits an empty epoch and a zero offset: all of history is replayed."""
    node, _ = make_node()
    async with node:
        await publish_n(node, "rec:1", 3)
        client, transport = await connect(node)
        result = (await subscribe(transport, client, "rec:1", recover=True))["subscribe"]
        assert result["recovered"] is True
        assert result["publications"] == stored(1, 2, 3)
        assert result.get("offset", 0) == 0


@pytest.mark.parametrize(
    ("channel", "position"),
    [
        ("small:1", {"offset": 1}),  # offsets 2 and 3 were trimmed (history_size 3)
        ("rec:1", {"offset": 2, "epoch": "NotThis1"}),  # another epoch
        ("rec:1", {"offset": 9}),  # ahead of the top
    ],
)
async def test_recover_failure_reports_the_top(channel: str, position: dict[str, Any]) -> None:
    node, _ = make_node()
    async with node:
        top = await publish_n(node, channel, 5)
        client, transport = await connect(node)
        reply = await subscribe(transport, client, channel, recover=True, flag=1, **position)
        assert reply == {
            "id": 2,
            "subscribe": {
                "recoverable": True,
                "epoch": top.epoch,
                "offset": 5,
                "positioned": True,
                "was_recovering": True,
            },
        }
        # Subscribed anyway, from the top.
        await node.publish(channel, {"n": 6})
        assert (await transport.next_message())["push"]["pub"] == stored(6)[0]


async def test_recover_failure_when_more_than_the_limit_was_missed() -> None:
    node, _ = make_node(recovery_max_publication_limit=2)
    async with node:
        top = await publish_n(node, "rec:1", 5)
        client, transport = await connect(node)
        result = (
            await subscribe(transport, client, "rec:1", recover=True, offset=2, epoch=top.epoch)
        )["subscribe"]
        assert "recovered" not in result
        assert result["offset"] == 5
        # Two missed: within the limit.
        result = (
            await command(
                transport,
                client,
                subscribe={"channel": "rec:2", "recover": True, "offset": 0},
                id=3,
            )
        )["subscribe"]
        assert result["recovered"] is True


async def test_recover_failure_with_reject_flag_is_112_and_no_subscription() -> None:
    node, _ = make_node()
    async with node:
        await publish_n(node, "small:1", 5)
        client, transport = await connect(node)
        reply = await subscribe(transport, client, "small:1", recover=True, offset=1, flag=3)
        assert reply == {"id": 2, "error": {"code": 112, "message": "unrecoverable position"}}
        assert not transport.closed
        assert client.channels == {}
        assert not node.hub.has_subscribers("small:1")
        await node.publish("small:1", {"n": 6})
        # The SDK reloads its state and subscribes again, without recover.
        reply = await command(transport, client, subscribe={"channel": "small:1", "flag": 3}, id=3)
        assert reply["subscribe"]["offset"] == 6
        assert transport.unread == []


async def test_recover_success_with_reject_flag() -> None:
    node, _ = make_node()
    async with node:
        top = await publish_n(node, "rec:1", 2)
        client, transport = await connect(node)
        result = (
            await subscribe(
                transport, client, "rec:1", recover=True, offset=1, epoch=top.epoch, flag=3
            )
        )["subscribe"]
        assert result["recovered"] is True
        assert result["publications"] == stored(2)


def stream_seen(result: dict[str, Any], pushes: list[dict[str, Any]]) -> list[int]:
    """The offsets a client processes: the recovered ones, then the live ones."""
    return [p["offset"] for p in result.get("publications", [])] + [p["offset"] for p in pushes]


@pytest.mark.parametrize("read_first", [False, True], ids=["before-read", "after-read"])
@pytest.mark.parametrize("recovering", [True, False], ids=["recover", "positioned"])
async def test_publications_racing_the_history_read_arrive_once_in_order(
    read_first: bool, recovering: bool
) -> None:
    """Publications 4 and 5 are made while the subscribe reads the stream (just before,
    or just after, the broker read): each reaches the client once, in the reply or
    after it, and nothing comes before the reply."""
    node, broker = make_node()
    async with node:
        top = await publish_n(node, "rec:1", 3)
        client, transport = await connect(node)
        request: dict[str, Any] = {"channel": "rec:1", "flag": 1}
        if recovering:
            request.update(recover=True, offset=1, epoch=top.epoch)
        broker.hold(read_first=read_first)
        client.handle_frame(frame({"subscribe": request, "id": 2}))
        await broker.wait_entered()
        await node.publish("rec:1", {"n": 4})
        await node.publish("rec:1", {"n": 5})
        assert transport.unread == []
        broker.release()
        reply = await transport.next_message()
        result = reply["subscribe"]
        await node.publish("rec:1", {"n": 6})
        pushes: list[dict[str, Any]] = []
        while not pushes or pushes[-1]["offset"] != 6:
            message = await transport.next_message()
            assert message["push"]["channel"] == "rec:1"
            pushes.append(message["push"]["pub"])
        assert transport.unread == []
        if recovering:
            assert result["recovered"] is True
            assert result["offset"] == 1
            assert result["publications"] == stored(2, 3, 4, 5)
            assert pushes == stored(6)
        else:
            # The position is read before or after 4 and 5: either way the client
            # continues from the offset it was told.
            assert result["offset"] == (3 if read_first else 5)
        start = 1 if recovering else result["offset"]
        assert stream_seen(result, pushes) == list(range(start + 1, 7))
        # The hub's position for the client is the last delivered.
        assert node.hub._positioned["rec:1"][client] == StreamPosition(offset=6, epoch=top.epoch)


async def test_history_read_error_is_a_temporary_error_and_no_subscription() -> None:
    node, broker = make_node()
    async with node:
        client, transport = await connect(node)
        broker.fail = RuntimeError("broker down")
        reply = await subscribe(transport, client, "rec:1")
        assert reply == {
            "id": 2,
            "error": {"code": 100, "message": "internal server error", "temporary": True},
        }
        assert client.channels == {}
        assert not node.hub.has_subscribers("rec:1")


async def test_a_failed_subscribe_releases_the_broker_channel() -> None:
    """The broker subscribed this node to the channel for the first subscriber; when
    that subscribe fails after all, the node lets the channel go again."""
    node, broker = make_node()
    released: list[str] = []
    unsubscribe = broker.unsubscribe

    async def recording_unsubscribe(channel: str) -> None:
        released.append(channel)
        await unsubscribe(channel)

    broker.unsubscribe = recording_unsubscribe  # type: ignore[method-assign]
    async with node:
        client, transport = await connect(node)
        broker.fail = RuntimeError("broker down")
        await subscribe(transport, client, "rec:1")
        assert released == ["rec:1"]
        broker.fail = None
        reply = await command(transport, client, subscribe={"channel": "rec:1"}, id=3)
        assert reply["id"] == 3
        assert "error" not in reply
        assert released == ["rec:1"]  # a successful subscribe keeps it


# Positioning: gaps and duplicates (§5.7).


def simulated(offset: int, epoch: str) -> tuple[Publication, StreamPosition]:
    """A publication as the broker hands it over, without touching the stream."""
    return (
        Publication(data=Raw(b'{"n":%d}' % offset), offset=offset),
        StreamPosition(offset=offset, epoch=epoch),
    )


@pytest.mark.parametrize("channel", ["pos:1", "rec:1"])
async def test_gap_unsubscribes_with_2500(channel: str) -> None:
    node, _ = make_node()
    async with node:
        top = await publish_n(node, channel, 2)
        client, transport = await connect(node)
        await subscribe(transport, client, channel)
        other, other_transport = await connect(node, "user:43")
        await command(other_transport, other, subscribe={"channel": "live:1"}, id=2)
        node.handle_publication(channel, *simulated(4, top.epoch))  # 3 never arrived
        assert await transport.next_message() == {
            "push": {
                "channel": channel,
                "unsubscribe": {"code": 2500, "reason": "insufficient state"},
            }
        }
        assert channel not in client.channels
        assert not node.hub.has_subscribers(channel)
        assert not transport.closed
        await node.publish(channel, "after")
        await node.publish("live:1", "marker")
        assert (await other_transport.next_message())["push"]["pub"]["data"] == "marker"
        assert transport.unread == []
        # The SDK subscribes again, recovering where it can.
        reply = await command(transport, client, subscribe={"channel": channel}, id=3)
        assert reply["subscribe"]["offset"] == 3


async def test_epoch_change_unsubscribes_with_2500() -> None:
    node, _ = make_node()
    async with node:
        await publish_n(node, "rec:1", 2)
        client, transport = await connect(node)
        await subscribe(transport, client, "rec:1")
        node.handle_publication("rec:1", *simulated(3, "NewEpoch"))
        push = (await transport.next_message())["push"]
        assert push["unsubscribe"]["code"] == 2500
        assert "rec:1" not in client.channels


async def test_duplicate_publication_is_skipped() -> None:
    node, _ = make_node()
    async with node:
        top = await publish_n(node, "pos:1", 2)
        client, transport = await connect(node)
        await subscribe(transport, client, "pos:1")
        await node.publish("pos:1", {"n": 3})
        node.handle_publication("pos:1", *simulated(3, top.epoch))  # again
        node.handle_publication("pos:1", *simulated(1, top.epoch))  # older
        await node.publish("pos:1", {"n": 4})
        assert [(await transport.next_message())["push"]["pub"] for _ in range(2)] == stored(3, 4)
        assert transport.unread == []
        assert "pos:1" in client.channels


async def test_gap_only_affects_positioned_subscribers() -> None:
    node, _ = make_node()
    async with node:
        top = await publish_n(node, "h:1", 2)
        plain, plain_transport = await connect(node, "user:1")
        positioned, positioned_transport = await connect(node, "user:2")
        await subscribe(plain_transport, plain, "h:1")
        await subscribe(positioned_transport, positioned, "h:1", positioned=True)
        node.handle_publication("h:1", *simulated(5, top.epoch))
        assert (await plain_transport.next_message())["push"]["pub"]["offset"] == 5
        push = (await positioned_transport.next_message())["push"]
        assert push["unsubscribe"]["code"] == 2500


# Payloads from Protobuf clients, read by JSON clients through history and recovery.


async def pb_publish(node: Node, data: bytes, channel: str = "h:1") -> tuple[Client, Any]:
    """A Protobuf client (user 7) publishes ``data`` into ``channel``."""
    client, transport = await connect(node, "user:7", codec=PROTOBUF_CODEC)
    request = pb.PublishRequest(channel=channel, data=data)
    client.handle_frame(pb_frame(pb.Command(id=2, publish=request)))
    reply = await transport.next_reply()  # type: ignore[attr-defined]
    assert reply.id == 2
    assert reply.HasField("publish"), reply
    return client, transport


async def test_json_payload_with_newlines_reaches_json_history_without_them() -> None:
    node, _ = make_node()
    async with node:
        await pb_publish(node, b'{"a":\n1,\n"b":"x"}')
        client, transport = await connect(node)
        reply = await history(transport, client, "h:1", limit=-1)
        assert reply["history"]["publications"][0]["data"] == {"a": 1, "b": "x"}
        assert b"\n" not in transport.frames[-1]


async def test_json_payload_with_newlines_reaches_json_recovery_without_them() -> None:
    node, _ = make_node()
    async with node:
        pb_client, _ = await pb_publish(node, b'{"a":\n1}', channel="rec:1")
        client, transport = await connect(node)
        result = (await subscribe(transport, client, "rec:1", recover=True))["subscribe"]
        assert result["recovered"] is True
        assert result["publications"] == [
            {"data": {"a": 1}, "info": {"user": "7", "client": pb_client.id}, "offset": 1}
        ]
        assert b"\n" not in transport.frames[-1]


async def test_protobuf_subscriber_recovers_binary_payloads() -> None:
    node, _ = make_node()
    async with node:
        await pb_publish(node, b"\x00\xff", channel="bin:1")
        client, transport = await connect(node, "user:8", codec=PROTOBUF_CODEC)
        request = pb.SubscribeRequest(channel="bin:1", recover=True)
        client.handle_frame(pb_frame(pb.Command(id=2, subscribe=request)))
        reply = await transport.next_reply()  # type: ignore[attr-defined]
        assert reply.subscribe.recovered
        assert [p.data for p in reply.subscribe.publications] == [b"\x00\xff"]
        assert base64.b64decode(transport.messages[-1]["subscribe"]["publications"][0]["data"]) == (
            b"\x00\xff"
        )


async def pb_subscriber(node: Node, channel: str) -> tuple[Client, Any]:
    client, transport = await connect(node, "user:8", codec=PROTOBUF_CODEC)
    request = pb.SubscribeRequest(channel=channel)
    client.handle_frame(pb_frame(pb.Command(id=2, subscribe=request)))
    reply = await transport.next_reply()  # type: ignore[attr-defined]
    assert reply.HasField("subscribe"), reply
    return client, transport


@pytest.mark.parametrize("channel", ["live:1", "rec:1"])
async def test_json_from_a_protobuf_client_reaches_json_subscribers_without_newlines(
    channel: str,
) -> None:
    node, _ = make_node()
    async with node:
        json_client, json_transport = await connect(node)
        await subscribe(json_transport, json_client, channel)
        _, pb_transport = await pb_subscriber(node, channel)
        publisher, _ = await pb_publish(node, b'{"text":\n"hi",\n"n":1}', channel=channel)
        push = await json_transport.next_message()
        assert push["push"]["pub"]["data"] == {"text": "hi", "n": 1}
        assert push["push"]["pub"]["info"] == {"user": "7", "client": publisher.id}
        assert b"\n" not in json_transport.frames[-1]
        # The payload is stored as checked, without its (insignificant) newlines.
        reply = await pb_transport.next_reply()  # type: ignore[attr-defined]
        assert reply.push.pub.data == b'{"text":"hi","n":1}'
