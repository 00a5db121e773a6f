"""The server's copy of each document: one pycrdt ``Doc`` with every update applied.

That copy is the compacted snapshot a newcomer loads: the whole document as one Yjs
update, however many edits made it. Its encoding is cached until the next edit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pycrdt import Doc, Text

__all__ = ["NAME", "Document", "Documents"]

NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
"""A document's name: the part of its channels after the namespace."""


@dataclass
class Document:
    doc: Doc[Text] = field(default_factory=Doc)
    edits: int = 0
    """Updates applied so far."""
    _encoded: tuple[int, bytes, bytes] | None = None

    def __post_init__(self) -> None:
        self.text = self.doc.get("content", type=Text)  # the Y.Text the pages edit

    def apply(self, update: bytes) -> None:
        """Apply one Yjs update. Raises ``ValueError`` for bytes that are not one."""
        self.doc.apply_update(update)
        self.edits += 1

    def snapshot(self) -> tuple[bytes, bytes]:
        """The whole document as one update, and its state vector."""
        if self._encoded is None or self._encoded[0] != self.edits:
            self._encoded = (self.edits, self.doc.get_update(), self.doc.get_state())
        return self._encoded[1], self._encoded[2]


@dataclass
class Documents:
    """The documents by name, at most ``limit`` of them."""

    limit: int = 100
    _documents: dict[str, Document] = field(default_factory=dict)

    def get(self, name: str) -> Document:
        """The document called ``name``, created empty if need be.

        Raises:
            KeyError: ``name`` is not a document name, or there are ``limit`` already.
        """
        document = self._documents.get(name)
        if document is None:
            if not NAME.fullmatch(name) or len(self._documents) >= self.limit:
                raise KeyError(name)
            document = self._documents[name] = Document()
        return document
