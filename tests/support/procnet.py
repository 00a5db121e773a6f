"""Which process holds the server side of a TCP connection (Linux /proc), for tests of
several worker processes sharing one listening socket."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["owner_of"]


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for entry in os.listdir(fd_dir):
        try:
            target = os.readlink(fd_dir / entry)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def owner_of(client_port: int, server_port: int, pids: list[int]) -> int | None:
    """The pid among ``pids`` holding the accepted socket of the connection that a
    client made from local port ``client_port`` to ``server_port``."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if local_port == server_port and remote_port == client_port:
                inode = fields[9]
                for pid in pids:
                    if inode in _socket_inodes(pid):
                        return pid
    return None
