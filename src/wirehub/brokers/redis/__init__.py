"""The Redis engine (``engine.type = "redis"``; extra ``wirehub[redis]``).

Importing this package does not import redis-py; its modules do::

    from wirehub.brokers.redis.engine import RedisEngine, create_engine

Modules: ``addresses`` (options -> shards), ``sharding`` (channel -> shard),
``keys`` (key names), ``codec`` (what is stored and sent), ``scripts`` (Lua),
``shard`` (client, auto-pipelining), ``pubsub`` (subscriptions that survive
reconnects), ``broker``, ``presence``, ``controller``, ``engine`` (all three together).
"""
