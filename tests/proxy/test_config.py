"""Proxy configuration checks (``wirehub.proxy.config``): what is refused at start, and
with which message. A real ``wirehub serve`` refusing to start is in test_proxies.py."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from wirehub.config import ConfigError, load_config


def load(overrides: dict[str, Any]) -> None:
    load_config(None, overrides, environ=False)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"client": {"proxy": {"connect": {"enabled": True, "endpoint": "grpc://h:1"}}}},
            "client.proxy.connect.endpoint: .*gRPC proxies are not supported",
        ),
        (
            {"rpc": {"proxy": {"endpoint": "http://h", "grpc_metadata": ["x"]}}},
            "rpc.proxy: .*grpc_metadata: gRPC proxies are not supported",
        ),
        (
            {"proxies": [{"name": "a", "endpoint": "http://h", "grpc": {}}]},
            "proxies.0: .*grpc: gRPC proxies are not supported",
        ),
        (
            {"client": {"proxy": {"refresh": {"enabled": True}}}},
            "client.proxy.refresh: .*an enabled proxy needs an endpoint",
        ),
        (
            {"channel": {"proxy": {"publish": {"endpoint": "ftp://h/x"}}}},
            "channel.proxy.publish.endpoint: .*must be an http:// or https:// URL",
        ),
        (
            {
                "channel": {
                    "namespaces": [
                        {"name": "a", "subscribe_proxy_enabled": True, "subscribe_proxy_name": "b"}
                    ]
                }
            },
            r"channel.namespaces\['a'\].subscribe_proxy_name: no proxy named 'b' in proxies",
        ),
        (
            {"channel": {"without_namespace": {"sub_refresh_proxy_enabled": True}}},
            "channel.without_namespace.sub_refresh_proxy_name: the default proxy needs "
            "channel.proxy.sub_refresh.endpoint",
        ),
        (
            {"rpc": {"namespaces": [{"name": "a", "proxy_enabled": True, "proxy_name": "x"}]}},
            r"rpc.namespaces\['a'\].proxy_name: no proxy named 'x'",
        ),
        (
            {"rpc": {"without_namespace": {"proxy_enabled": True}}},
            "rpc.without_namespace.proxy_name: the default proxy needs rpc.proxy.endpoint",
        ),
        (
            {"proxies": [{"name": "default", "endpoint": "http://h"}]},
            "'default' names the proxy of channel.proxy",
        ),
        (
            {
                "proxies": [
                    {"name": "a", "endpoint": "http://h"},
                    {"name": "a", "endpoint": "http://i"},
                ]
            },
            "proxies: names must be unique",
        ),
        (
            {"proxies": [{"name": "a"}]},
            "proxy 'a' needs an endpoint",
        ),
        (
            {"rpc": {"proxy": {"endpoint": "http://h", "http_headers": ["bad header"]}}},
            "not a header name",
        ),
        (
            {
                "rpc": {
                    "proxy": {
                        "endpoint": "http://h",
                        "http": {"status_to_code_transforms": [{"status_code": 500}]},
                    }
                }
            },
            "exactly one of to_error and to_disconnect",
        ),
    ],
)
def test_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(overrides)


def test_a_full_configuration_loads() -> None:
    config = load_config(
        None,
        {
            "client": {"proxy": {"connect": {"enabled": True, "endpoint": "https://h/c"}}},
            "channel": {
                "proxy": {"subscribe": {"endpoint": "http://h/s"}},
                "namespaces": [
                    {"name": "a", "subscribe_proxy_enabled": True},
                    {"name": "b", "publish_proxy_enabled": True, "publish_proxy_name": "p"},
                ],
            },
            "rpc": {"namespaces": [{"name": "r", "proxy_enabled": True, "proxy_name": "p"}]},
            "proxies": [
                {"name": "p", "endpoint": "http://h/p", "http_headers": ["X-Token", "Cookie"]}
            ],
        },
        environ=False,
    )
    # The transports keep what proxies forward, besides client.transport_headers.
    assert {"x-token", "cookie", "user-agent"} <= config.kept_headers


def test_the_docs_configuration_loads(tmp_path: Path) -> None:
    """docs/proxies.md's example configuration is a valid wirehub.toml."""
    text = (Path(__file__).parents[2] / "docs" / "proxies.md").read_text()
    match = re.search(r"```toml\n(.*?)```", text, re.DOTALL)
    assert match is not None
    path = tmp_path / "wirehub.toml"
    path.write_text(match.group(1))
    config = load_config(path, environ=False)
    assert config.client.proxy.connect.timeout == 1.0
    assert [p.name for p in config.proxies] == ["billing"]
