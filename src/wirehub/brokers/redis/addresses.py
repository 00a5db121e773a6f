"""From ``engine.redis`` options to one connection description per shard. Pure.

Forms of an address (Centrifugo's, the subset that applies):

- ``host:port``; ``redis://[user:password@]host[:port][/db]``; ``rediss://...`` (TLS);
  ``unix:///path/to/redis.sock[?db=N]``;
- ``redis+sentinel://host:port?sentinel_master_name=NAME&addr=host2:port2`` (or any
  address with ``sentinel_master_name``): the master that these Sentinels name;
- ``redis+cluster://host:port?addr=host2:port2``: a Redis Cluster with these seeds.

``addr`` adds a seed or Sentinel and may repeat; ``tls_enabled=true`` is ``rediss``.
Credentials and the database in a URL win over ``user``/``password``/``db``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal
from urllib.parse import parse_qs, unquote, urlsplit

if TYPE_CHECKING:
    from wirehub.config import RedisEngineConfig, RedisTLSConfig

__all__ = ["ShardSpec", "TLSOptions", "check_partitions", "parse_shards"]

Kind = Literal["standalone", "cluster", "sentinel"]
_QUERY_OPTIONS = {"addr", "sentinel_master_name", "tls_enabled", "db"}


@dataclass(frozen=True, slots=True)
class TLSOptions:
    certfile: str = ""
    keyfile: str = ""
    ca_file: str = ""
    ca_data: str = ""
    verify: bool = True


@dataclass(frozen=True, slots=True)
class ShardSpec:
    """How to reach one shard: a Redis, a Sentinel-managed master, or a Cluster."""

    kind: Kind
    hosts: tuple[tuple[str, int], ...]
    """The Redis, the Cluster seeds, or the Sentinels."""
    unix_path: str = ""
    db: int = 0
    username: str = ""
    password: str = ""
    client_name: str = ""
    tls: TLSOptions | None = None
    master_name: str = ""
    sentinel_username: str = ""
    sentinel_password: str = ""
    sentinel_tls: TLSOptions | None = None
    connect_timeout: float = 1.0
    io_timeout: float = 4.0

    @property
    def label(self) -> str:
        """For logs: where it points, without credentials."""
        where = self.unix_path or ",".join(f"{host}:{port}" for host, port in self.hosts)
        if self.kind == "sentinel":
            return f"sentinel {self.master_name}@{where}"
        return f"{self.kind} {where}" if self.kind == "cluster" else where


def _tls(config: RedisTLSConfig) -> TLSOptions | None:
    if not config.enabled:
        return None
    return TLSOptions(
        certfile=config.cert_pem_file,
        keyfile=config.key_pem_file,
        ca_file=config.server_ca_pem_file,
        ca_data=config.server_ca_pem,
        verify=not config.insecure_skip_verify,
    )


def parse_shards(config: RedisEngineConfig) -> list[ShardSpec]:
    """One spec per shard, in the configured order (the order sharding depends on).

    Raises:
        ValueError: an address that can't be understood; the message quotes it.
    """
    base = ShardSpec(
        kind="standalone",
        hosts=(),
        db=config.db,
        username=config.user,
        password=config.password,
        client_name=config.client_name,
        tls=_tls(config.tls),
        master_name=config.sentinel_master_name,
        sentinel_username=config.sentinel_user,
        sentinel_password=config.sentinel_password,
        sentinel_tls=_tls(config.sentinel_tls),
        connect_timeout=config.connect_timeout,
        io_timeout=config.io_timeout,
    )
    if config.cluster_address:
        return [
            _group(element, replace(base, kind="cluster")) for element in config.cluster_address
        ]
    if config.sentinel_address:
        return [
            _group(element, replace(base, kind="sentinel")) for element in config.sentinel_address
        ]
    addresses = [config.address] if isinstance(config.address, str) else config.address
    return [_address(address, base) for address in addresses]


def check_partitions(specs: list[ShardSpec], partitions: int) -> None:
    """Sharded PUB/SUB partitions need every shard to be a Redis Cluster (SSUBSCRIBE
    lives in a slot; Centrifugo refuses them otherwise too).

    Raises:
        ValueError: naming the first shard that is not a Cluster.
    """
    if partitions < 0:
        raise ValueError("sharded_pub_sub_partitions must not be negative")
    if not partitions:
        return
    for spec in specs:
        if spec.kind != "cluster":
            raise ValueError(
                f"sharded_pub_sub_partitions needs Redis Cluster (cluster_address or "
                f"redis+cluster:// addresses): {spec.label!r} is {spec.kind}"
            )


def _group(element: str, base: ShardSpec) -> ShardSpec:
    """A comma-separated list of seeds or Sentinels: one shard."""
    parts = [part.strip() for part in element.split(",") if part.strip()]
    if not parts:
        raise ValueError(f"empty address {element!r}")
    spec = _address(parts[0], base, kind=base.kind)
    hosts = list(spec.hosts)
    for part in parts[1:]:
        hosts.extend(_address(part, base, kind=base.kind).hosts)
    return replace(spec, hosts=tuple(dict.fromkeys(hosts)))


def _address(address: str, base: ShardSpec, *, kind: Kind | None = None) -> ShardSpec:
    text = address.strip()
    if "://" not in text:
        return replace(base, kind=kind or "standalone", hosts=(_host_port(text, address),))
    url = urlsplit(text)
    query = parse_qs(url.query, keep_blank_values=True)
    unknown = set(query) - _QUERY_OPTIONS
    if unknown:
        raise ValueError(f"unsupported option {sorted(unknown)[0]!r} in {_safe(address)!r}")
    scheme = url.scheme.lower()
    spec = replace(base, kind=kind or _kind(scheme, query, address))
    if scheme.startswith("rediss") or _flag(query, "tls_enabled", address):
        spec = replace(spec, tls=spec.tls or TLSOptions())
    if url.username:
        spec = replace(spec, username=unquote(url.username), password=unquote(url.password or ""))
    elif url.password:
        spec = replace(spec, password=unquote(url.password))
    if "sentinel_master_name" in query:
        spec = replace(spec, master_name=query["sentinel_master_name"][-1])
    if scheme == "unix":
        return replace(
            spec, unix_path=url.path, db=_db(query.get("db", [""])[-1], spec.db, address)
        )
    db_text = url.path.lstrip("/") or query.get("db", [""])[-1]
    spec = replace(spec, db=_db(db_text, spec.db, address))
    hosts = [_host_port(url.netloc.rpartition("@")[2], address)]
    hosts.extend(_host_port(extra, address) for extra in query.get("addr", []))
    if spec.kind == "sentinel" and not spec.master_name:
        raise ValueError(f"{_safe(address)!r}: Sentinel needs sentinel_master_name")
    return replace(spec, hosts=tuple(hosts))


def _kind(scheme: str, query: dict[str, list[str]], address: str) -> Kind:
    if scheme in ("redis+sentinel", "rediss+sentinel") or "sentinel_master_name" in query:
        return "sentinel"
    if scheme in ("redis+cluster", "rediss+cluster"):
        return "cluster"
    if scheme in ("redis", "rediss", "tcp", "unix"):
        return "standalone"
    raise ValueError(f"unknown scheme {scheme!r} in {_safe(address)!r}")


def _host_port(text: str, address: str) -> tuple[str, int]:
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = text, "6379"
    host = host.strip("[]")
    if not host:
        raise ValueError(f"no host in {_safe(address)!r}")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"bad port in {_safe(address)!r}") from None
    if not 0 < port < 65536:
        raise ValueError(f"bad port in {_safe(address)!r}")
    return host, port


def _db(text: str, default: int, address: str) -> int:
    if not text:
        return default
    if not text.isdigit():
        raise ValueError(f"bad database number in {_safe(address)!r}")
    return int(text)


def _flag(query: dict[str, list[str]], name: str, address: str) -> bool:
    values = query.get(name)
    if not values:
        return False
    value = values[-1].lower()
    if value not in ("true", "false", "1", "0", ""):
        raise ValueError(f"{name} must be true or false in {_safe(address)!r}")
    return value in ("true", "1", "")


def _safe(address: str) -> str:
    """The address without its password, for error messages."""
    url = urlsplit(address) if "://" in address else None
    if url is None or not url.password:
        return address
    return address.replace(f":{url.password}@", ":***@", 1)
