"""The Redis engine's pure parts: addresses, shard mapping, key names, encoding."""

from __future__ import annotations

from pathlib import Path

import pytest
from msgspec import Raw

from wirehub.brokers.redis import codec
from wirehub.brokers.redis.addresses import ShardSpec, TLSOptions, parse_shards
from wirehub.brokers.redis.keys import Keys
from wirehub.brokers.redis.sharding import fnv1a_64, jump_hash, shard_index
from wirehub.config import ConfigError, RedisEngineConfig, load_config
from wirehub.genconfig import render_config
from wirehub.protocol.types import ClientInfo, Publication, StreamPosition

# Shard mapping: jump consistent hash over FNV-1a-64, as Centrifugo computes it.


def test_fnv1a_64_reference_values() -> None:
    assert fnv1a_64(b"") == 0xCBF29CE484222325
    assert fnv1a_64(b"a") == 0xAF63DC4C8601EC8C
    assert fnv1a_64(b"foobar") == 0x85944171F73967E8


def test_jump_hash_reference_values() -> None:
    # Published by Go and JavaScript implementations of the paper's algorithm.
    assert jump_hash(256, 1024) == 520
    assert jump_hash(10863919174838991, 11) == 6
    assert jump_hash(2016238256797177309, 11) == 3
    assert jump_hash(1, 1) == 0
    assert jump_hash(100, 20) == 4
    with pytest.raises(ValueError, match="positive"):
        jump_hash(1, 0)


def test_adding_a_shard_moves_channels_only_to_it() -> None:
    channels = [f"chat:room-{n}" for n in range(5000)]
    before = {ch: shard_index(ch, 3) for ch in channels}
    after = {ch: shard_index(ch, 4) for ch in channels}
    moved = [ch for ch in channels if before[ch] != after[ch]]
    assert all(after[ch] == 3 for ch in moved)
    assert 0.2 < len(moved) / len(channels) < 0.3  # about 1/4
    counts = [list(after.values()).count(i) for i in range(4)]
    assert min(counts) > 1000  # spread evenly
    assert {shard_index(ch, 1) for ch in channels} == {0}


# Key names.


def test_key_names() -> None:
    keys = Keys("P")
    assert keys.client_channel("news:1") == "P.client.news:1"
    assert keys.stream("news:1") == "P.stream.news:1"
    assert keys.meta("news:1") == "P.stream.meta.news:1"
    assert keys.result("news:1", "k") == "P.result.news:1.k"
    assert keys.presence_data("news:1") == "P.presence.data.news:1"
    assert keys.presence_expire("news:1") == "P.presence.expire.news:1"
    assert (keys.control, keys.node("n1")) == ("P.control", "P.node.n1")


def test_cluster_key_names_share_a_hash_tag() -> None:
    keys = Keys("P", cluster=True)
    assert keys.stream("news:1") == "P.stream.{news:1}"
    assert keys.meta("news:1") == "P.stream.meta.{news:1}"
    assert keys.client_channel("news:1") == "P.client.{news:1}"
    weird = keys.stream("}x{")  # '{}' would be an empty tag: the name's hash instead
    tag = weird[weird.index("{") + 1 : weird.index("}")]
    assert len(tag) == 16
    assert keys.meta("}x{").startswith("P.stream.meta.{" + tag + "}")


# Encoding.


def test_publication_messages_round_trip() -> None:
    info = ClientInfo(user="u", client="c", conn_info=Raw(b"{}"), chan_info=Raw(b'"i"'))
    publication = Publication(data=Raw(b'{"a":1}'), info=info, tags={"t": "v"})
    body = codec.encode_publication(publication)
    kind, decoded, position = codec.decode_message(codec.encode_publication_message(body))
    assert (kind, decoded, position) == (codec.PUBLICATION, publication, StreamPosition())
    kind, decoded, position = codec.decode_message(b"H42:abcdefgh:" + body)
    assert decoded == Publication(data=Raw(b'{"a":1}'), info=info, offset=42, tags={"t": "v"})
    assert position == StreamPosition(offset=42, epoch="abcdefgh")
    assert codec.decode_message(codec.encode_join(info)) == (codec.JOIN, info, StreamPosition())
    assert codec.decode_message(codec.encode_leave(info))[:2] == (codec.LEAVE, info)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"X",
        b"garbage",
        b"P",
        b"P\xc1",
        b"Pnot msgpack",
        b"H",
        b"H1:",
        b"Habc:epoch:x",
        b"H0:epoch:\x93\xc4\x00\xc0\xc0",
        b"H-1:epoch:\x93\xc4\x00\xc0\xc0",
        b"H1:epoch:\x92\x01\x02",
        b"J\x90",
        b"L\x94\x01\x02\x03\x04",
        b"P" + b"\x93\xc4\x00\xc0\x81\xa1k\x01",  # a tag value that is not a string
    ],
)
def test_malformed_messages_raise(data: bytes) -> None:
    with pytest.raises(codec.MalformedMessage):
        codec.decode_message(data)


@pytest.mark.parametrize(
    "entry",
    [
        None,
        [b"1-0"],
        [b"x-0", [b"d", b"\x93\xc4\x00\xc0\xc0"]],
        [b"1-0", [b"e", b"\x93\xc4\x00\xc0\xc0"]],
        [b"1-0", [b"d", b"garbage"]],
    ],
)
def test_malformed_history_entries_raise(entry: object) -> None:
    with pytest.raises(codec.MalformedMessage):
        codec.decode_history_entry(entry)


def test_history_entries_decode() -> None:
    body = codec.encode_publication(Publication(data=Raw(b"1")))
    assert codec.decode_history_entry([b"7-0", [b"d", body]]) == Publication(Raw(b"1"), offset=7)


# Addresses.


def shards(**options: object) -> list[ShardSpec]:
    return parse_shards(RedisEngineConfig.model_validate(options))


def test_one_address_many_forms() -> None:
    (spec,) = shards()
    assert (spec.kind, spec.hosts, spec.db, spec.tls) == (
        "standalone",
        (("127.0.0.1", 6379),),
        0,
        None,
    )
    (spec,) = shards(address="redis.example:7000", user="u", password="p", db=2)
    assert (spec.hosts, spec.username, spec.password, spec.db) == (
        (("redis.example", 7000),),
        "u",
        "p",
        2,
    )
    (spec,) = shards(address="rediss://al:s%40cret@h:6380/3", user="x", password="y")
    assert (spec.username, spec.password, spec.db, spec.tls) == ("al", "s@cret", 3, TLSOptions())
    (spec,) = shards(address="unix:///run/redis.sock?db=4")
    assert (spec.unix_path, spec.db) == ("/run/redis.sock", 4)
    (spec,) = shards(address="redis://h?tls_enabled=true")
    assert spec.tls == TLSOptions()
    (spec,) = shards(address="redis://[::1]:7000")
    assert spec.hosts == (("::1", 7000),)


def test_several_addresses_are_shards_in_order() -> None:
    specs = shards(address=["redis://a:1", "redis://b:2"], connect_timeout=0.5, io_timeout=2)
    assert [s.hosts for s in specs] == [(("a", 1),), (("b", 2),)]
    assert {(s.connect_timeout, s.io_timeout) for s in specs} == {(0.5, 2.0)}


def test_cluster_and_sentinel_addresses() -> None:
    (spec,) = shards(address="redis+cluster://a:1?addr=b:2&addr=c:3")
    assert (spec.kind, spec.hosts) == ("cluster", (("a", 1), ("b", 2), ("c", 3)))
    one, two = shards(cluster_address=["a:1,b:2", "redis://c:3"])
    assert (one.kind, one.hosts, two.hosts) == ("cluster", (("a", 1), ("b", 2)), (("c", 3),))
    (spec,) = shards(address="redis+sentinel://s:26379?sentinel_master_name=m&addr=t:26380")
    assert (spec.kind, spec.master_name, spec.hosts) == (
        "sentinel",
        "m",
        (("s", 26379), ("t", 26380)),
    )
    (spec,) = shards(sentinel_address=["s:1,t:2"], sentinel_master_name="m", sentinel_password="x")
    assert (spec.kind, spec.hosts, spec.sentinel_password) == (
        "sentinel",
        (("s", 1), ("t", 2)),
        "x",
    )
    assert spec.label == "sentinel m@s:1,t:2"


def test_tls_options() -> None:
    (spec,) = shards(
        tls={"enabled": True, "server_ca_pem_file": "/ca.pem", "insecure_skip_verify": True}
    )
    assert spec.tls == TLSOptions(ca_file="/ca.pem", verify=False)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"address": "ftp://h:1"}, "unknown scheme"),
        ({"address": "redis://h:notaport"}, "bad port"),
        ({"address": "redis://h:1/x"}, "bad database"),
        ({"address": "redis://h:1?timeout=1"}, "unsupported option 'timeout'"),
        ({"address": "redis+sentinel://h:1"}, "sentinel_master_name"),
        ({"address": []}, "at least one"),
        ({"address": "redis://u:secret@h:1?bad=1"}, r"u:\*\*\*@h"),
        ({"cluster_address": ["a:1"], "sentinel_address": ["b:2"]}, "not both"),
        ({"cluster_address": ["a:1"], "address": "redis://x"}, "address is not used"),
        ({"sentinel_address": ["a:1"]}, "needs sentinel_master_name"),
    ],
)
def test_bad_addresses_are_configuration_errors(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(overrides={"engine": {"type": "redis", "redis": options}}, environ=False)


def test_presence_must_be_refreshed_before_it_expires() -> None:
    with pytest.raises(ConfigError, match="presence_update_interval"):
        load_config(
            overrides={"engine": {"type": "redis", "redis": {"presence_ttl": 10}}}, environ=False
        )
    config = load_config(
        overrides={
            "engine": {"type": "redis", "redis": {"presence_ttl": 10}},
            "client": {"presence_update_interval": 4},
        },
        environ=False,
    )
    assert config.engine.redis.presence_ttl == 10


def test_the_generated_file_switches_to_a_cluster_by_one_edit(tmp_path: Path) -> None:
    """genconfig writes address at its default; setting cluster_address beside it works."""
    text = render_config().replace("cluster_address = []", 'cluster_address = ["a:1,b:2"]')
    path = tmp_path / "wirehub.toml"
    path.write_text(text)
    (spec,) = parse_shards(load_config(path, environ=False).engine.redis)
    assert (spec.kind, spec.hosts) == ("cluster", (("a", 1), ("b", 2)))
