"""The server API of a real ``wirehub serve``, driven by the ``cent`` SDK (sync and async,
unchanged from PyPI) and by the ``wirehub`` CLI verbs, its effects seen by real
centrifuge-python clients; metrics, health, the internal port and JSON logs of the
same server.

One server for the module (tests use distinct users and channels, so they stay
independent): the API, metrics, health and readiness on the internal port, client
connections on the main one.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import pytest
from cent import (
    AsyncClient,
    BatchRequest,
    BroadcastRequest,
    ChannelsRequest,
    Client as Cent,
    DisconnectRequest,
    HistoryRemoveRequest,
    HistoryRequest,
    InfoRequest,
    PresenceRequest,
    PresenceStatsRequest,
    PublishRequest,
    RefreshRequest,
    SubscribeRequest,
    UnsubscribeRequest,
)
from cent.dto import Disconnect as CentDisconnect
from cent.exceptions import CentApiResponseError, CentUnauthorizedError
from centrifuge import (
    Client,
    ClientEventHandler,
    ConnectedContext,
    ConnectingContext,
    DisconnectedContext,
    PublicationContext,
    ServerPublicationContext,
    ServerSubscribedContext,
    ServerUnsubscribedContext,
    SubscriptionEventHandler,
)
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from tests.interop.helpers import SECRET, EventLog, event, make_token
from tests.support.pysdk import disconnect
from tests.support.server import ServerProcess, serving
from wirehub.cli import main

pytestmark = [pytest.mark.anyio, pytest.mark.interop]

KEY = "api-test-key-0123456789"

CONFIG = f"""
[server]
log_level = "debug"
internal_port = 0

[http_api]
key = "{KEY}"

[prometheus]
enabled = true

[log]
format = "json"

[client.token]
hmac_secret_key = "{SECRET}"

[[channel.namespaces]]
name = "news"
allow_subscribe_for_client = true

[[channel.namespaces]]
name = "bin"
allow_subscribe_for_client = true
publication_data_format = "binary"

[[channel.namespaces]]
name = "room"
allow_subscribe_for_client = true
presence = true
history_size = 10
history_ttl = 300
"""


@dataclass
class Running:
    process: ServerProcess
    internal_port: int

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.internal_port}/api"

    @property
    def internal_url(self) -> str:
        return f"http://127.0.0.1:{self.internal_port}"

    def cent(self, key: str = KEY) -> Cent:
        return Cent(self.api_url, key)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with serving(CONFIG, tmp_path_factory.mktemp("server-api")) as process:
        match = process.wait_for(r"internal endpoints at http://127\.0\.0\.1:(\d+)")
        yield Running(process, int(match.group(1)))


class Events(ClientEventHandler):
    """A client's events, server-side subscriptions' included."""

    def __init__(self, log: EventLog) -> None:
        self.log = log

    async def on_connecting(self, ctx: ConnectingContext) -> None:
        self.log.add({"event": "connecting", "code": ctx.code, "reason": ctx.reason})

    async def on_connected(self, ctx: ConnectedContext) -> None:
        self.log.add({"event": "connected", "client": ctx.client})

    async def on_disconnected(self, ctx: DisconnectedContext) -> None:
        self.log.add({"event": "disconnected", "code": ctx.code, "reason": ctx.reason})

    async def on_subscribed(self, ctx: ServerSubscribedContext) -> None:
        self.log.add({"event": "server_subscribed", "channel": ctx.channel})

    async def on_unsubscribed(self, ctx: ServerUnsubscribedContext) -> None:
        self.log.add({"event": "server_unsubscribed", "channel": ctx.channel})

    async def on_publication(self, ctx: ServerPublicationContext) -> None:
        self.log.add({"event": "publication", "channel": ctx.channel, "data": ctx.pub.data})


class SubEvents(SubscriptionEventHandler):
    def __init__(self, log: EventLog, channel: str) -> None:
        self.log, self.channel = log, channel

    async def on_subscribed(self, ctx: Any) -> None:
        self.log.add({"event": "subscribed", "channel": self.channel})

    async def on_publication(self, ctx: PublicationContext) -> None:
        pub = ctx.pub
        self.log.add(
            {"event": "publication", "channel": self.channel, "data": pub.data, "tags": pub.tags}
        )


@dataclass
class Sdk:
    client: Client
    log: EventLog
    id: str

    async def subscribe(self, channel: str) -> None:
        sub = self.client.new_subscription(channel, events=SubEvents(self.log, channel))
        await sub.subscribe()
        await self.log.wait_for(event("subscribed", channel=channel))


@asynccontextmanager
async def sdk(server: Running, user: str, *, protobuf: bool = False) -> AsyncIterator[Sdk]:
    """A connected centrifuge-python client of ``user``; disconnected at the end."""
    log = EventLog(f"client of {user}")
    client = Client(
        server.process.ws_url,
        events=Events(log),
        token=make_token(user),
        use_protobuf=protobuf,
        proxy=None,
    )
    try:
        await client.connect()
        connected = await log.wait_for(event("connected"))
        yield Sdk(client, log, str(connected["client"]))
    finally:
        with anyio.CancelScope(shield=True):
            await disconnect(client)


async def call(function: Any, *args: Any) -> Any:
    """A blocking cent call, off the event loop the SDK clients run in."""
    return await anyio.to_thread.run_sync(function, *args)


# Every method, through cent.


async def test_publish_with_tags_and_idempotency_key(server: Running) -> None:
    cent = server.cent()
    async with sdk(server, "pub-1") as reader:
        await reader.subscribe("room:pub")
        request = PublishRequest(
            channel="room:pub", data={"n": 1}, tags={"k": "v"}, idempotency_key="once"
        )
        first = await call(cent.publish, request)
        again = await call(cent.publish, request)
        assert first.offset >= 1
        assert first.epoch
        assert (again.offset, again.epoch) == (first.offset, first.epoch)
        await call(cent.publish, PublishRequest(channel="room:pub", data="marker"))
        await reader.log.wait_for(event("publication", data="marker"))
        publications = reader.log.matching(event("publication"))
        assert [p["data"] for p in publications] == [{"n": 1}, "marker"]
        assert publications[0]["tags"] == {"k": "v"}
    cent.close()


async def test_b64data_reaches_a_protobuf_client_as_bytes(server: Running) -> None:
    """Binary data goes to a namespace whose publication_data_format is "binary"."""
    payload = b"\x00\x01binary\xff"
    cent = server.cent()
    async with sdk(server, "pub-2", protobuf=True) as reader:
        await reader.subscribe("bin:x")
        encoded = base64.b64encode(payload).decode()
        request = PublishRequest(channel="bin:x", data=None, b64data=encoded)
        assert (await call(cent.publish, request)).offset == 0  # bin keeps no history
        received = await reader.log.wait_for(event("publication", channel="bin:x"))
        assert received["data"] == payload
    cent.close()


async def test_binary_b64data_into_a_json_namespace_is_107(server: Running) -> None:
    """What JSON subscribers could not parse is refused at publish, never delivered."""
    cent = server.cent()
    encoded = base64.b64encode(b"\x00\x01binary\xff").decode()
    with pytest.raises(CentApiResponseError) as refused:
        await call(cent.publish, PublishRequest(channel="news:bin", data=None, b64data=encoded))
    assert refused.value.code == 107
    json_in_b64 = base64.b64encode(b'{"ok": true}').decode()
    request = PublishRequest(channel="news:bin", data=None, b64data=json_in_b64)
    assert (await call(cent.publish, request)).offset == 0  # JSON bytes are fine
    cent.close()


async def test_broadcast_with_the_async_client(server: Running) -> None:
    async with AsyncClient(server.api_url, KEY) as cent, sdk(server, "bc-1") as reader:
        await reader.subscribe("news:bc1")
        await reader.subscribe("room:bc2")
        channels = ["news:bc1", "room:bc2", "nowhere:x"]
        result = await cent.broadcast(BroadcastRequest(channels=channels, data={"all": 1}))
        first, second, third = result.responses
        assert first.error is None
        assert first.result is not None
        assert second.result is not None
        assert second.result.offset == 1
        assert third.error is not None
        assert third.error.code == 102
        for channel in channels[:2]:
            await reader.log.wait_for(event("publication", channel=channel, data={"all": 1}))


async def test_server_side_subscribe_and_unsubscribe(server: Running) -> None:
    async with AsyncClient(server.api_url, KEY) as cent, sdk(server, "srv-1") as reader:
        await cent.subscribe(SubscribeRequest(user="srv-1", channel="news:srv"))
        await reader.log.wait_for(event("server_subscribed", channel="news:srv"))
        await cent.publish(PublishRequest(channel="news:srv", data={"hi": 1}))
        await reader.log.wait_for(event("publication", channel="news:srv", data={"hi": 1}))
        await cent.unsubscribe(UnsubscribeRequest(user="srv-1", channel="news:srv"))
        await reader.log.wait_for(event("server_unsubscribed", channel="news:srv"))


async def test_disconnect_with_a_code_and_a_whitelist(server: Running) -> None:
    cent = server.cent()
    async with sdk(server, "dc-1") as kept, sdk(server, "dc-1") as dropped:
        request = DisconnectRequest(
            user="dc-1",
            whitelist=[kept.id],
            disconnect=CentDisconnect(code=4501, reason="bye"),
        )
        await call(cent.disconnect, request)
        await dropped.log.wait_for(event("disconnected", code=4501, reason="bye"))
        await call(cent.disconnect, DisconnectRequest(user="dc-1"))
        await kept.log.wait_for(event("disconnected", code=3503, reason="force disconnect"))
        assert not dropped.log.matching(event("disconnected", code=3503))
    cent.close()


async def test_refresh_expired_closes_with_3005(server: Running) -> None:
    """3005 is in the reconnect range: the SDK reconnects (its token is still valid)."""
    async with AsyncClient(server.api_url, KEY) as cent, sdk(server, "rf-1") as client:
        await cent.refresh(RefreshRequest(user="rf-1", client=client.id, expired=True))
        await client.log.wait_for(event("connecting", code=3005))
        await client.log.wait_for(event("connected"), count=2)


async def test_presence_history_channels_and_info(server: Running) -> None:
    cent = server.cent()
    async with sdk(server, "ph-1") as reader:
        await reader.subscribe("room:ph")
        presence = await call(cent.presence, PresenceRequest(channel="room:ph"))
        assert {c: (i.user, i.client) for c, i in presence.presence.items()} == {
            reader.id: ("ph-1", reader.id)
        }
        stats = await call(cent.presence_stats, PresenceStatsRequest(channel="room:ph"))
        assert (stats.num_clients, stats.num_users) == (1, 1)

        for n in range(3):
            await call(cent.publish, PublishRequest(channel="room:ph", data={"n": n}))
        history = await call(cent.history, HistoryRequest(channel="room:ph", limit=-1))
        assert [p.data for p in history.publications] == [{"n": 0}, {"n": 1}, {"n": 2}]
        assert [p.offset for p in history.publications] == [1, 2, 3]
        await call(cent.history_remove, HistoryRemoveRequest(channel="room:ph"))
        emptied = await call(cent.history, HistoryRequest(channel="room:ph", limit=-1))
        assert (emptied.publications, emptied.offset) == ([], 3)
        assert emptied.epoch == history.epoch

        channels = await call(cent.channels, ChannelsRequest(pattern="room:p?"))
        assert {name: c.num_clients for name, c in channels.channels.items()} == {"room:ph": 1}
        (node,) = (await call(cent.info, InfoRequest())).nodes
        assert node.uid
        assert node.name
        assert node.version
        assert node.num_clients >= 1
        assert node.num_channels >= 1
        assert node.num_subs >= 1
    cent.close()


async def test_batch_in_parallel(server: Running) -> None:
    async with AsyncClient(server.api_url, KEY) as cent:
        batch = BatchRequest(
            requests=[
                PublishRequest(channel="room:batch", data=1),
                PresenceStatsRequest(channel="room:batch"),
                InfoRequest(),
            ],
            parallel=True,
        )
        published, stats, info = (await cent.batch(batch)).replies
        assert published.offset == 1  # type: ignore[attr-defined]
        assert stats.num_clients == 0  # type: ignore[attr-defined]
        assert len(info.nodes) == 1  # type: ignore[attr-defined]


async def test_api_errors_and_a_wrong_key(server: Running) -> None:
    async with AsyncClient(server.api_url, KEY) as cent:
        with pytest.raises(CentApiResponseError) as unknown:
            await cent.publish(PublishRequest(channel="nowhere:1", data=1))
        assert unknown.value.code == 102
        with pytest.raises(CentApiResponseError) as unavailable:
            await cent.presence(PresenceRequest(channel="news:1"))
        assert unavailable.value.code == 108
    async with AsyncClient(server.api_url, "wrong") as cent:
        with pytest.raises(CentUnauthorizedError):
            await cent.info(InfoRequest())


# The wirehub CLI verbs over the same API.


def cli(server: Running, *args: str) -> tuple[int, str, str]:
    runner = CliRunner()
    result = runner.invoke(main, [*args, "--api-url", server.api_url, "--api-key", KEY])
    return result.exit_code, result.stdout, result.stderr


async def test_cli_verbs(server: Running) -> None:
    async with sdk(server, "cli-1") as reader:
        await reader.subscribe("room:cli")
        code, out, _ = await call(cli, server, "publish", "room:cli", '{"from":"cli"}')
        assert code == 0
        assert json.loads(out)["offset"] == 1
        await reader.log.wait_for(event("publication", data={"from": "cli"}))
        code, out, _ = await call(cli, server, "broadcast", "room:cli", "news:cli", "--data", "2")
        assert [r.get("error") for r in json.loads(out)["responses"]] == [None, None]
        code, out, _ = await call(cli, server, "history", "room:cli")
        assert [p["data"] for p in json.loads(out)["publications"]] == [{"from": "cli"}, 2]
        code, out, _ = await call(cli, server, "presence", "room:cli")
        assert list(json.loads(out)["presence"]) == [reader.id]
        code, out, _ = await call(cli, server, "channels", "--pattern", "room:cli")
        assert json.loads(out) == {"channels": {"room:cli": {"num_clients": 1}}}
        code, out, _ = await call(cli, server, "info", "--pretty")
        assert out.startswith("{\n")
        assert json.loads(out)["nodes"][0]["num_clients"] >= 1
        code, out, _ = await call(cli, server, "disconnect", "cli-1", "--code", "4502")
        assert (code, json.loads(out)) == (0, {})
        await reader.log.wait_for(event("disconnected", code=4502))
    code, out, err = await call(cli, server, "publish", "nowhere:1", "1")
    assert (code, out, err) == (1, "", "wirehub: error 102: unknown channel\n")
    code, out, _ = await call(cli, server, "presence-stats", "room:cli")
    assert (code, json.loads(out)) == (0, {"num_clients": 0, "num_users": 0})
    code, out, _ = await call(cli, server, "api", "history_remove", '{"channel": "room:cli"}')
    assert (code, json.loads(out)) == (0, {})
    result = await call(
        CliRunner().invoke, main, ["info", "--api-url", server.api_url, "--api-key", "wrong"]
    )
    assert result.exit_code == 1
    assert "unauthorized" in result.stderr


# Internal port, health, metrics, logs.


async def test_internal_endpoints_are_not_on_the_public_port(server: Running) -> None:
    public = server.process.http_url
    async with httpx.AsyncClient() as http:
        headers = {"X-API-Key": KEY}
        for path in ("/api/info", "/metrics", "/health", "/ready"):
            response = await http.post(f"{public}{path}", json={}, headers=headers)
            assert response.status_code == 404, path
        info = await http.post(f"{server.api_url}/info", json={}, headers=headers)
        assert info.status_code == 200
        assert (await http.get(f"{server.internal_url}/health")).json() == {}
        assert (await http.get(f"{server.internal_url}/ready")).status_code == 200


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(server: Running) -> tuple[str, Samples]:
    text = httpx.get(f"{server.internal_url}/metrics").text
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    # The parser names every counter sample <name>_total, whatever the text said.
    names = {name, f"{name}_total"}
    return sum(
        v
        for (n, sample_labels), v in samples.items()
        if n in names and labels.items() <= dict(sample_labels).items()
    )


async def test_metrics_move_with_clients_and_publications(server: Running) -> None:
    _, before = await call(scrape, server)
    cent = server.cent()
    async with sdk(server, "metrics-1") as reader:
        await reader.subscribe("room:metrics")
        await call(cent.publish, PublishRequest(channel="room:metrics", data=1))
        await reader.log.wait_for(event("publication", data=1))
        with pytest.raises(CentApiResponseError):
            await call(cent.publish, PublishRequest(channel="nowhere:1", data=1))
        text, during = await call(scrape, server)
    cent.close()
    assert value(during, "centrifugo_node_num_clients") >= 1
    assert value(during, "centrifugo_node_num_subscriptions") >= 1
    assert value(during, "centrifugo_node_build") == 1

    def grew(name: str, **labels: str) -> float:
        return value(during, name, **labels) - value(before, name, **labels)

    assert grew("centrifugo_client_connections_accepted", transport="websocket") >= 1
    assert grew("centrifugo_client_subscriptions_accepted") >= 1
    assert grew("centrifugo_transport_messages_received", frame_type="subscribe") >= 1
    assert grew("centrifugo_transport_messages_sent", frame_type="connect") >= 1
    assert grew("centrifugo_transport_messages_sent", frame_type="push_publication") >= 1
    assert grew("centrifugo_transport_messages_sent_size", frame_type="push_publication") > 0
    assert grew("centrifugo_node_messages_sent_count", type="publication") >= 1
    assert grew("centrifugo_node_messages_received_count", type="publication") >= 1
    assert grew("centrifugo_client_command_duration_seconds_histogram_count", method="subscribe")
    assert grew("centrifugo_api_command_duration_seconds_histogram_count", method="publish")
    assert grew("centrifugo_api_command_errors_total", method="publish", error="102") == 1
    assert value(during, "process_resident_memory_bytes") > 0
    # Centrifugo's names, as its dashboard queries them: no _total added to its counters.
    lines = text.splitlines()
    assert "# TYPE centrifugo_node_messages_sent_count counter" in lines
    assert any(line.startswith("centrifugo_node_messages_sent_count{") for line in lines)
    assert any(line.startswith("centrifugo_api_command_errors_total{") for line in lines)


async def test_logs_are_json_lines_without_secrets(server: Running) -> None:
    async with sdk(server, "log-1") as client:
        line = server.process.wait_for(rf'"client {client.id} connected')
    entry = json.loads(line.string)
    assert (entry["level"], entry["user"], entry["client"]) == ("info", "log-1", client.id)
    server.process.wait_for(rf'"client {client.id} closed: ')
    for text in server.process.lines:
        json.loads(text)  # every line is one JSON object
    assert KEY not in server.process.log
    assert SECRET not in server.process.log
