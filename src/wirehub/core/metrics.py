"""Prometheus metrics of one node, under Centrifugo's names and labels.

Names, types and labels are Centrifugo's (``centrifugo-server-side.md`` §5), so its
Grafana dashboard reads wirehub unchanged; ``channel_namespace`` is always "" (as in
Centrifugo OSS), ``client_name`` is ``unnamed`` or ``unregistered`` and
``client_version`` ``unversioned`` or ``unregistered`` (Centrifugo OSS registers no
names), ``accept_protocol`` is "".

Every node has its own registry: two nodes in one process never share a metric.

Counting costs the fan-out nothing per delivery. Centrifugo's counters carry no
``_total`` suffix, which prometheus-client's own counters would add, so counters here
are plain slotted numbers incremented by the core (no lock: one event loop) and
rendered at scrape time; the hub adds the number of deliveries once per publication
through children bound in advance. Gauges are read at scrape time; histograms
and process metrics are prometheus-client's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from wirehub.protocol.types import Command, Reply

if TYPE_CHECKING:
    from wirehub.core.node import Node

__all__ = [
    "CONTENT_TYPE",
    "CounterChild",
    "CounterFamily",
    "HubCounters",
    "HubMetrics",
    "NodeMetrics",
    "command_method",
    "reply_type",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Centrifugo's buckets: command durations 100 µs .. 10 s, surveys 1 ms .. 10 s.
_COMMAND_BUCKETS = (
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
_SURVEY_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_COMMANDS = (
    "connect", "subscribe", "unsubscribe", "publish", "presence", "presence_stats",
    "history", "rpc", "refresh", "sub_refresh", "send",
)  # fmt: skip
_PUSHES = ("pub", "join", "leave", "unsubscribe", "message", "subscribe", "disconnect", "refresh")
_PUSH_FRAME = {name: f"push_{'publication' if name == 'pub' else name}" for name in _PUSHES}

# The four label pairs a connection can have (client_name, client_version).
_NAMED = {
    (False, False): ("unnamed", "unversioned"),
    (False, True): ("unnamed", "unregistered"),
    (True, False): ("unregistered", "unversioned"),
    (True, True): ("unregistered", "unregistered"),
}


def command_method(command: Command) -> str:
    """The protocol frame type of a client command (``connect``, ``publish``, ...)."""
    for name in _COMMANDS:
        if getattr(command, name) is not None:
            return name
    return "client_pong" if command.id == 0 else "unknown"


def reply_type(reply: Reply) -> str:
    """The frame type of a reply or push (``push_publication``, ``subscribe``, ...)."""
    push = reply.push
    if push is not None:
        for name in _PUSHES:
            if getattr(push, name) is not None:
                return _PUSH_FRAME[name]
        return "unknown"
    for name in _COMMANDS:
        if getattr(reply, name, None) is not None:
            return name
    return "server_ping" if reply == _PING else "unknown"


_PING = Reply()


class CounterChild:
    """One labelled series of a counter. ``value += n`` is the whole cost of counting."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class CounterFamily:
    """A counter exposed under exactly its name (no ``_total`` added)."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], CounterChild] = {}

    def labels(self, *values: str) -> CounterChild:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}")
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = CounterChild()
        return child

    def value(self, *values: str) -> float:
        child = self._children.get(values)
        return 0.0 if child is None else child.value

    def render(self) -> str:
        lines = [
            f"# HELP {self.name} {_escape_help(self.documentation)}",
            f"# TYPE {self.name} counter",
        ]
        for values, child in self._children.items():
            labels = ",".join(
                f'{name}="{_escape_label(value)}"'
                for name, value in zip(self.labelnames, values, strict=True)
            )
            lines.append(f"{self.name}{{{labels}}} {_number(child.value)}")
        return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    """As Prometheus writes sample values: integers without a fraction, 1e+06 style."""
    return repr(float(value)) if value % 1 else f"{value:.17g}"


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


class HubCounters:
    """The counters the hub adds to once per fan-out: deliveries and their bytes."""

    __slots__ = (
        "join",
        "join_size",
        "leave",
        "leave_size",
        "publication",
        "publication_size",
    )

    def __init__(self, sent: CounterFamily, sent_size: CounterFamily, transport: str) -> None:
        self.publication = sent.labels(transport, "push_publication", "")
        self.publication_size = sent_size.labels(transport, "push_publication", "")
        self.join = sent.labels(transport, "push_join", "")
        self.join_size = sent_size.labels(transport, "push_join", "")
        self.leave = sent.labels(transport, "push_leave", "")
        self.leave_size = sent_size.labels(transport, "push_leave", "")


class HubMetrics:
    """:class:`HubCounters` by transport, made on first use."""

    __slots__ = ("_by_transport", "_sent", "_sent_size", "tags_filter_dropped")

    def __init__(
        self, sent: CounterFamily, sent_size: CounterFamily, dropped: CounterFamily
    ) -> None:
        self._sent = sent
        self._sent_size = sent_size
        self._by_transport: dict[str, HubCounters] = {}
        self.tags_filter_dropped = dropped.labels("")
        """Publications a tags filter held back (any transport)."""

    def counters(self, transport: str) -> HubCounters:
        counters = self._by_transport.get(transport)
        if counters is None:
            counters = HubCounters(self._sent, self._sent_size, transport)
            self._by_transport[transport] = counters
        return counters


class NodeMetrics:
    """Every metric of one node, and its registry."""

    def __init__(self, node: Node) -> None:
        self.registry = registry = CollectorRegistry()
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        self._counters: list[CounterFamily] = []
        self._gauges(node, registry)
        self._histograms(registry)
        self._counter_families()
        # Children bound once, for the paths that count often.
        self.publication_sent = self.messages_sent.labels("publication", "")
        self.join_sent = self.messages_sent.labels("join", "")
        self.leave_sent = self.messages_sent.labels("leave", "")
        self.control_sent = self.messages_sent.labels("control", "")
        self.publication_received = self.messages_received.labels("publication", "")
        self.join_received = self.messages_received.labels("join", "")
        self.leave_received = self.messages_received.labels("leave", "")
        self.control_received = self.messages_received.labels("control", "")
        self.hub = HubMetrics(
            self.transport_sent, self.transport_sent_size, self.tags_filter_dropped
        )
        self._command_durations: dict[str, Histogram] = {}

    def _gauges(self, node: Node, registry: CollectorRegistry) -> None:
        def gauge(name: str, documentation: str, read: Callable[[], float]) -> None:
            Gauge(name, documentation, registry=registry).set_function(read)

        hub = node.hub
        gauge(
            "centrifugo_node_num_clients", "Number of clients connected.", lambda: hub.num_clients
        )
        gauge(
            "centrifugo_node_num_users", "Number of unique users connected.", lambda: hub.num_users
        )
        gauge(
            "centrifugo_node_num_subscriptions",
            "Number of subscriptions.",
            lambda: hub.num_subscriptions,
        )
        gauge(
            "centrifugo_node_num_channels",
            "Number of channels with one or more subscribers.",
            lambda: hub.num_channels,
        )
        gauge(
            "centrifugo_node_num_nodes", "Number of nodes in the cluster.", lambda: node.num_nodes
        )
        build = Gauge("centrifugo_node_build", "Node build info.", ["version"], registry=registry)
        build.labels(node.version or "_").set(1)
        self.connections_inflight = Gauge(
            "centrifugo_client_connections_inflight",
            "Number of inflight client connections.",
            ["transport", "accept_protocol", "client_name", "client_version"],
            registry=registry,
        )
        self.subscriptions_inflight = Gauge(
            "centrifugo_client_subscriptions_inflight",
            "Number of inflight client subscriptions.",
            ["client_name", "channel_namespace"],
            registry=registry,
        )

    def _histograms(self, registry: CollectorRegistry) -> None:
        self.command_duration = Histogram(
            "centrifugo_client_command_duration_seconds_histogram",
            "Client command duration.",
            ["method", "channel_namespace"],
            buckets=_COMMAND_BUCKETS,
            registry=registry,
        )
        self.api_duration = Histogram(
            "centrifugo_api_command_duration_seconds_histogram",
            "Server API command duration.",
            ["protocol", "method"],
            registry=registry,
        )
        proxy_labels = ["protocol", "type", "name"]
        self.proxy_duration = Histogram(
            "centrifugo_proxy_duration_seconds_histogram",
            "Duration of event proxy calls.",
            proxy_labels,
            registry=registry,
        )
        self.proxy_inflight = Gauge(
            "centrifugo_proxy_inflight_requests",
            "Event proxy calls in flight.",
            proxy_labels,
            registry=registry,
        )
        self.survey_duration = Histogram(
            "centrifugo_node_survey_duration_seconds_histogram",
            "Survey duration.",
            ["op"],
            buckets=_SURVEY_BUCKETS,
            registry=registry,
        )

    def _counter_families(self) -> None:
        counter = self._counter
        node_labels = ("type", "channel_namespace")
        self.messages_sent = counter(
            "centrifugo_node_messages_sent_count", "Messages sent to the broker.", node_labels
        )
        self.messages_received = counter(
            "centrifugo_node_messages_received_count",
            "Messages received from the broker.",
            node_labels,
        )
        self.connections_accepted = counter(
            "centrifugo_client_connections_accepted",
            "Accepted client connections.",
            ("transport", "accept_protocol", "client_name", "client_version"),
        )
        self.subscriptions_accepted = counter(
            "centrifugo_client_subscriptions_accepted",
            "Accepted client subscriptions.",
            ("client_name", "channel_namespace"),
        )
        self.reply_errors = counter(
            "centrifugo_client_num_reply_errors",
            "Error replies sent to clients.",
            ("method", "code", "channel_namespace"),
        )
        self.server_unsubscribes = counter(
            "centrifugo_client_num_server_unsubscribes",
            "Server-side unsubscribes.",
            ("code", "channel_namespace"),
        )
        self.server_disconnects = counter(
            "centrifugo_client_num_server_disconnects", "Server-side disconnects.", ("code",)
        )
        self.recover = counter(
            "centrifugo_client_recover",
            "Recovery attempts.",
            ("recovered", "channel_namespace", "has_recovered_publications"),
        )
        transport_labels = ("transport", "frame_type", "channel_namespace")
        self.transport_sent = counter(
            "centrifugo_transport_messages_sent", "Messages sent to clients.", transport_labels
        )
        self.transport_sent_size = counter(
            "centrifugo_transport_messages_sent_size",
            "Bytes of messages sent to clients (before framing).",
            transport_labels,
        )
        self.transport_received = counter(
            "centrifugo_transport_messages_received",
            "Messages received from clients.",
            transport_labels,
        )
        self.transport_received_size = counter(
            "centrifugo_transport_messages_received_size",
            "Bytes of messages received from clients.",
            transport_labels,
        )
        self.outgoing_close = counter(
            "centrifugo_transport_outgoing_close_count",
            "Connections closed by the server.",
            ("transport", "code"),
        )
        self.tags_filter_dropped = counter(
            "centrifugo_node_tags_filter_dropped_publications",
            "Publications a subscriber's tags filter held back.",
            ("channel_namespace",),
        )
        self.proxy_errors = counter(
            "centrifugo_proxy_errors",
            "Failed event proxy calls (no answer, non-200, undecodable).",
            ("protocol", "type", "name"),
        )
        self.api_errors = counter(
            "centrifugo_api_command_errors_total",
            "Server API command errors.",
            ("protocol", "method", "error"),
        )

    def _counter(self, name: str, documentation: str, labels: Sequence[str]) -> CounterFamily:
        family = CounterFamily(name, documentation, labels)
        self._counters.append(family)
        return family

    # Events.

    @staticmethod
    def client_labels(name: str, version: str) -> tuple[str, str]:
        """The (client_name, client_version) labels of a connection."""
        return _NAMED[(bool(name), bool(version))]

    def connection_accepted(self, transport: str, labels: tuple[str, str]) -> None:
        self.connections_accepted.labels(transport, "", *labels).inc()
        self.connections_inflight.labels(transport, "", *labels).inc()

    def connection_closed(
        self, transport: str, labels: tuple[str, str] | None, code: int, *, by_server: bool
    ) -> None:
        if labels is not None:
            self.connections_inflight.labels(transport, "", *labels).dec()
        if by_server:
            self.server_disconnects.labels(str(code)).inc()
            self.outgoing_close.labels(transport, str(code)).inc()

    def subscription_added(self, labels: tuple[str, str] | None) -> None:
        name = "unnamed" if labels is None else labels[0]
        self.subscriptions_accepted.labels(name, "").inc()
        self.subscriptions_inflight.labels(name, "").inc()

    def subscription_removed(self, labels: tuple[str, str] | None) -> None:
        name = "unnamed" if labels is None else labels[0]
        self.subscriptions_inflight.labels(name, "").dec()

    def command_done(self, method: str, seconds: float, error_code: int | None) -> None:
        histogram = self._command_durations.get(method)
        if histogram is None:
            histogram = self._command_durations[method] = self.command_duration.labels(method, "")
        histogram.observe(seconds)
        if error_code is not None:
            self.reply_errors.labels(method, str(error_code), "").inc()

    def frames_received(self, transport: str, methods: Iterable[str], size: int) -> None:
        """Commands of one frame; the frame's bytes are shared out among them."""
        methods = list(methods)
        share = size / len(methods) if methods else 0.0
        for method in methods:
            self.transport_received.labels(transport, method, "").inc()
            self.transport_received_size.labels(transport, method, "").inc(share)

    def sent(self, transport: str, frame_type: str, size: int) -> None:
        self.transport_sent.labels(transport, frame_type, "").inc()
        self.transport_sent_size.labels(transport, frame_type, "").inc(size)

    def recovered(self, *, recovered: bool, publications: int) -> None:
        self.recover.labels("yes" if recovered else "no", "", "yes" if publications else "no").inc()

    def api_command(self, method: str, seconds: float, error: str | None) -> None:
        self.api_duration.labels("http", method).observe(seconds)
        if error is not None:
            self.api_errors.labels("http", method, error).inc()

    # Exposition.

    def render(self) -> bytes:
        """The text exposition format (version 0.0.4), as ``/metrics`` serves it."""
        counters = "".join(family.render() for family in self._counters)
        return generate_latest(self.registry) + counters.encode()
