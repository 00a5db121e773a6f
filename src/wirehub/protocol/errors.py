"""The one error the protocol layer raises."""

from __future__ import annotations

__all__ = ["ProtocolError"]


class ProtocolError(Exception):
    """The peer sent bytes that are not a valid command frame.

    The connection that sent them is closed with disconnect 3501 "bad request".
    """
