"""Peer: the websockets library, on uvloop (as uvicorn and wirehub run).

Usage: python bench/peers/websockets_server.py --port 8005 [--mode broadcast|echo|rooms]

- broadcast (default): every text message a client sends is sent to every other connected
  client with ``websockets.broadcast()`` (FANOUT, LATENCY);
- echo: every message is sent back to its sender (RPC);
- rooms: a dict room -> connections (MANY CHANNELS): ``join <room>`` adds the sender to
  the room and is answered ``joined <room>``; ``pub <room> <payload>`` broadcasts
  ``<payload>`` to the room's members with ``websockets.broadcast()``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from websockets.asyncio.server import ServerConnection, broadcast, serve

CONNECTIONS: set[ServerConnection] = set()
ROOMS: dict[str, set[ServerConnection]] = {}


async def broadcast_handler(websocket: ServerConnection) -> None:
    CONNECTIONS.add(websocket)
    try:
        async for message in websocket:
            broadcast(CONNECTIONS - {websocket}, message)
    finally:
        CONNECTIONS.discard(websocket)


async def echo_handler(websocket: ServerConnection) -> None:
    async for message in websocket:
        await websocket.send(message)


async def rooms_handler(websocket: ServerConnection) -> None:
    joined: list[str] = []
    try:
        async for message in websocket:
            if not isinstance(message, str):
                continue
            if message.startswith("pub "):
                room, _, payload = message[4:].partition(" ")
                members = ROOMS.get(room)
                if members:
                    broadcast(members, payload)
            elif message.startswith("join "):
                room = message[5:]
                ROOMS.setdefault(room, set()).add(websocket)
                joined.append(room)
                await websocket.send(f"joined {room}")
    finally:
        for room in joined:
            members = ROOMS.get(room)
            if members is not None:
                members.discard(websocket)
                if not members:
                    del ROOMS[room]


HANDLERS = {"broadcast": broadcast_handler, "echo": echo_handler, "rooms": rooms_handler}


async def serve_forever(host: str, port: int, mode: str) -> None:
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with serve(HANDLERS[mode], host, port, compression=None, max_queue=None):
        print(f"websockets peer ({mode}) listening on ws://{host}:{port}/", flush=True)
        await stop


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8005)
    parser.add_argument("--mode", choices=list(HANDLERS), default="broadcast")
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve_forever(args.host, args.port, args.mode))
    else:
        uvloop.run(serve_forever(args.host, args.port, args.mode))


if __name__ == "__main__":
    main()
