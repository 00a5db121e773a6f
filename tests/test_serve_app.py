"""`wirehub serve --app`: user handlers on the standalone server, both forms."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from centrifuge import Client

from tests.support.pysdk import disconnect
from tests.support.server import ServerProcess, timeout

pytestmark = [pytest.mark.anyio, pytest.mark.interop]

APP = """
from wirehub import Config, Node, RPCEvent, RPCReply, load_config

def _with_echo(node: Node) -> Node:
    @node.on_rpc
    async def echo(event: RPCEvent) -> RPCReply:
        return RPCReply(data={"method": event.method, "port": node.config.server.port})
    return node

# A Node with its own configuration: served as it is (flags still apply).
node = _with_echo(Node(load_config(None, {"client": {"allow_anonymous_connect_without_token": True}})))

# A factory: gets the configuration `wirehub serve` loaded (file, environment, flags).
def create_node(config: Config) -> Node:
    return _with_echo(Node(config))
"""


async def _rpc(server: ServerProcess) -> object:
    client = Client(server.ws_url)
    await client.connect()
    try:
        return (await asyncio.wait_for(client.rpc("ping", {}), timeout(10))).data
    finally:
        await disconnect(client)


@pytest.mark.parametrize("form", ["module", "file"])
async def test_serve_a_node_object(
    server_factory: Callable[..., ServerProcess], tmp_path: Path, form: str
) -> None:
    (tmp_path / "myapp.py").write_text(APP, encoding="utf-8")
    target = "myapp:node" if form == "module" else str(tmp_path / "myapp.py") + ":node"
    server = ServerProcess(None, cwd=tmp_path, args=["--app", target]).start()
    try:
        # Served on the port of the command line (--port 0, any free one), while the
        # node keeps its own configuration (port 8000 there).
        assert await _rpc(server) == {"method": "ping", "port": 8000}
    finally:
        server.stop()


async def test_serve_a_node_factory_with_the_loaded_config(
    server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    (tmp_path / "myapp.py").write_text(APP, encoding="utf-8")
    server = server_factory(
        "[client]\nallow_anonymous_connect_without_token = true\n",
        cwd=tmp_path,
        args=["--app", "myapp:create_node"],
    )
    assert await _rpc(server) == {"method": "ping", "port": 0}


def test_configuration_warnings_come_out_in_the_log_format(
    server_factory: Callable[..., ServerProcess],
) -> None:
    """With log.format = "json", a warning about the environment is a JSON line too."""
    server = server_factory(
        '[log]\nformat = "json"\n[client]\nallow_anonymous_connect_without_token = true\n',
        env={"WIREHUB_SERVR__PORT": "1"},
    )
    line = server.wait_for(r"ignoring WIREHUB_SERVR__PORT").string
    entry = json.loads(line)
    assert entry["level"] == "warning"
    assert "did you mean WIREHUB_SERVER" in entry["message"]
