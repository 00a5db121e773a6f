"""The transports' configuration sections: ``websocket``, ``http_stream``, ``sse``,
``emulation``, ``uni_websocket``, ``uni_sse``, ``uni_http_stream`` (Centrifugo v6's names;
``docs/transports.md``). Part of :class:`wirehub.config.Config`, which re-exports them.
"""

from __future__ import annotations

from pydantic import Field

from wirehub.sections import Section

__all__ = [
    "EmulationConfig",
    "HttpStreamConfig",
    "SseConfig",
    "UniHttpStreamConfig",
    "UniSseConfig",
    "UniWebSocketConfig",
    "WebSocketConfig",
]


class WebSocketConfig(Section):
    message_size_limit: int = Field(
        65_536,
        gt=0,
        description="largest incoming message, bytes (decompressed); beyond, close 1009",
    )
    compression: bool = Field(
        False, description="negotiate permessage-deflate with clients that offer it"
    )
    compression_level: int = Field(
        1, ge=0, le=9, description="zlib level of outgoing frames, 0 (none) to 9 (smallest)"
    )
    pre_connect_message_size_limit: int = Field(
        16_384,
        gt=0,
        description="largest incoming message before the connect command succeeded, bytes; beyond, close 1009",
    )


_BODY_SIZE = 65_536


class HttpStreamConfig(Section):
    """Bidirectional emulation over HTTP streaming (``POST /connection/http_stream``)."""

    enabled: bool = Field(
        False, description="serve /connection/http_stream (and /emulation for its commands)"
    )
    max_request_body_size: int = Field(
        _BODY_SIZE, gt=0, description="largest body of the connecting POST, bytes; beyond, 413"
    )


class SseConfig(Section):
    """Bidirectional emulation over Server-Sent Events (``/connection/sse``)."""

    enabled: bool = Field(
        False, description="serve /connection/sse (and /emulation for its commands)"
    )
    max_request_body_size: int = Field(
        _BODY_SIZE, gt=0, description="largest body of a connecting POST, bytes; beyond, 413"
    )


class EmulationConfig(Section):
    """``POST /emulation``: the commands of HTTP-streaming and SSE clients."""

    max_request_body_size: int = Field(
        _BODY_SIZE, gt=0, description="largest emulation request body, bytes; beyond, 413"
    )


class UniWebSocketConfig(Section):
    """Unidirectional WebSocket (``/connection/uni_websocket``): pushes only."""

    enabled: bool = Field(False, description="serve /connection/uni_websocket")
    message_size_limit: int = Field(
        _BODY_SIZE, gt=0, description="largest incoming message (the connect request), bytes"
    )
    join_push_messages: bool = Field(
        False, description="several pushes per WebSocket message, joined by newlines"
    )


class UniSseConfig(Section):
    """Unidirectional SSE (``/connection/uni_sse``): a plain ``EventSource`` works."""

    enabled: bool = Field(False, description="serve /connection/uni_sse")
    max_request_body_size: int = Field(
        _BODY_SIZE, gt=0, description="largest body of a connecting POST, bytes; beyond, 413"
    )


class UniHttpStreamConfig(Section):
    """Unidirectional HTTP streaming (``POST /connection/uni_http_stream``)."""

    enabled: bool = Field(False, description="serve /connection/uni_http_stream")
    max_request_body_size: int = Field(
        _BODY_SIZE, gt=0, description="largest body of the connecting POST, bytes; beyond, 413"
    )
