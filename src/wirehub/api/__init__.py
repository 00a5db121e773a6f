"""The Centrifugo-compatible server API: HTTP (``POST /api/<method>``) and its executor."""

from __future__ import annotations

from wirehub.api.executor import ApiError, ApiExecutor

__all__ = ["ApiError", "ApiExecutor"]
