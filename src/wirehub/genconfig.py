"""Renders a commented ``wirehub.toml`` with every option at its default."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from wirehub.config import Config, NamespaceOptions

__all__ = ["render_config"]

_HEADER = """\
# wirehub configuration. Every option is shown at its default.
# Environment variables override this file: WIREHUB_<SECTION>__<OPTION>, for example
# WIREHUB_SERVER__PORT=9000 or WIREHUB_CLIENT__TOKEN__HMAC_SECRET_KEY=...;
# command-line flags override both.
"""


def render_config() -> str:
    """Return the text of a default configuration file, comments included."""
    lines = [_HEADER]
    _render_model(Config.model_validate({}), [], lines)
    return "\n".join(lines).rstrip() + "\n"


def _render_model(model: BaseModel, path: list[str], lines: list[str]) -> None:
    fields = type(model).model_fields
    tables: list[tuple[str, Any]] = []
    for name, field in fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel) or _is_namespace_list(name, path):
            tables.append((name, value))
            continue
        if field.description:
            lines.append(f"# {field.description}")
        if value is None:
            lines.append(f"# {name} =   (not set by default)")
        else:
            lines.append(f"{name} = {_toml(value)}")
    for name, value in tables:
        description = fields[name].description or ""
        lines.append("")
        if isinstance(value, BaseModel):
            lines.append(f"# {description}" if description else "")
            lines.append(f"[{'.'.join([*path, name])}]")
            _render_model(value, [*path, name], lines)
        else:
            _render_namespace_example([*path, name], description, lines)


def _is_namespace_list(name: str, path: list[str]) -> bool:
    return path == ["channel"] and name == "namespaces"


def _render_namespace_example(path: list[str], description: str, lines: list[str]) -> None:
    lines.append(f"# {description}; for example:")
    lines.append(f"# [[{'.'.join(path)}]]")
    example = NamespaceOptions(name="chat")
    for name, field in NamespaceOptions.model_fields.items():
        lines.append(f"# {name} = {_toml(getattr(example, name))}  # {field.description}")


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    if isinstance(value, BaseModel):  # an inline table, inside a list
        items = (f"{name} = {_toml(getattr(value, name))}" for name in type(value).model_fields)
        return "{" + ", ".join(items) + "}"
    # TOML basic strings and arrays of strings share JSON's syntax.
    return json.dumps(value)
