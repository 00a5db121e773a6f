"""Which Redis shard a channel lives on: jump consistent hash over FNV-1a-64.

This is the mapping Centrifugo uses (``centrifugo-server-side.md`` §1.8), computed with
the same 64-bit wrap-around and float64 division, so it can be reasoned about the same
way: with ``n`` shards every channel has one fixed home; going from ``n`` to ``n + 1``
shards moves about ``1 / (n + 1)`` of the channels, all of them to the new shard, and
none between the old ones. Shards are identified by their position in the configured
list: append new shards at the end, never reorder or remove one in the middle.
"""

from __future__ import annotations

__all__ = ["fnv1a_64", "jump_hash", "shard_index"]

_MASK = (1 << 64) - 1
_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_JUMP_MULTIPLIER = 2862933555777941757


def fnv1a_64(data: bytes) -> int:
    """The 64-bit FNV-1a hash of ``data``."""
    value = _FNV_OFFSET
    for byte in data:
        value = ((value ^ byte) * _FNV_PRIME) & _MASK
    return value


def jump_hash(key: int, buckets: int) -> int:
    """Lamping and Veach's jump consistent hash of a 64-bit ``key`` into ``buckets``."""
    if buckets <= 0:
        raise ValueError("buckets must be positive")
    bucket, candidate = -1, 0
    while candidate < buckets:
        bucket = candidate
        key = (key * _JUMP_MULTIPLIER + 1) & _MASK
        candidate = int(float(bucket + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return bucket


def shard_index(channel: str, shards: int) -> int:
    """The index of the shard that holds ``channel``, out of ``shards``."""
    if shards == 1:
        return 0
    return jump_hash(fnv1a_64(channel.encode()), shards)
