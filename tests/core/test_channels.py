"""Tests of wirehub.core.channels: names, namespaces, permissions (protocol.md §8)."""

from __future__ import annotations

from typing import Any

import pytest

from wirehub.config import ChannelConfig
from wirehub.core.channels import ChannelRules
from wirehub.errors import ClientError


def rules(**channel: Any) -> ChannelRules:
    return ChannelRules(ChannelConfig.model_validate(channel))


RULES = rules(
    without_namespace={"allow_subscribe_for_client": True},
    namespaces=[
        {"name": "chat", "allow_subscribe_for_client": True, "allow_user_limited_channels": True},
        {"name": "open", "allow_subscribe_for_client": True},  # no user-limited channels
        {
            "name": "anon",
            "allow_subscribe_for_client": True,
            "allow_subscribe_for_anonymous": True,
        },
        {"name": "guest", "allow_subscribe_for_anonymous": True},  # needs the _for_client too
        {"name": "slug", "allow_subscribe_for_client": True, "channel_regex": r"[a-z]+\d*"},
        {"name": "locked"},
    ],
)


def code(call: Any, *args: Any, **kwargs: Any) -> int | None:
    """The ClientError code ``call`` raises, or None when it passes."""
    try:
        call(*args, **kwargs)
    except ClientError as exc:
        return exc.code
    return None


@pytest.mark.parametrize(
    ("channel", "namespace"),
    [
        ("chat:1", "chat"),
        ("chat:a:b", "chat"),  # the first boundary counts
        ("$chat:1", "chat"),  # the private prefix is not part of the namespace
        ("lobby", ""),
        ("$lobby", ""),
        ("chat:room#42", "chat"),
    ],
)
def test_namespace_resolution(channel: str, namespace: str) -> None:
    assert RULES.namespace(channel).name == namespace


@pytest.mark.parametrize(
    ("channel", "expected"),
    [
        ("nope:1", 102),
        (":1", None),  # an empty namespace name is no namespace, as in Centrifugo
        ("chat:" + "x" * 250, None),  # 255 bytes
        ("chat:" + "x" * 251, 107),  # 256 bytes
        ("chat:" + "é" * 125, 107),  # 255 characters, 255 + 125 bytes
        ("chat:ü", 107),  # not ASCII
        ("slug:abc12", None),
        ("slug:abc-12", 107),  # regex must match the whole rest
        ("slug:", 107),
        ("slug:é", 107),
    ],
)
def test_name_checks(channel: str, expected: int | None) -> None:
    assert code(RULES.namespace, channel) == expected


def test_regex_allows_non_ascii() -> None:
    """With channel_regex, the regex alone decides (Centrifugo's rule)."""
    r = rules(namespaces=[{"name": "intl", "channel_regex": r"\w+"}])
    assert r.namespace("intl:grüße").name == "intl"


def test_max_length_is_configurable() -> None:
    r = rules(max_length=10, without_namespace={"allow_subscribe_for_client": True})
    assert code(r.namespace, "x" * 10) is None
    assert code(r.namespace, "x" * 11) == 107


@pytest.mark.parametrize(
    ("channel", "user", "expected"),
    [
        ("chat:1", "42", None),
        ("chat:1", "", 103),  # anonymous needs allow_subscribe_for_anonymous
        ("anon:1", "", None),
        ("guest:1", "", 103),  # _for_anonymous alone allows nothing
        ("guest:1", "42", 103),
        ("locked:1", "42", 103),
        ("lobby", "42", None),
        ("$chat:1", "42", 103),  # private: subscription tokens come later
        ("$lobby", "42", 103),
        ("chat:dialog#42,56", "42", None),
        ("chat:dialog#42,56", "56", None),
        ("chat:dialog#42,56", "5", 103),  # not a prefix match
        ("chat:dialog#42,56", "", 103),
        ("chat:#42", "42", None),
        ("chat:a#b#42", "42", None),  # the users follow the last boundary
        ("chat:a#42#b", "42", 103),
        ("open:dialog#42", "7", None),  # no user-limited channels there: a plain name
        ("nope:1", "42", 102),
    ],
)
def test_check_subscribe(channel: str, user: str, expected: int | None) -> None:
    assert code(RULES.check_subscribe, channel, user) == expected


@pytest.mark.parametrize(
    ("options", "user", "subscribed", "allowed"),
    [
        ({}, "42", True, False),
        ({"allow_publish_for_client": True}, "42", False, True),
        ({"allow_publish_for_client": True}, "", False, False),
        ({"allow_publish_for_client": True, "allow_publish_for_anonymous": True}, "", False, True),
        ({"allow_publish_for_subscriber": True}, "42", True, True),
        ({"allow_publish_for_subscriber": True}, "42", False, False),
        ({"allow_publish_for_subscriber": True}, "", True, False),
        (
            {"allow_publish_for_subscriber": True, "allow_publish_for_anonymous": True},
            "",
            True,
            True,
        ),
        ({"allow_publish_for_anonymous": True}, "", True, False),  # extends, grants nothing
    ],
)
def test_check_publish(options: dict[str, Any], user: str, subscribed: bool, allowed: bool) -> None:
    r = rules(namespaces=[{"name": "ns", **options}])
    result = code(r.check_publish, "ns:1", user, subscribed=subscribed)
    assert result == (None if allowed else 103)


def test_publish_checks_the_name_first() -> None:
    r = rules(namespaces=[{"name": "ns", "allow_publish_for_client": True}])
    assert code(r.check_publish, "other:1", "42", subscribed=False) == 102
    assert code(r.check_publish, "ns:é", "42", subscribed=False) == 107


def test_custom_boundaries() -> None:
    r = rules(
        namespace_boundary="/",
        user_boundary="@",
        user_separator="+",
        namespaces=[
            {"name": "dm", "allow_subscribe_for_client": True, "allow_user_limited_channels": True}
        ],
    )
    assert r.namespace("dm/x").name == "dm"
    assert code(r.check_subscribe, "dm/pair@1+2", "2") is None
    assert code(r.check_subscribe, "dm/pair@1+2", "3") == 103
    assert r.namespace("dm:x").name == ""  # ':' is just a character now
