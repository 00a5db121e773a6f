"""The transport interface: all the core may do with a connection.

A transport writes frames and closes. It never sees brokers or the hub: its read side
hands complete frames to :meth:`wirehub.core.client.Client.handle_frame` and reports
the connection's end with ``Client.transport_closed``.
"""

from __future__ import annotations

from typing import Protocol

from wirehub.core.events import TransportInfo
from wirehub.errors import Disconnect

__all__ = ["Transport", "TransportInfo"]


class Transport(Protocol):
    @property
    def info(self) -> TransportInfo: ...

    def write_frame(self, data: bytes) -> None:
        """Send one frame (several encoded replies joined by the codec). Never blocks;
        the transport reports pressure with ``Client.pause_writing``."""
        ...

    def close(self, disconnect: Disconnect) -> None:
        """Close with the disconnect's code and reason. Idempotent."""
        ...

    def pause_reading(self) -> None:
        """Stop reading frames until :meth:`resume_reading` (inbound backpressure)."""
        ...

    def resume_reading(self) -> None: ...
