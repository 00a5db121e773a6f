"""Sharded PUB/SUB on Redis Cluster (``engine.redis.sharded_pub_sub_partitions``): where
keys and connections land, and what happens when a partition's connection is lost or
sent to the wrong master.

The engine suite (``test_engines.py``) runs every broker rule against the same setup
(``redis-cluster-sharded``); here is only what is particular to it. Checks ask Redis
directly (plain redis-py clients per master), not wirehub's own slot map. A slot moves
only on a 2-master cluster of the test's own: the shared one is never reconfigured.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from msgspec import Raw
from redis.crc import key_slot
from redis.exceptions import RedisError

from tests.brokers.engines import Backend, Peer, Recorder
from tests.support.redis import RedisServer, cluster_url, eventually, unique_prefix
from wirehub.brokers.base import HistoryOptions, PublishOptions
from wirehub.brokers.redis.addresses import parse_shards
from wirehub.brokers.redis.engine import create_engine
from wirehub.brokers.redis.sharding import shard_index
from wirehub.config import ConfigError, RedisEngineConfig, load_config
from wirehub.protocol.types import ClientInfo, Publication

pytestmark = pytest.mark.anyio

KEEP = PublishOptions(history_size=10, history_ttl=60)
PARTITIONS = 8


def pub(n: int) -> Publication:
    return Publication(data=Raw(b"%d" % n))


@pytest.fixture
async def sharded() -> AsyncIterator[Backend]:
    backend = Backend("redis-cluster-sharded", cluster_url())
    assert backend.partitions == PARTITIONS
    yield backend
    await backend.close()


class Masters:
    """The cluster's masters, asked directly: slot owners, keys, PUB/SUB, clients."""

    def __init__(self, clients: dict[tuple[str, int], aioredis.Redis]) -> None:
        self.clients = clients
        self.owners: dict[int, tuple[str, int]] = {}

    @classmethod
    async def connect(cls) -> Masters:
        (spec,) = parse_shards(RedisEngineConfig(cluster_address=[cluster_url()]))
        seed = aioredis.Redis(host=spec.hosts[0][0], port=spec.hosts[0][1])
        try:
            slots = await seed.execute_command("CLUSTER", "SLOTS")
        finally:
            await seed.aclose()
        masters = cls({})
        for entry in slots:
            start, end, primary = entry[0], entry[1], entry[2]
            address = (_text(primary[0]) or spec.hosts[0][0], int(primary[1]))
            for slot in range(int(start), int(end) + 1):
                masters.owners[slot] = address
            if address not in masters.clients:
                masters.clients[address] = aioredis.Redis(host=address[0], port=address[1])
        return masters

    async def close(self) -> None:
        for client in self.clients.values():
            await client.aclose()

    async def owner(self, key: str) -> tuple[str, int]:
        client = next(iter(self.clients.values()))
        slot = int(await client.execute_command("CLUSTER", "KEYSLOT", key))
        return self.owners[slot]

    async def exists(self, key: str) -> bool:
        return bool(await self.clients[await self.owner(key)].exists(key))


@pytest.fixture
async def masters() -> AsyncIterator[Masters]:
    found = await Masters.connect()
    yield found
    await found.close()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def one_channel_per_partition() -> dict[int, str]:
    """A channel name for each partition (the mapping is pinned in the key test)."""
    channels: dict[int, str] = {}
    n = 0
    while len(channels) < PARTITIONS:
        channels.setdefault(shard_index(f"ch{n}", PARTITIONS), f"ch{n}")
        n += 1
    return channels


def pubsubs(peer: Peer) -> list[Any]:
    return peer.broker._pubsubs  # type: ignore[attr-defined, no-any-return]


def endpoints(pubsub: Any) -> tuple[tuple[str, int], tuple[str, int]]:
    """(our side, the master's side) of a partition's live connection."""
    transport = pubsub._link.connection._transport
    local = transport.get_extra_info("sockname")[:2]
    remote = transport.get_extra_info("peername")[:2]
    return (local[0], int(local[1])), (remote[0], int(remote[1]))


async def test_keys_carry_the_partition_tag(sharded: Backend, masters: Masters) -> None:
    """§1.3's sharded column: the partition (jump hash of "ch1" into 8 is 5, as
    Centrifugo computes it) is the tag of every key but presence's."""
    peer = await sharded.peer()
    p = sharded.prefix
    await peer.broker.publish("ch1", pub(1), replace(KEEP, idempotency_key="k"))
    await peer.presence.add_presence("ch1", ClientInfo(user="u", client="c"))
    for key in (f"{p}.stream.{{5}}.ch1", f"{p}.stream.meta.{{5}}.ch1", f"{p}.result.{{5}}.ch1.k"):
        assert await masters.exists(key), key
    for key in (f"{p}.presence.data.{{ch1}}", f"{p}.presence.expire.{{ch1}}"):
        assert await masters.exists(key), key
    assert not await masters.exists(f"{p}.stream.{{ch1}}")
    # The PUB/SUB channel and the service channel live in the same slot as the keys.
    slots = set()
    client = next(iter(masters.clients.values()))
    for name in (f"{p}.stream.{{5}}.ch1", f"{p}.client.{{5}}.ch1", f"{p}.shard.0.{{5}}"):
        slots.add(await client.execute_command("CLUSTER", "KEYSLOT", name))
    assert len(slots) == 1


async def test_every_partition_has_a_connection_to_its_master(
    sharded: Backend, masters: Masters
) -> None:
    """One SSUBSCRIBE connection per partition, to the master of its slot, its service
    channel subscribed; 8 partitions land on more than one of the 3 masters; a
    publication on a channel of each partition arrives."""
    peer = await sharded.peer()
    channels = one_channel_per_partition()
    for channel in channels.values():
        await peer.broker.subscribe(channel)
    connections = pubsubs(peer)
    assert len(connections) == PARTITIONS
    used = set()
    for partition, pubsub in enumerate(connections):
        assert pubsub.live
        _, remote = endpoints(pubsub)
        owner = await masters.owner(f"{sharded.prefix}.shard.0.{{{partition}}}")
        assert remote == owner, partition
        used.add(remote)
        client = masters.clients[owner]
        subscribed = await client.execute_command(
            "PUBSUB", "SHARDCHANNELS", f"{sharded.prefix}.*{{{partition}}}*"
        )
        names = {_text(name) for name in subscribed}
        service = f"{sharded.prefix}.shard.0.{{{partition}}}"
        assert names == {service, f"{sharded.prefix}.client.{{{partition}}}.{channels[partition]}"}
    assert len(used) > 1
    publisher = await sharded.peer()
    for n, channel in enumerate(channels.values(), 1):
        await publisher.broker.publish(channel, pub(n), KEEP if n % 2 else PublishOptions())
    recorder = peer.recorder
    await recorder.wait(lambda: len(recorder.publications) == PARTITIONS, "a publication each")
    assert sorted(c for c, _, _ in recorder.publications) == sorted(channels.values())


async def test_a_lost_partition_connection_reports_its_channels_only(
    sharded: Backend, masters: Masters
) -> None:
    """CLIENT KILL of one partition's connection: a gap for that partition's channels,
    none for the others; the connection comes back (to the same master) resubscribed."""
    peer = await sharded.peer()
    channels = one_channel_per_partition()
    extra = next(f"x{n}" for n in range(1000) if shard_index(f"x{n}", PARTITIONS) == 3)
    for channel in [*channels.values(), extra]:
        await peer.broker.subscribe(channel)
    pubsub = pubsubs(peer)[3]
    local, remote = endpoints(pubsub)
    killed = await masters.clients[remote].client_kill(f"{local[0]}:{local[1]}")
    assert killed
    recorder = peer.recorder
    await recorder.wait(lambda: bool(recorder.gaps), "the gap")
    assert [sorted(gap) for gap in recorder.gaps] == [sorted([channels[3], extra])]

    async def live() -> bool:
        return bool(pubsub.live)

    await eventually(live, "the partition's connection back")
    assert endpoints(pubsub)[1] == remote
    await peer.broker.publish(extra, pub(1), KEEP)
    await peer.broker.publish(channels[4], pub(2), KEEP)
    await recorder.wait(lambda: len(recorder.publications) == 2, "publications after it")
    assert len(recorder.gaps) == 1


async def test_a_connection_to_the_wrong_master_moves_to_the_owner(
    sharded: Backend, masters: Masters, caplog: pytest.LogCaptureFixture
) -> None:
    """A partition connected to a master that does not own its slot (a stale slot map)
    gets MOVED for its SSUBSCRIBE: it reconnects to the owner, asking the cluster."""
    engine = create_engine(
        cluster_url(), prefix=sharded.prefix, sharded_pub_sub_partitions=PARTITIONS
    )
    shard = engine.shards[0]
    owner = await masters.owner(f"{sharded.prefix}.shard.0.{{0}}")
    wrong = next(address for address in masters.clients if address != owner)
    asked: list[bool] = []
    slot_owner = shard.slot_owner

    async def stale(key: str, *, refresh: bool = False) -> tuple[str, int]:
        if key.endswith("{0}"):
            asked.append(refresh)
            if not refresh:
                return wrong
        return await slot_owner(key, refresh=refresh)

    shard.slot_owner = stale  # type: ignore[method-assign]
    events = Recorder()
    await engine.broker.start(events)
    try:
        pubsub = engine.broker._pubsubs[0]

        async def live() -> bool:
            return bool(pubsub.live)

        await eventually(live, "partition 0 connected to its owner")
        assert asked[:2] == [False, True]
        # Ended by the MOVED reply itself, not by waiting io_timeout for a confirmation.
        assert any("MOVED" in r.getMessage() for r in caplog.records), caplog.text
        assert endpoints(pubsub)[1] == owner
        channel = one_channel_per_partition()[0]
        await engine.broker.subscribe(channel)
        await engine.broker.publish(channel, pub(1), KEEP)
        await events.wait(lambda: bool(events.publications), "the publication")
        assert events.gaps == []  # it was never live on the wrong master
    finally:
        await engine.broker.close()


async def test_an_unasked_sunsubscribe_restarts_the_partition(sharded: Backend) -> None:
    """Redis sends ``sunsubscribe`` for every channel of a slot that moved to another
    master: the partition's connection restarts, its channels reported, and
    resubscribes. (Moving a slot of the shared cluster would disturb other tests: the
    push is handed to the connection's reader as if Redis had sent it.)"""
    peer = await sharded.peer()
    channels = one_channel_per_partition()
    await peer.broker.subscribe(channels[2])
    await peer.broker.subscribe(channels[6])
    pubsub = pubsubs(peer)[2]
    link = pubsub._link
    link.handle([b"sunsubscribe", f"{sharded.prefix}.shard.0.{{2}}".encode(), 0])
    recorder = peer.recorder
    await recorder.wait(lambda: bool(recorder.gaps), "the gap")
    assert recorder.gaps == [[channels[2]]]

    async def back() -> bool:
        return pubsub._link is not None and pubsub._link is not link

    await eventually(back, "a new connection")
    await peer.broker.publish(channels[2], pub(1), KEEP)
    await recorder.wait(lambda: bool(recorder.of(channels[2])), "a publication after it")
    # An unsubscribe that was asked for is no reason to restart.
    await peer.broker.unsubscribe(channels[6])
    asked = pubsubs(peer)[6]._link
    asked.unsubscribe(f"{sharded.prefix}.client.{{6}}.{channels[6]}".encode())

    async def released() -> bool:
        return not asked.acks

    await eventually(released, "the SUNSUBSCRIBE confirmed")
    assert pubsubs(peer)[6]._link is asked
    assert recorder.gaps == [[channels[2]]]


def test_partition_key_names() -> None:
    """The tag is the partition and comes first, so no channel name can break it; the
    scripts publish with SPUBLISH; no partitions without a cluster."""
    from wirehub.brokers.redis.keys import Keys
    from wirehub.brokers.redis.scripts import SPUBLISH_HISTORY, SPUBLISH_IDEMPOTENT

    keys = Keys("P", cluster=True, partitions=8)
    assert keys.publish_command == "SPUBLISH"
    for channel in ("ch1", "}x{", "{a}b", "a.b:c"):
        t = shard_index(channel, 8)
        assert keys.partition(channel) == t
        assert keys.client_channel(channel) == f"P.client.{{{t}}}.{channel}"
        assert keys.stream(channel) == f"P.stream.{{{t}}}.{channel}"
        assert keys.meta(channel) == f"P.stream.meta.{{{t}}}.{channel}"
        assert keys.result(channel, "k") == f"P.result.{{{t}}}.{channel}.k"
    assert keys.presence_data("ch1") == "P.presence.data.{ch1}"
    assert keys.presence_expire("ch1") == "P.presence.expire.{ch1}"
    assert keys.service_channel(3) == "P.shard.0.{3}"
    assert keys.control == "P.control"
    assert keys.node("n") == "P.node.n"
    plain = Keys("P", cluster=True)
    assert (plain.partition("ch1"), plain.publish_command) == (0, "PUBLISH")
    for script in (SPUBLISH_HISTORY, SPUBLISH_IDEMPOTENT):
        assert "redis.call('spublish'," in script.source
        assert "redis.call('publish'," not in script.source
    with pytest.raises(ValueError, match="Cluster"):
        Keys("P", partitions=8)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def cluster_servers(
    directory: Path, *names: str, args: tuple[str, ...] = ()
) -> Iterator[list[RedisServer]]:
    """Empty cluster-enabled redis-servers, one per name (the test assigns slots and
    roles); ``args``: more redis-server options for each."""
    servers = []
    try:
        for name in names:
            home = directory / name
            options = ("--cluster-enabled", "yes", "--cluster-port", str(_free_port()))
            options += ("--cluster-config-file", str(home / "nodes.conf"), *args)
            servers.append(RedisServer(home, args=options).start())
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[list[RedisServer]]:
    with cluster_servers(tmp_path, "a", "b", "c") as servers:
        yield servers


def bus_port(server: RedisServer) -> int:
    return int(server.args[server.args.index("--cluster-port") + 1])


async def two_masters(a: aioredis.Redis, b: aioredis.Redis, b_server: RedisServer) -> None:
    """Slots 0-8191 on ``a``, the rest on ``b``; returns once both agree."""
    await a.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 8191)
    await b.execute_command("CLUSTER", "ADDSLOTSRANGE", 8192, 16383)
    await a.execute_command("CLUSTER", "MEET", "127.0.0.1", b_server.port, bus_port(b_server))

    async def formed() -> bool:
        for node in (a, b):
            info = await node.execute_command("CLUSTER", "INFO")
            if "cluster_state:ok" not in _text(info):
                return False
            if len(await node.execute_command("CLUSTER", "SLOTS")) != 2:
                return False
        return True

    await eventually(formed, "the 2-master cluster")


async def test_a_slot_moving_to_another_master_moves_its_partition(
    own_cluster: list[RedisServer],
) -> None:
    """A real migration: the partition's slot is given to the other master (CLUSTER
    SETSLOT NODE, as the last step of resharding). Redis pushes ``sunsubscribe`` for the
    slot's channels; the partition's channels are reported, its connection goes to the
    new owner, resubscribed, and the next publication arrives. The other partition's
    connection is untouched."""
    a, b = (aioredis.Redis(port=server.port) for server in own_cluster[:2])
    try:
        await two_masters(a, b, own_cluster[1])
        prefix = unique_prefix()
        engine = create_engine(
            f"redis+cluster://127.0.0.1:{own_cluster[0].port}",
            prefix=prefix,
            sharded_pub_sub_partitions=2,
        )
        events = Recorder()
        await engine.broker.start(events)
        try:
            moving = next(f"c{n}" for n in range(100) if shard_index(f"c{n}", 2) == 0)
            staying = next(f"c{n}" for n in range(100) if shard_index(f"c{n}", 2) == 1)
            await engine.broker.subscribe(moving)
            await engine.broker.subscribe(staying)
            partition, other = engine.broker._pubsubs
            other_link = other._link
            _, (_, port) = endpoints(partition)
            source, target = (a, b) if port == own_cluster[0].port else (b, a)
            slot = await a.execute_command("CLUSTER", "KEYSLOT", f"{prefix}.shard.0.{{0}}")
            target_id = _text(await target.execute_command("CLUSTER", "MYID"))
            await target.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
            await source.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
            await events.wait(lambda: bool(events.gaps), "the gap")
            assert events.gaps == [[moving]]

            async def moved() -> bool:
                return bool(partition.live) and endpoints(partition)[1][1] != port

            await eventually(moved, "the partition on its new master")
            await engine.broker.publish(moving, pub(1), KEEP)
            await engine.broker.publish(staying, pub(2), KEEP)
            await events.wait(lambda: len(events.publications) == 2, "publications after it")
            assert other._link is other_link
            assert events.gaps == [[moving]]
        finally:
            await engine.broker.close()
    finally:
        await a.aclose()
        await b.aclose()


async def test_a_cluster_without_sharded_pub_sub_is_refused_at_start(tmp_path: Path) -> None:
    """A Cluster whose masters lack SPUBLISH (Redis < 7; here the command is renamed
    away) with partitions configured: the broker refuses to start, saying why, instead
    of starting with every subscription failing."""
    renamed = ("--rename-command", "SPUBLISH", "", "--rename-command", "SSUBSCRIBE", "")
    with cluster_servers(tmp_path, "a", "b", args=renamed) as servers:
        a, b = (aioredis.Redis(port=server.port) for server in servers)
        try:
            await two_masters(a, b, servers[1])
        finally:
            await a.aclose()
            await b.aclose()
        engine = create_engine(
            f"redis+cluster://127.0.0.1:{servers[0].port}",
            prefix=unique_prefix(),
            sharded_pub_sub_partitions=2,
        )
        with pytest.raises(RuntimeError, match=r"needs sharded PUB/SUB .*Redis 7\.0 or newer"):
            await engine.broker.start(Recorder())
        await engine.broker.close()


async def test_a_cluster_failover_renews_the_epoch(own_cluster: list[RedisServer]) -> None:
    """CLUSTER FAILOVER TAKEOVER: a replica becomes the master of a channel's slot
    without waiting for its old master (as after a crash). Writes the old master had not
    replicated would be lost and their offsets handed out again, so the stream's first
    touch on the new master starts a new epoch, history and offsets kept."""
    a, b, c = (aioredis.Redis(port=server.port) for server in own_cluster)
    try:
        await two_masters(a, b, own_cluster[1])
        await a.execute_command(
            "CLUSTER", "MEET", "127.0.0.1", own_cluster[2].port, bus_port(own_cluster[2])
        )
        a_id = _text(await a.execute_command("CLUSTER", "MYID"))

        async def known() -> bool:
            return a_id in _text(await c.execute_command("CLUSTER", "NODES"))

        await eventually(known, "the replica to meet the cluster")
        await c.execute_command("CLUSTER", "REPLICATE", a_id)

        async def replicating() -> bool:
            info = await c.info("replication")
            return bool(info.get("master_link_status") == "up")

        await eventually(replicating, "the replica in sync")
        channel = next(f"c{n}" for n in range(100) if key_slot(f"c{n}".encode()) <= 8191)
        engine = create_engine(
            f"redis+cluster://127.0.0.1:{own_cluster[0].port}", prefix=unique_prefix()
        )
        events = Recorder()
        await engine.broker.start(events)
        try:
            await engine.broker.subscribe(channel)
            positions = [await engine.broker.publish(channel, pub(n), KEEP) for n in (1, 2, 3)]
            written = (await a.info("replication"))["master_repl_offset"]

            async def replicated() -> bool:
                return bool((await c.info("replication"))["slave_repl_offset"] >= written)

            await eventually(replicated, "the replica to have the publications")
            await c.execute_command("CLUSTER", "FAILOVER", "TAKEOVER")

            async def promoted() -> bool:
                return bool((await c.info("replication")).get("role") == "master")

            await eventually(promoted, "the replica promoted")

            async def published() -> bool:
                try:
                    positions.append(await engine.broker.publish(channel, pub(4), KEEP))
                except (RedisError, OSError):
                    return False
                return True

            await eventually(published, "a publish on the new master", wait=30)
            before, after = positions[2], positions[-1]
            assert after.epoch != before.epoch
            assert after.offset == 4
            page = await engine.broker.history(channel, HistoryOptions(limit=-1))
            assert [p.offset for p in page.publications] == [1, 2, 3, 4]
            assert page.position == after
            await events.wait(lambda: any(p.offset == 4 for p in events.of(channel)), "4")
        finally:
            await engine.broker.close()
    finally:
        for client in (a, b, c):
            await client.aclose()


@pytest.mark.parametrize(
    "options",
    [
        {"address": "redis://127.0.0.1:6379"},
        {"address": ["redis://127.0.0.1:6379", "redis+cluster://127.0.0.1:7000"]},
        {"sentinel_address": ["127.0.0.1:26379"], "sentinel_master_name": "m"},
    ],
)
def test_partitions_need_a_cluster(options: dict[str, object]) -> None:
    overrides = {"engine": {"type": "redis", "redis": {**options, "sharded_pub_sub_partitions": 8}}}
    with pytest.raises(ConfigError, match="sharded_pub_sub_partitions needs Redis Cluster"):
        load_config(overrides=overrides, environ=False)


def test_partitions_config() -> None:
    with pytest.raises(ConfigError, match="sharded_pub_sub_partitions"):
        load_config(
            overrides={"engine": {"redis": {"sharded_pub_sub_partitions": -1}}}, environ=False
        )
    config = load_config(
        overrides={
            "engine": {
                "type": "redis",
                "redis": {"cluster_address": ["a:1,b:2"], "sharded_pub_sub_partitions": 16},
            }
        },
        environ=False,
    )
    assert config.engine.redis.sharded_pub_sub_partitions == 16
    assert load_config(environ=False).engine.redis.sharded_pub_sub_partitions == 0
    with pytest.raises(ValueError, match="needs Redis Cluster"):
        create_engine("redis://127.0.0.1:6379", sharded_pub_sub_partitions=4)


async def test_control_stays_on_classic_pubsub(sharded: Backend) -> None:
    """Control messages use PUBLISH/SUBSCRIBE as without partitions (as Centrifugo)."""
    a, b = await sharded.peer(), await sharded.peer()
    await a.controller.start(a.recorder, "node-a")
    await b.controller.start(b.recorder, "node-b")
    assert not a.controller._pubsub._mode.sharded
    await a.controller.publish_control(b"hello", "node-b")
    await b.recorder.wait(lambda: b.recorder.controls == [b"hello"], "the control message")
