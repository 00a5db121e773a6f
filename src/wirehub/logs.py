"""Logging of ``wirehub serve``: one event per line, as text or as JSON.

``log.format = "json"`` writes every record of wirehub's loggers and uvicorn's as one
JSON object per line (``time``, ``level``, ``logger``, ``message``, plus the fields
the record carries, such as ``client``, ``user``, ``code``), for log shippers.

Nothing logged carries a token, an API key or a message payload; text that a client
controls (a user id) is quoted and bounded where it is logged, and JSON escapes the
rest.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
from typing import Any

from uvicorn.config import LOGGING_CONFIG

__all__ = ["JsonFormatter", "logging_config"]

# Attributes every LogRecord has: the rest are fields passed with extra=.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's colored copy of the message
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """A record as one JSON object on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def logging_config(level: str, log_format: str = "text") -> dict[str, Any]:
    """The ``logging.config.dictConfig`` of ``wirehub serve``: uvicorn's, plus the
    ``wirehub`` loggers, with JSON formatters when ``log_format`` is ``"json"``."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["wirehub"] = {
        "handlers": ["default"],
        "level": level.upper(),
        "propagate": False,
    }
    config["loggers"]["wirehub.websocket.protocol"] = {"level": "WARNING"}
    if log_format == "json":
        for name in config["formatters"]:
            config["formatters"][name] = {"()": "wirehub.logs.JsonFormatter"}
    return config
