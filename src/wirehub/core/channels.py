"""Channel names, namespaces and permissions. Pure: no I/O, no state.

Rules, in the order Centrifugo applies them (``centrifugo-protocol.md`` §8):

1. A name longer than ``channel.max_length`` bytes -> 107.
2. The namespace is the text before the first ``:``; no ``:`` -> the options of
   ``channel.without_namespace``; a namespace not configured -> 102.
3. Names are ASCII, and with ``channel_regex`` the part after the namespace must match
   it -> else 107.
4. A channel starting with ``$`` is private: only a subscription token opens it (the
   token check lives in :mod:`wirehub.core.subscriptions`); without one -> 103.
5. ``ns:room#42,56`` is user-limited: only users 42 and 56, and only where the
   namespace has ``allow_user_limited_channels``.
6. Otherwise the ``allow_*_for_client`` / ``_for_subscriber`` / ``_for_anonymous``
   options decide; anything not allowed -> 103. History and presence need the feature
   on in the namespace (else 108) and their own access options.
"""

from __future__ import annotations

import re

from wirehub.config import ChannelConfig, NamespaceOptions
from wirehub.errors import (
    ERROR_BAD_REQUEST,
    ERROR_NOT_AVAILABLE,
    ERROR_PERMISSION_DENIED,
    ERROR_UNKNOWN_CHANNEL,
)

__all__ = ["PRIVATE_PREFIX", "ChannelRules"]

PRIVATE_PREFIX = "$"


class ChannelRules:
    """Resolves channels to namespace options and answers permission questions."""

    def __init__(self, config: ChannelConfig) -> None:
        self._config = config
        self._namespaces = {ns.name: ns for ns in config.namespaces}
        self._regexes = {
            ns.name: re.compile(ns.channel_regex)
            for ns in (*config.namespaces, config.without_namespace)
            if ns.channel_regex
        }

    def namespace(self, channel: str) -> NamespaceOptions:
        """Return the options of ``channel``'s namespace, after checking its name.

        Raises:
            ClientError: 107 for an invalid name, 102 for an unknown namespace.
        """
        if len(channel.encode()) > self._config.max_length:
            raise ERROR_BAD_REQUEST
        name, rest = self._split(channel)
        options = self._namespaces.get(name) if name else self._config.without_namespace
        if options is None:
            raise ERROR_UNKNOWN_CHANNEL
        regex = self._regexes.get(options.name)
        if regex is not None:
            if regex.fullmatch(rest) is None:
                raise ERROR_BAD_REQUEST
        elif not channel.isascii():
            raise ERROR_BAD_REQUEST
        return options

    def history_meta_ttl(self, options: NamespaceOptions) -> float:
        """Seconds a stream of this namespace keeps its position after its last
        activity: the namespace's own setting, else ``channel.history_meta_ttl``."""
        return options.history_meta_ttl or self._config.history_meta_ttl

    def check_subscribe(self, channel: str, user: str) -> NamespaceOptions:
        """Raise ``ClientError`` unless ``user`` may subscribe to ``channel``."""
        options = self.namespace(channel)
        if channel.startswith(PRIVATE_PREFIX):
            raise ERROR_PERMISSION_DENIED
        limited_to = self._limited_users(channel)
        if limited_to is not None and options.allow_user_limited_channels:
            if user and user in limited_to:
                return options
            raise ERROR_PERMISSION_DENIED
        if options.allow_subscribe_for_client and (user or options.allow_subscribe_for_anonymous):
            return options
        raise ERROR_PERMISSION_DENIED

    def check_publish(self, channel: str, user: str, *, subscribed: bool) -> NamespaceOptions:
        """Raise ``ClientError`` unless ``user`` may publish into ``channel``."""
        options = self.namespace(channel)
        if _allowed(
            user,
            for_client=options.allow_publish_for_client,
            for_subscriber=options.allow_publish_for_subscriber and subscribed,
            for_anonymous=options.allow_publish_for_anonymous,
        ):
            return options
        raise ERROR_PERMISSION_DENIED

    def may_read_history(self, options: NamespaceOptions, user: str, *, subscribed: bool) -> bool:
        """History access, which also lets a client ask for positioning and recovery."""
        return _allowed(
            user,
            for_client=options.allow_history_for_client,
            for_subscriber=options.allow_history_for_subscriber and subscribed,
            for_anonymous=options.allow_history_for_anonymous,
        )

    def may_read_presence(self, options: NamespaceOptions, user: str, *, subscribed: bool) -> bool:
        return _allowed(
            user,
            for_client=options.allow_presence_for_client,
            for_subscriber=options.allow_presence_for_subscriber and subscribed,
            for_anonymous=options.allow_presence_for_anonymous,
        )

    def check_history(self, channel: str, user: str, *, subscribed: bool) -> NamespaceOptions:
        """Raise 102/107 for the name, 108 without history, 103 without access."""
        options = self.namespace(channel)
        if not options.history_enabled:
            raise ERROR_NOT_AVAILABLE
        if not self.may_read_history(options, user, subscribed=subscribed):
            raise ERROR_PERMISSION_DENIED
        return options

    def check_presence(self, channel: str, user: str, *, subscribed: bool) -> NamespaceOptions:
        """Raise 102/107 for the name, 108 without presence, 103 without access."""
        options = self.namespace(channel)
        if not options.presence:
            raise ERROR_NOT_AVAILABLE
        if not self.may_read_presence(options, user, subscribed=subscribed):
            raise ERROR_PERMISSION_DENIED
        return options

    def _split(self, channel: str) -> tuple[str, str]:
        bare = channel.removeprefix(PRIVATE_PREFIX)
        name, sep, rest = bare.partition(self._config.namespace_boundary)
        return (name, rest) if sep else ("", bare)

    def _limited_users(self, channel: str) -> list[str] | None:
        boundary = self._config.user_boundary
        if boundary not in channel:
            return None
        users = channel.rpartition(boundary)[2]
        return users.split(self._config.user_separator)


def _allowed(user: str, *, for_client: bool, for_subscriber: bool, for_anonymous: bool) -> bool:
    return (bool(user) or for_anonymous) and (for_client or for_subscriber)
