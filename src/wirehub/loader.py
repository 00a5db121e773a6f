"""``wirehub serve --app TARGET``: the application's own Node, with its handlers.

``TARGET`` is ``module:attribute`` (the module imported from the current directory, as
uvicorn does) or ``path/to/file.py:attribute``. The attribute is either a :class:`Node`,
served as it is, or a function taking the :class:`Config` that ``wirehub serve`` loaded
(file, environment, flags) and returning a Node: the form to use when the command line
should decide the configuration.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from wirehub.config import Config
from wirehub.core.node import Node

__all__ = ["AppError", "load_app"]


class AppError(Exception):
    """``--app`` names nothing usable; the message says what is wrong."""


def load_app(target: str) -> Node | Callable[[Config], Node]:
    """Import ``target`` and return the Node, or the function that builds one.

    Raises:
        AppError: a malformed target, a module that fails to import, a missing
            attribute, or one that is neither a Node nor callable.
    """
    module_name, sep, attribute = target.rpartition(":")
    if not sep or not module_name or not attribute:
        raise AppError(f"--app {target!r}: expected module:attribute or file.py:attribute")
    module = _import(module_name)
    value: Any = module
    for part in attribute.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise AppError(f"--app {target!r}: {module_name} has no {attribute!r}") from None
    if isinstance(value, Node) or callable(value):
        return value  # type: ignore[no-any-return]
    raise AppError(
        f"--app {target!r}: {attribute} is a {type(value).__name__}; expected a wirehub "
        "Node or a function taking the Config and returning one"
    )


def build_node(app: Node | Callable[[Config], Node], config: Config) -> Node:
    """The node to serve: ``app`` itself, or what it returns for ``config``."""
    if isinstance(app, Node):
        return app
    node = app(config)
    if not isinstance(node, Node):
        raise AppError(f"--app: the function returned a {type(node).__name__}, not a Node")
    return node


def _import(name: str) -> ModuleType:
    try:
        if name.endswith(".py"):
            return _import_file(Path(name))
        if "" not in sys.path and str(Path.cwd()) not in sys.path:
            sys.path.insert(0, str(Path.cwd()))
        return importlib.import_module(name)
    except AppError:
        raise
    except Exception as exc:  # the application's own import-time errors, named
        raise AppError(f"--app: importing {name} failed: {type(exc).__name__}: {exc}") from exc


def _import_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise AppError(f"--app: {path} does not exist")
    module_name = f"_wirehub_app_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise AppError(f"--app: cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    # The file's own folder first, so that it can import its neighbours.
    sys.path.insert(0, str(path.resolve().parent))
    spec.loader.exec_module(module)
    return module
