"""The cost of metrics on the fan-out path, in-process: CPU time per delivery with
``prometheus.enabled`` off and on.

A node with C connections whose transport discards what it is given (no sockets, no
kernel) subscribed to one channel; ``node.publish`` N times, one event-loop tick each
(so every connection is flushed once per publication). The figure is this process's
CPU time (``time.process_time``) per delivery, median of several rounds, alternating
off and on. On a shared machine that is still noisy, so it also counts, with cProfile,
the Python function calls per publication at 100 and at 1000 subscribers: a cost per
delivery would grow with the subscribers, a cost per publication does not.

    .venv/bin/python bench/metrics_overhead.py
    .venv/bin/python bench/metrics_overhead.py --clients 5000 --rounds 9
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import time

from wirehub import Node, load_config
from wirehub.core.events import TransportInfo
from wirehub.errors import Disconnect
from wirehub.protocol.json_codec import JSON_CODEC


class NullTransport:
    info = TransportInfo("websocket", "json")

    def write_frame(self, data: bytes) -> None:
        pass

    def close(self, disconnect: Disconnect) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def one_round(
    enabled: bool, clients: int, publications: int, *, count_calls: bool = False
) -> float:
    """CPU µs per delivery, or (``count_calls``) Python calls per publication."""
    config = load_config(
        None,
        {
            "prometheus": {"enabled": enabled},
            "client": {"allow_anonymous_connect_without_token": True},
            "channel": {"namespaces": [{"name": "chat"}]},
        },
        environ=False,
    )
    node = Node(config)
    async with node:
        for _ in range(clients):
            node.attach(NullTransport(), JSON_CODEC).handle_frame(b'{"connect":{},"id":1}')
        while node.num_clients < clients:  # noqa: ASYNC110 (connects run in tasks)
            await asyncio.sleep(0.01)
        for client in list(node.hub.clients()):
            await node.subscribe("chat:bench", client=client.id)
        await asyncio.sleep(0)
        payload = {"i": 1, "p": "x" * 64}
        profile = cProfile.Profile()
        if count_calls:
            profile.enable()
        started = time.process_time()
        for _ in range(publications):
            await node.publish("chat:bench", payload)
            await asyncio.sleep(0)  # the tick ends: every connection is flushed
        cpu = time.process_time() - started
        if count_calls:
            profile.disable()
            return pstats.Stats(profile).total_calls / publications  # type: ignore[attr-defined,no-any-return]
        return 1e6 * cpu / (clients * publications)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--publications", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    results: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.rounds):
        for enabled in (False, True):
            results[enabled].append(
                asyncio.run(one_round(enabled, args.clients, args.publications))
            )
    print("| metrics | CPU µs per delivery, median | min | max |")
    print("|---|---|---|---|")
    for enabled, values in results.items():
        print(
            f"| {'on' if enabled else 'off'} | {statistics.median(values):.3f} "
            f"| {min(values):.3f} | {max(values):.3f} |"
        )
    print()
    print("| subscribers | Python calls per publication, metrics off | on |")
    print("|---|---|---|")
    for clients in (100, 1000):
        off, on = (asyncio.run(one_round(e, clients, 50, count_calls=True)) for e in (False, True))
        print(f"| {clients} | {off:.0f} | {on:.0f} |")


if __name__ == "__main__":
    main()
