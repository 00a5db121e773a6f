"""``WIREHUB_*`` environment variables -> a nested dict of options, not yet validated.

Rules:

1. ``WIREHUB_`` + the option's path, parts joined by ``__``, case-insensitive:
   ``WIREHUB_CLIENT__TOKEN__HMAC_SECRET_KEY`` is ``client.token.hmac_secret_key``.
2. A list, a table or a whole section takes JSON: ``WIREHUB_CLIENT__ALLOWED_ORIGINS='["x"]'``.
   JSON that does not parse is an error naming the variable and the option. An option
   that is text or a list (``engine.redis.address``) takes the text as it is, and JSON
   when it starts with ``[`` or ``{``.
3. A variable naming no section (``WIREHUB_SERVR__PORT``) is reported through ``warn`` with
   the closest section name, and ignored: the environment holds other programs' variables
   too. ``WIREHUB_TEST*`` and ``WIREHUB_STRICT`` belong to wirehub's test suite and are
   skipped. An unknown option inside a known section is an error, as in a file.
4. Values stay strings (or parsed JSON); the models validate and coerce them, and an
   invalid one is reported with the variable that set it (:func:`source_of`).
"""

from __future__ import annotations

import difflib
import json
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel

__all__ = ["EnvError", "EnvValues", "read_environment"]

PREFIX = "WIREHUB_"
_RESERVED = ("WIREHUB_TEST", "WIREHUB_STRICT")


class EnvError(Exception):
    """A variable can't be used; the message names it and its option."""


class EnvValues:
    """The options the environment sets, and which variable set each."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.sources: dict[tuple[str, ...], str] = {}

    def source_of(self, location: tuple[str | int, ...]) -> str | None:
        """The variable that set the option at ``location`` (or one of its parents)."""
        parts = tuple(str(part) for part in location)
        for length in range(len(parts), 0, -1):
            if parts[:length] in self.sources:
                return self.sources[parts[:length]]
        return None

    def _set(self, path: tuple[str, ...], value: Any, variable: str) -> None:
        node = self.data
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
        self.sources[path] = variable


def read_environment(
    model: type[BaseModel], environ: Mapping[str, str], warn: Callable[[str], None]
) -> EnvValues:
    """Collect the options ``environ`` sets for ``model`` (see the module rules).

    Raises:
        EnvError: a variable names an unknown option of a known section, or its JSON
            does not parse.
    """
    values = EnvValues()
    for variable in sorted(environ):
        upper = variable.upper()
        if not upper.startswith(PREFIX) or upper.startswith(_RESERVED):
            continue
        path = tuple(part.lower() for part in variable[len(PREFIX) :].split("__"))
        if path[0] not in model.model_fields:
            warn(_unknown_section(variable, path[0], model))
            continue
        values._set(path, _value(model, path, variable, environ[variable]), variable)
    return values


def _unknown_section(variable: str, section: str, model: type[BaseModel]) -> str:
    close = difflib.get_close_matches(section, list(model.model_fields), n=1)
    hint = f" (did you mean {PREFIX}{close[0].upper()}...?)" if close else ""
    return f"ignoring {variable}: wirehub has no option section {section!r}{hint}"


def _value(model: type[BaseModel], path: tuple[str, ...], variable: str, raw: str) -> Any:
    annotation: Any = model
    for depth, part in enumerate(path):
        section = _model(annotation)
        fields = section.model_fields if section is not None else {}
        if part not in fields:
            option = ".".join(path[: depth + 1])
            raise EnvError(f"{variable}: {option} is not an option")
        annotation = fields[part].annotation
        if depth < len(path) - 1 and _model(annotation) is None:
            option = ".".join(path[: depth + 1])
            raise EnvError(f"{variable}: {option} has no sub-options")
    if not _structured(annotation):
        return raw
    if _takes_text(annotation) and not raw.lstrip().startswith(("[", "{")):
        return raw  # `str | list[str]`: a plain value is the text, JSON the list
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        option = ".".join(path)
        raise EnvError(f"{variable} ({option}) must be JSON: {exc}") from None


def _model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _takes_text(annotation: Any) -> bool:
    """Whether a union option also takes a plain string."""
    origin = typing.get_origin(annotation)
    return origin in (typing.Union, types.UnionType) and str in typing.get_args(annotation)


def _structured(annotation: Any) -> bool:
    """Whether the option takes JSON: a model, a list or a table."""
    if _model(annotation) is not None:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_structured(arg) for arg in typing.get_args(annotation) if arg is not type(None))
    return origin in (list, dict, tuple, set) or annotation in (list, dict, tuple, set)
