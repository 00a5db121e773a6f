"""wirehub standalone with an ``echo`` RPC handler: the "wirehub" stack of the RPC scenario.

    python bench/wirehub_rpc.py --port 8000          # config: bench/wirehub.toml
    # clients: ws://127.0.0.1:8000/connection/websocket, then
    # {"rpc":{"method":"echo","data":{...}},"id":N} -> {"id":N,"rpc":{"data":{...}}}

Served exactly as `wirehub serve --config bench/wirehub.toml` serves (wirehub.cli.run:
uvloop, httptools, wirehub's own WebSocket protocol class), with a Node built here so
that an ``on_rpc`` handler can be registered. The handler returns the request's raw JSON
bytes, which wirehub sends as they are (no decode, no re-encode).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from wirehub import Node, load_config
from wirehub.cli import run
from wirehub.core.events import RPCEvent, RPCReply

CONFIG = Path(__file__).with_name("wirehub.toml")


def build_node(config_path: Path = CONFIG, overrides: dict[str, Any] | None = None) -> Node:
    node = Node(load_config(str(config_path), overrides or {}))

    @node.on_rpc
    async def echo(event: RPCEvent) -> RPCReply:
        # Any method echoes; bytes in a reply are taken as already-encoded JSON.
        return RPCReply(data=event.data)

    return node


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args()
    # The same overrides as `wirehub serve --host --port --log-level`.
    flags = {"host": args.host, "port": args.port, "log_level": args.log_level}
    server = {key: value for key, value in flags.items() if value is not None}
    node = build_node(args.config, {"server": server} if server else {})
    run(node.config, node=node)


if __name__ == "__main__":
    main()
