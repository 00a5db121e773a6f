"""What every configuration section shares: the model base and the checks of names.

:mod:`wirehub.config`, :mod:`wirehub.proxy.config` and
:mod:`wirehub.transports.config` build their sections on :class:`Section`: frozen
(a running node's configuration does not change) and strict (an unknown option is an
error naming it, never ignored).
"""

from __future__ import annotations

import re
from typing import Final

from pydantic import BaseModel, ConfigDict

__all__ = ["HEADER_NAME", "Section"]

HEADER_NAME: Final = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
"""An HTTP header name (RFC 9110 token)."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
