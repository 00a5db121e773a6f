"""The README's code blocks, read as the tests see them.

A block may be preceded by a marker line ``<!-- readme-test: WHAT -->``:

- ``fragment of PATH``: the block is an excerpt of the runnable file PATH (checked verbatim);
- ``browser``: JavaScript for a page, run in Chromium rather than Node.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).parents[2]
README = ROOT / "README.md"

_BLOCK = re.compile(
    r"(?:<!-- readme-test: (?P<marker>[^>]*?) -->\n)?```(?P<lang>[a-z]*)\n(?P<code>.*?)```",
    re.DOTALL,
)


@dataclass(frozen=True)
class Block:
    lang: str
    code: str
    marker: str
    line: int

    @property
    def id(self) -> str:
        return f"{self.lang}-line{self.line}"

    @property
    def fragment_of(self) -> Path | None:
        prefix = "fragment of "
        return ROOT / self.marker[len(prefix) :] if self.marker.startswith(prefix) else None


def blocks(path: Path = README) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    return [
        Block(
            lang=match["lang"],
            code=match["code"],
            marker=match["marker"] or "",
            line=text.count("\n", 0, match.start("code")) + 1,
        )
        for match in _BLOCK.finditer(text)
    ]


def on_port(code: str, port: int) -> str:
    """The block with the README's default address moved to a test server's port."""
    return code.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
