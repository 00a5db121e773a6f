"""What only the Redis engine has: round trips, faults, garbage, Cluster and Sentinel.

Faults run against a redis-server of the test's own (``RedisServer``), never the shared
one; the others use their own key prefix on the shared Redis.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from msgspec import Raw
from redis.exceptions import RedisError

from tests.brokers.engines import Backend, Peer, Recorder
from tests.support.redis import (
    RedisServer,
    cluster_url,
    delete_prefix,
    eventually,
    redis_url,
    require_redis,
    sentinel_group,
    sentinel_url,
    unique_prefix,
)
from wirehub.brokers.base import HistoryOptions, PublishOptions
from wirehub.brokers.redis.engine import RedisEngine, create_engine
from wirehub.brokers.redis.pubsub import PubSubUnavailable
from wirehub.protocol.types import Publication, StreamPosition

pytestmark = pytest.mark.anyio

KEEP = PublishOptions(history_size=10, history_ttl=60)


def pub(n: int) -> Publication:
    return Publication(data=Raw(b"%d" % n))


@pytest.fixture
async def redis() -> AsyncIterator[Backend]:
    url = redis_url()
    require_redis(url)
    backend = Backend("redis", url)
    yield backend
    await backend.close()


@pytest.fixture
def server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    own = RedisServer(tmp_path / "redis").start()
    yield own
    own.stop()


def shard_of(peer: Peer, channel: str) -> object:
    return peer.broker._shards.for_channel(channel)  # type: ignore[attr-defined]


async def test_concurrent_publishes_share_round_trips(redis: Backend) -> None:
    """2000 publishes issued at once (in one tick) leave in one write, not 2000 round
    trips; their replies come back in order."""
    peer = await redis.peer()
    shard = shard_of(peer, "a")
    before = shard.round_trips  # type: ignore[attr-defined]
    positions = await asyncio.gather(
        *(peer.broker.publish("a", pub(n), KEEP) for n in range(1000)),
        *(peer.broker.publish(f"b{n}", pub(n), KEEP) for n in range(1000)),
    )
    assert sorted(p.offset for p in positions[:1000]) == list(range(1, 1001))
    sent = shard.round_trips - before  # type: ignore[attr-defined]
    assert sent <= 2, f"{sent} writes for 2000 publishes"


async def test_garbage_on_a_channel_is_logged_and_dropped(
    redis: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    peer = await redis.peer()
    await peer.broker.subscribe("a")
    shard = shard_of(peer, "a")
    name = shard.keys.client_channel("a")  # type: ignore[attr-defined]
    for garbage in (b"", b"\x00" * 300, b"Pnot msgpack", b"H1:x", b"Jzzz"):
        await shard.call("PUBLISH", name, garbage)  # type: ignore[attr-defined]
    await peer.broker.publish("a", pub(1), KEEP)
    await peer.recorder.wait(lambda: len(peer.recorder.publications) == 1, "the publication")
    assert peer.recorder.of("a") == [Publication(Raw(b"1"), offset=1)]
    dropped = [r for r in caplog.records if "malformed message" in r.getMessage()]
    assert len(dropped) == 5
    assert all(len(r.getMessage()) < 400 for r in dropped)  # truncated


async def test_garbage_in_history_is_logged_and_dropped(
    redis: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    peer = await redis.peer()
    await peer.broker.publish("a", pub(1), KEEP)
    shard = shard_of(peer, "a")
    stream = shard.keys.stream("a")  # type: ignore[attr-defined]
    await shard.call("XADD", stream, "2-0", "d", b"garbage")  # type: ignore[attr-defined]
    await shard.call("XADD", stream, "3-0", "x", b"y")  # type: ignore[attr-defined]
    await shard.call("HSET", shard.keys.meta("a"), "s", 3)  # type: ignore[attr-defined]
    await peer.broker.publish("a", pub(4), KEEP)
    page = await peer.broker.history("a", HistoryOptions(limit=-1))
    assert [p.offset for p in page.publications] == [1, 4]
    assert page.position.offset == 4
    assert len([r for r in caplog.records if "malformed history entry" in r.getMessage()]) == 2


async def test_a_lost_pubsub_connection_is_reported_and_resubscribed(redis: Backend) -> None:
    peer = await redis.peer()
    await peer.broker.subscribe("a")
    await peer.broker.subscribe("b")
    shard = shard_of(peer, "a")
    pubsub = peer.broker._pubsubs[0]  # type: ignore[attr-defined]
    host, port = pubsub._link.connection._transport.get_extra_info("sockname")[:2]
    await shard.call("CLIENT", "KILL", "ADDR", f"{host}:{port}")  # type: ignore[attr-defined]
    recorder = peer.recorder
    await recorder.wait(lambda: bool(recorder.gaps), "the gap")
    assert sorted(recorder.gaps[0]) == ["a", "b"]

    async def live() -> bool:
        return pubsub.live  # type: ignore[no-any-return]

    await eventually(live, "the PUB/SUB connection back")
    await peer.broker.publish("b", pub(1), KEEP)
    await recorder.wait(lambda: bool(recorder.of("b")), "a publication after resubscribing")


async def test_redis_down_fails_fast_then_service_resumes(server: RedisServer) -> None:
    """Publishing and subscribing fail at once (no hang) while Redis is stopped; every
    subscribed channel is reported; once Redis is back all works again by itself."""
    engine = create_engine(server.url, prefix=unique_prefix())
    recorder = Recorder()
    await engine.broker.start(recorder)
    try:
        await engine.broker.subscribe("a")
        before = await engine.broker.publish("a", pub(1), KEEP)
        server.stop()
        await recorder.wait(lambda: bool(recorder.gaps), "the gap")
        assert recorder.gaps == [["a"]]
        async with asyncio.timeout(20):  # generous: failing must not mean hanging
            with pytest.raises((RedisError, TimeoutError, OSError)):
                await engine.broker.publish("a", pub(2), KEEP)
            with pytest.raises((RedisError, TimeoutError, OSError)):
                await engine.broker.history("a", HistoryOptions())
            with pytest.raises(PubSubUnavailable):
                await engine.broker.subscribe("c")
        server.start()

        async def works() -> bool:
            try:
                await engine.broker.subscribe("c")
            except PubSubUnavailable:
                return False
            return True

        await eventually(works, "the PUB/SUB connection back", wait=30)
        after = await engine.broker.publish("a", pub(3), KEEP)
        assert after.epoch != before.epoch  # a Redis without persistence: a new stream
        await recorder.wait(lambda: bool(recorder.of("a")), "a publication after the restart")
        assert recorder.of("a")[-1].offset == after.offset
    finally:
        await engine.broker.close()


async def test_scripts_flushed_from_redis_are_sent_again(server: RedisServer) -> None:
    """After SCRIPT FLUSH (as after a restart or a failover to a replica that never saw
    them) every scripted command still works: the node sends the script's source."""
    engine = create_engine(server.url, prefix=unique_prefix())
    recorder = Recorder()
    await engine.broker.start(recorder)
    try:
        await engine.broker.subscribe("a")
        first = await engine.broker.publish("a", pub(1), KEEP)
        shard = shard_of(Peer(engine.broker, engine.presence_manager), "a")
        assert await shard.call("SCRIPT", "FLUSH") == b"OK"  # type: ignore[attr-defined]
        second = await engine.broker.publish("a", pub(2), KEEP)
        assert (second.offset, second.epoch) == (2, first.epoch)
        await shard.call("SCRIPT", "FLUSH")  # type: ignore[attr-defined]
        options = PublishOptions(history_size=10, history_ttl=60, idempotency_key="k")
        third = await engine.broker.publish("a", pub(3), options)
        assert (await engine.broker.publish("a", pub(3), options)) == third
        await shard.call("SCRIPT", "FLUSH")  # type: ignore[attr-defined]
        page = await engine.broker.history("a", HistoryOptions(limit=-1))
        assert [p.offset for p in page.publications] == [1, 2, 3]
        await recorder.wait(lambda: len(recorder.of("a")) == 3, "three publications")
        assert [p.offset for p in recorder.of("a")] == [1, 2, 3]
    finally:
        await engine.broker.close()


async def test_history_meta_ttl_expires_the_position(redis: Backend) -> None:
    """Without publishes or reads for history_meta_ttl, the stream is forgotten: the
    next publish starts a new epoch."""
    peer = await redis.peer()
    options = PublishOptions(history_size=10, history_ttl=0.2, history_meta_ttl=0.3)
    first = await peer.broker.publish("a", pub(1), options)
    shard = shard_of(peer, "a")

    async def forgotten() -> bool:
        return not await shard.call("EXISTS", shard.keys.meta("a"))  # type: ignore[attr-defined]

    await eventually(forgotten, "the stream metadata to expire")
    second = await peer.broker.publish("a", pub(2), options)
    assert second.offset == 1
    assert second.epoch != first.epoch


async def test_cluster_channel_names_that_break_hash_tags() -> None:
    """'}x{' would make an empty hash tag: its keys still share a slot."""
    url = cluster_url()
    engine = create_engine(url, prefix=unique_prefix())
    recorder = Recorder()
    await engine.broker.start(recorder)
    try:
        for channel in ("}x{", "{a}b", "a}"):
            await engine.broker.subscribe(channel)
            position = await engine.broker.publish(channel, pub(1), KEEP)
            assert position.offset == 1
            page = await engine.broker.history(channel, HistoryOptions(limit=-1))
            assert [p.offset for p in page.publications] == [1]
        await recorder.wait(lambda: len(recorder.publications) == 3, "3 publications")
    finally:
        await engine.broker.close()
        await asyncio.to_thread(delete_prefix, url, engine.shards[0].keys.prefix)


async def test_sentinel() -> None:
    url = sentinel_url()
    engine: RedisEngine = create_engine(url, prefix=unique_prefix())
    recorder = Recorder()
    await engine.broker.start(recorder)
    await engine.controller.start(recorder, "n1")
    try:
        await engine.broker.subscribe("a")
        assert await engine.broker.publish("a", pub(1), KEEP) != StreamPosition()
        await recorder.wait(lambda: bool(recorder.publications), "the publication")
        await engine.controller.publish_control(b"hello", "n1")
        await recorder.wait(lambda: bool(recorder.controls), "the control message")
        await engine.presence_manager.add_presence("a", recorder_info())
        assert list(await engine.presence_manager.presence("a")) == ["c1"]
    finally:
        await engine.controller.close()
        await engine.broker.close()


async def test_sentinel_failover_moves_every_connection_and_renews_the_epoch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """SENTINEL FAILOVER under a node: the node follows the Sentinel's +switch-master
    announcement (not waiting for the Sentinel to demote the old master, seconds later,
    which is when writes to it stop being lost), reports its channels as a gap, writes
    to the new master, and a stream touched there starts a new epoch, history kept."""
    async with sentinel_group(tmp_path) as (_, replica, sentinel):
        engine = create_engine(sentinel.url, prefix=unique_prefix())
        recorder = Recorder()
        try:
            await engine.broker.start(recorder)
            await engine.broker.subscribe("a")
            positions = [await engine.broker.publish("a", pub(n), KEEP) for n in (1, 2, 3)]
            before = positions[-1]
            shard = shard_of(Peer(engine.broker, engine.presence_manager), "a")
            assert await shard.call("WAIT", 1, 5000) == 1  # type: ignore[attr-defined]
            assert shard.generation == "0"  # type: ignore[attr-defined]

            await asyncio.to_thread(sentinel.command, "SENTINEL", "FAILOVER", sentinel.name)
            await recorder.wait(lambda: bool(recorder.gaps), "the gap")
            assert recorder.gaps[0] == ["a"]
            assert any("+switch-master" in r.getMessage() for r in caplog.records)
            assert shard.generation == "1"  # type: ignore[attr-defined]

            async def published() -> bool:
                try:
                    await engine.broker.subscribe("a")
                    positions.append(await engine.broker.publish("a", pub(4), KEEP))
                except (RedisError, OSError, PubSubUnavailable):
                    return False
                return True

            await eventually(published, "a publish after the failover", wait=30)
            after = positions[-1]
            assert after.epoch != before.epoch
            assert after.offset == 4
            page = await engine.broker.history("a", HistoryOptions(limit=-1))
            assert [p.offset for p in page.publications] == [1, 2, 3, 4]
            assert page.position == after
            await recorder.wait(lambda: any(p.offset == 4 for p in recorder.of("a")), "4")
            meta = shard.keys.meta("a")  # type: ignore[attr-defined]
            assert await asyncio.to_thread(replica.command, "HGET", meta, "s") == b"4"
        finally:
            await engine.broker.close()


def recorder_info() -> object:
    from wirehub.protocol.types import ClientInfo

    return ClientInfo(user="u", client="c1")


_ = logging


# Credentials and TLS, against a redis-server of the test's own.


async def round_trip(engine: RedisEngine) -> None:
    """Subscribe, publish with history, receive it: the engine works end to end."""
    recorder = Recorder()
    await engine.broker.start(recorder)
    try:
        await engine.broker.subscribe("a")
        assert (await engine.broker.publish("a", pub(1), KEEP)).offset == 1
        await recorder.wait(lambda: bool(recorder.publications), "the publication")
    finally:
        await engine.broker.close()


async def test_password_and_acl_user(tmp_path: Path) -> None:
    acl = ("--user", "alice", "on", ">wonderland", "~*", "&*", "+@all")
    server = RedisServer(tmp_path, args=("--requirepass", "s3cret", *acl)).start()
    try:
        port = server.port
        await round_trip(create_engine(f"redis://:s3cret@127.0.0.1:{port}", prefix=unique_prefix()))
        await round_trip(
            create_engine(f"redis://alice:wonderland@127.0.0.1:{port}", prefix=unique_prefix())
        )
        wrong = create_engine(f"redis://alice:nope@127.0.0.1:{port}", prefix=unique_prefix())
        await wrong.broker.start(Recorder())
        try:
            async with asyncio.timeout(20):
                with pytest.raises(RedisError, match=r"(?i)auth|password|WRONGPASS"):
                    await wrong.broker.publish("a", pub(1), KEEP)
        finally:
            await wrong.broker.close()
    finally:
        server.stop()


def make_certificates(directory: Path) -> tuple[Path, Path, Path, Path]:
    """A CA, and a certificate for 127.0.0.1 signed by it; plus another CA."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(text: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    now = datetime.datetime.now(datetime.UTC)

    def certificate(subject: str, key: Any, issuer: str, signer: Any, *, ca: bool) -> Any:
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(name(issuer))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
            builder = builder.add_extension(san, critical=False)
        return builder.sign(signer, hashes.SHA256())

    pem = serialization.Encoding.PEM
    paths = []
    ca_key = ec.generate_private_key(ec.SECP256R1())
    other_key = ec.generate_private_key(ec.SECP256R1())
    server_key = ec.generate_private_key(ec.SECP256R1())
    for file, cert in (
        ("ca.pem", certificate("test CA", ca_key, "test CA", ca_key, ca=True)),
        ("other-ca.pem", certificate("other CA", other_key, "other CA", other_key, ca=True)),
        ("server.pem", certificate("127.0.0.1", server_key, "test CA", ca_key, ca=False)),
    ):
        (directory / file).write_bytes(cert.public_bytes(pem))
        paths.append(directory / file)
    key_bytes = server_key.private_bytes(
        pem, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    (directory / "server.key").write_bytes(key_bytes)
    return paths[0], paths[1], paths[2], directory / "server.key"


async def test_tls(tmp_path: Path) -> None:
    """rediss:// with the server's CA works; another CA is refused (no hang); skipping
    verification works without a CA."""
    from wirehub.brokers.redis.addresses import parse_shards
    from wirehub.config import RedisEngineConfig

    ca, other_ca, cert, key = make_certificates(tmp_path)
    server = RedisServer(tmp_path / "redis", tls=(cert, key)).start()

    def engine(**tls: object) -> RedisEngine:
        config = RedisEngineConfig.model_validate(
            {"address": f"rediss://127.0.0.1:{server.port}", "tls": {"enabled": True, **tls}}
        )
        return RedisEngine(parse_shards(config), prefix=unique_prefix())

    try:
        await round_trip(engine(server_ca_pem_file=str(ca)))
        await round_trip(engine(server_ca_pem=ca.read_text()))
        await round_trip(engine(insecure_skip_verify=True))
        refused = engine(server_ca_pem_file=str(other_ca))
        await refused.broker.start(Recorder())
        try:
            async with asyncio.timeout(20):
                with pytest.raises((RedisError, OSError)):
                    await refused.broker.publish("a", pub(1), KEEP)
        finally:
            await refused.broker.close()
    finally:
        server.stop()


async def test_unix_socket(tmp_path: Path) -> None:
    path = tmp_path / "redis.sock"
    server = RedisServer(tmp_path, args=("--unixsocket", str(path), "--unixsocketperm", "700"))
    server.start()
    try:
        await round_trip(create_engine(f"unix://{path}?db=2", prefix=unique_prefix()))
    finally:
        server.stop()
