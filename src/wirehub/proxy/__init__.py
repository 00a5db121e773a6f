"""Centrifugo-compatible event proxies over HTTP (``docs/proxies.md``).

A backend in any language decides who connects, who subscribes, what a publication
becomes and answers RPCs: wirehub POSTs each event as JSON to the backend's endpoint
and acts on its answer (``centrifugo-server-side.md`` §3).

- :mod:`wirehub.proxy.config`: the configuration models (Centrifugo v6 names);
- :mod:`wirehub.proxy.http`: one pooled HTTP client per endpoint, bounded calls;
- :mod:`wirehub.proxy.wire`: request bodies and response shapes;
- :mod:`wirehub.proxy.proxies`: what each event's answer does to a connection.

This module imports nothing on purpose: ``wirehub.config`` imports the models.
"""
