"""What the backend knows: its users, what a notification is, and a made-up stream of
things happening to them (the admin page's "random activity").

Nothing here knows about wirehub: a real app has its own users and its own events
(a comment, a payment, a failed build); ``app.py`` turns each into a publication.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

__all__ = ["USERS", "Kind", "Notification", "User", "random_event"]

Kind = Literal["info", "success", "warning", "mention"]


@dataclass(frozen=True)
class User:
    id: str
    name: str


# The demo's accounts; a real app has a database and a password (or SSO) check.
USERS = {user.id: user for user in (User("42", "Ada"), User("7", "Grace"), User("19", "Alan"))}


class Notification(BaseModel):
    """What the page shows; published as JSON into the user's channel."""

    kind: Kind = "info"
    title: str = Field(min_length=1, max_length=80)
    body: str = Field("", max_length=280)
    time: float = Field(default_factory=time.time)
    """Unix time it happened."""


_ACTIVITY: list[tuple[Kind, str, str]] = [
    ("mention", "{other} mentioned you", "“@{me} can you take a look at the release notes?”"),
    ("mention", "{other} replied to your comment", "“Agreed, let's ship it on Friday.”"),
    ("success", "Build #{n} passed", "main · 214 tests in 38 s"),
    ("warning", "Build #{n} failed", "test_payments.py::test_refund timed out"),
    ("success", "Payment received", "Invoice INV-{n} was paid: €{amount}"),
    ("info", "{other} shared a document with you", "“Q3 roadmap” is now in your drive"),
    ("warning", "Storage almost full", "You use 93% of your 10 GB plan"),
    ("info", "New sign-in", "Firefox on Linux, from a new device"),
]


def random_event(rng: random.Random) -> tuple[User, Notification]:
    """Something that just happened to one of the users, at random."""
    me = rng.choice(list(USERS.values()))
    other = rng.choice([user for user in USERS.values() if user != me])
    kind, title, body = rng.choice(_ACTIVITY)
    values = {
        "me": me.name,
        "other": other.name,
        "n": rng.randint(100, 999),
        "amount": rng.randint(20, 900),
    }
    notification = Notification(kind=kind, title=title.format(**values), body=body.format(**values))
    return me, notification
