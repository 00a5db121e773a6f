"""Peer: python-socketio (ASGI mode) under uvicorn, room emit.

- "join" (acknowledged): enter a room (FANOUT, LATENCY: room "bench"; MANY CHANNELS: a
  personal and a group room);
- "pub" data: emitted to the room "bench" as "msg" (FANOUT, LATENCY);
- "pubto" room, data: emitted to that room as "msg" (MANY CHANNELS);
- "echo" data: acknowledged with the data (RPC: emit with a callback).

Usage: python bench/peers/socketio_server.py --port 8004
"""

from __future__ import annotations

import argparse
from typing import Any

import socketio
import uvicorn

sio = socketio.AsyncServer(async_mode="asgi", transports=["websocket"], cors_allowed_origins=[])
app = socketio.ASGIApp(sio)


@sio.on("join")
async def join(sid: str, room: Any) -> bool:
    await sio.enter_room(sid, str(room))
    return True


@sio.on("pub")
async def pub(sid: str, data: Any) -> None:
    await sio.emit("msg", data, room="bench")


@sio.on("pubto")
async def pubto(sid: str, room: Any, data: Any) -> None:
    await sio.emit("msg", data, room=str(room))


@sio.on("echo")
async def echo(sid: str, data: Any) -> Any:
    return data


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8004)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
