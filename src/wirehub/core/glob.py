"""Channel patterns of the server API's ``channels`` method. Pure.

The syntax of gobwas/glob, which Centrifugo uses, compiled without separators (so
``*`` also matches ``:``): ``*`` any run of characters, ``?`` one character,
``[abc]``/``[a-z]`` one of, ``[!abc]`` none of, ``{a,b}`` either alternative (may
nest), ``\\`` escapes the next character.
"""

from __future__ import annotations

import re

__all__ = ["compile_glob"]


def compile_glob(pattern: str) -> re.Pattern[str]:
    """Compile ``pattern``; an empty pattern matches everything.

    Raises:
        ValueError: the pattern is malformed (an unclosed ``[`` or ``{``, a dangling
            ``\\``); the message says where.
    """
    if not pattern:
        return re.compile(r".*", re.DOTALL)
    regex, end = _sequence(pattern, 0, in_braces=False)
    if end != len(pattern):
        raise ValueError(f"unexpected {pattern[end]!r} at {end}")
    return re.compile(regex, re.DOTALL)


def _sequence(pattern: str, pos: int, *, in_braces: bool) -> tuple[str, int]:
    parts: list[str] = []
    while pos < len(pattern):
        char = pattern[pos]
        if in_braces and char in ",}":
            return "".join(parts), pos
        if char == "*":
            parts.append(".*")
            pos += 1
        elif char == "?":
            parts.append(".")
            pos += 1
        elif char == "[":
            part, pos = _class(pattern, pos)
            parts.append(part)
        elif char == "{":
            part, pos = _alternatives(pattern, pos)
            parts.append(part)
        elif char == "\\":
            if pos + 1 >= len(pattern):
                raise ValueError(f"dangling '\\' at {pos}")
            parts.append(re.escape(pattern[pos + 1]))
            pos += 2
        else:
            parts.append(re.escape(char))
            pos += 1
    if in_braces:
        raise ValueError("unclosed '{'")
    return "".join(parts), pos


def _class(pattern: str, start: int) -> tuple[str, int]:
    end = pattern.find("]", start + 2)
    if end < 0:
        raise ValueError(f"unclosed '[' at {start}")
    body = pattern[start + 1 : end]
    negate = body.startswith("!")
    if negate:
        body = body[1:]
    if not body:
        raise ValueError(f"empty character class at {start}")
    escaped = "".join("\\" + c if c in "\\^[]" else c for c in body)
    return f"[{'^' if negate else ''}{escaped}]", end + 1


def _alternatives(pattern: str, start: int) -> tuple[str, int]:
    options: list[str] = []
    pos = start + 1
    while True:
        option, pos = _sequence(pattern, pos, in_braces=True)
        options.append(option)
        if pattern[pos] == "}":
            return "(?:" + "|".join(options) + ")", pos + 1
        pos += 1  # a comma
