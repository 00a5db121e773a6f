"""``log_failure``: a broker that cannot be reached is one warning line per failure, not
a traceback per request (a Redis restart fails every request the same way)."""

from __future__ import annotations

import logging

import pytest

from wirehub.errors import log_failure

logger = logging.getLogger("wirehub.test")


@pytest.mark.parametrize(
    "error",
    [ConnectionRefusedError(111, "Connection refused"), TimeoutError(), OSError("unreachable")],
)
def test_an_unreachable_broker_is_one_warning_line(
    caplog: pytest.LogCaptureFixture, error: Exception
) -> None:
    with caplog.at_level(logging.INFO, "wirehub.test"):
        try:
            raise error
        except Exception:
            log_failure(logger, "api %s failed", "publish")
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert record.exc_info is None
    assert record.getMessage() == f"api publish failed: {str(error) or 'TimeoutError'}"


def test_anything_else_keeps_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, "wirehub.test"):
        try:
            raise KeyError("bug")
        except Exception:
            log_failure(logger, "api %s failed", "publish")
    (record,) = caplog.records
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert record.getMessage() == "api publish failed"
