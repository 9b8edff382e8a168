"""Counters of one endpoint and of a backplane, and their Prometheus exposition.

The hot path only adds to plain integers on an :class:`EndpointStats` or
:class:`BackplaneStats`; nothing is formatted or locked per message.
:func:`add_metrics_route` (opt-in, needs the ``prometheus-client`` package, extra
``metrics``) serves every endpoint's counters in Prometheus text format, reading them when
scraped, plus the state and counters of every backplane an endpoint uses.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .backplane.base import BackplaneStats
from .server.registry import EndpointStats

if TYPE_CHECKING:
    from .backplane.base import Backplane
    from .server.endpoint import Endpoint

__all__ = [
    "EndpointStats",
    "BackplaneStats",
    "add_metrics_route",
    "collector",
    "watch_history",
    "HISTORIES",
]

#: History stores whose counters the metrics route serves, by name (see
#: :func:`watch_history`).
HISTORIES = web.AppKey("sockjs_gateway.histories", dict[str, Any])


def watch_history(app: web.Application, name: str, store: Any) -> None:
    """Serve the counters of a channel-history store (``store.stats``, ``channels``,
    ``messages``, ``bytes``) under the label ``history=name``. The hubs of
    ``add_event_stream`` and ``endpoint.channels``, and a STOMP broker's store, are read
    without this; call it for a store of your own."""
    if HISTORIES not in app:
        app[HISTORIES] = {}
    app[HISTORIES][name] = store


_COUNTERS = (
    ("messages_in", "Messages received from clients"),
    ("messages_out", "Messages queued for clients"),
    ("bytes_in", "Bytes of message payload received"),
    ("bytes_out", "Bytes written to clients (HTTP bodies, WebSocket frames)"),
    ("slow_consumer_closes", "Sessions closed because the client did not keep up"),
    ("slow_consumer_drops", "Messages dropped by the slow-consumer policy"),
    ("session_timeouts", "Sessions closed because no receiving connection came back"),
    ("heartbeat_timeouts", "Raw WebSocket connections closed for want of a pong"),
    ("handler_errors", "Handler hooks that raised"),
)


def _families(endpoints: list[Endpoint]) -> Iterator[Any]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    active = GaugeMetricFamily(
        "sockjs_sessions", "Sessions held now", labels=["endpoint", "transport", "state"]
    )
    opened = CounterMetricFamily(
        "sockjs_sessions_opened", "Sessions opened", labels=["endpoint", "transport"]
    )
    closed = CounterMetricFamily(
        "sockjs_sessions_closed", "Sessions closed", labels=["endpoint", "transport"]
    )
    refused = CounterMetricFamily(
        "sockjs_requests_refused", "Requests refused", labels=["endpoint", "reason"]
    )
    plain = {
        name: CounterMetricFamily(f"sockjs_{name}", text, labels=["endpoint"])
        for name, text in _COUNTERS
    }
    for endpoint in endpoints:
        label = endpoint.prefix or "/"
        stats = endpoint.stats
        held: Counter[tuple[str, str]] = Counter(
            (session.info.transport, session.state.value) for session in endpoint.registry
        )
        for (transport, state), count in sorted(held.items()):
            active.add_metric([label, transport, state], count)
        for transport, count in sorted(stats.opened.items()):
            opened.add_metric([label, transport], count)
        for transport, count in sorted(stats.closed.items()):
            closed.add_metric([label, transport], count)
        for reason, count in sorted(stats.refused.items()):
            refused.add_metric([label, reason], count)
        for name, family in plain.items():
            family.add_metric([label], getattr(stats, name))
    yield active
    yield opened
    yield closed
    yield refused
    yield from plain.values()
    backplanes = {id(e.backplane): e.backplane for e in endpoints if e.backplane is not None}
    if backplanes:
        yield from _backplane_families(list(backplanes.values()))
    relaying = [e for e in endpoints if e.relay is not None]
    if relaying:
        yield from _relay_families(relaying)


_RELAY_COUNTERS = (
    ("requests", "sockjs_relayed_requests", "Requests relayed to the node owning their session"),
    ("bytes", "sockjs_relayed_bytes", "Bytes of relay messages sent and received"),
    ("failures", "sockjs_relay_failures", "Relays given up because the other node fell silent"),
)


def _relay_families(endpoints: list[Endpoint]) -> Iterator[Any]:
    from prometheus_client.core import CounterMetricFamily

    families = [
        (field, CounterMetricFamily(name, text, labels=["endpoint"]))
        for field, name, text in _RELAY_COUNTERS
    ]
    for endpoint in endpoints:
        assert endpoint.relay is not None
        for field, family in families:
            family.add_metric([endpoint.prefix or "/"], getattr(endpoint.relay.stats, field))
    for _, family in families:
        yield family


_BACKPLANE_COUNTERS = (
    ("published", "Messages handed to the backplane for the other nodes"),
    ("received", "Messages received from other nodes"),
    ("delivery_errors", "Backplane subscriber callbacks that raised"),
    ("reconnects", "Backplane connections made again after one was lost"),
    ("failures", "Backplane connection attempts that failed or connections that broke"),
)


def _backplane_families(backplanes: list[Backplane]) -> Iterator[Any]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    labels = ["node", "backend"]
    up = GaugeMetricFamily(
        "sockjs_backplane_up", "1 while the node is connected to the other nodes", labels=labels
    )
    pending = GaugeMetricFamily(
        "sockjs_backplane_pending", "Messages waiting to be sent to the backplane", labels=labels
    )
    dropped = CounterMetricFamily(
        "sockjs_backplane_dropped",
        "Messages that never reached the backplane",
        labels=[*labels, "reason"],
    )
    plain = {
        name: CounterMetricFamily(f"sockjs_backplane_{name}", text, labels=labels)
        for name, text in _BACKPLANE_COUNTERS
    }
    for backplane in backplanes:
        label = [backplane.node_id, backplane.backend]
        up.add_metric(label, 1 if backplane.up else 0)
        pending.add_metric(label, backplane.pending)
        for reason, count in sorted(backplane.stats.dropped.items()):
            dropped.add_metric([*label, reason], count)
        for name, family in plain.items():
            family.add_metric(label, getattr(backplane.stats, name))
    yield up
    yield pending
    yield dropped
    yield from plain.values()


_HISTORY_GAUGES = (
    ("channels", "Channels with retained history"),
    ("messages", "Messages retained in channel history"),
    ("bytes", "Bytes retained in channel history"),
)


def _history_families(stores: dict[str, Any]) -> Iterator[Any]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    gauges = {
        name: GaugeMetricFamily(f"sockjs_history_{name}", text, labels=["history"])
        for name, text in _HISTORY_GAUGES
    }
    appended = CounterMetricFamily(
        "sockjs_history_appended", "Messages appended to channel history", labels=["history"]
    )
    dropped = CounterMetricFamily(
        "sockjs_history_dropped",
        "Messages dropped from channel history, by the bound that dropped them",
        labels=["history", "reason"],
    )
    seen: set[int] = set()
    for label, store in sorted(stores.items()):
        if id(store) in seen:
            continue
        seen.add(id(store))
        for name, family in gauges.items():
            if hasattr(store, name):  # a store of one's own may not know them
                family.add_metric([label], getattr(store, name))
        appended.add_metric([label], store.stats.appended)
        for reason, count in sorted(store.stats.dropped.items()):
            dropped.add_metric([label, reason], count)
    yield from gauges.values()
    yield appended
    yield dropped


class _Collector:
    def __init__(self, app: web.Application) -> None:
        self._app = app

    def collect(self) -> Iterator[Any]:
        from .server.endpoint import ENDPOINTS
        from .server.eventstream import EVENT_STREAMS

        endpoints: list[Endpoint] = self._app.get(ENDPOINTS) or []
        yield from _families(endpoints)
        stores: dict[str, Any] = {}
        if HISTORIES in self._app:
            registered: dict[str, Any] = self._app[HISTORIES]
            stores.update(registered)
        for endpoint in endpoints:  # what an endpoint's channels and broker hold
            label = endpoint.prefix or "/"
            for kind, source in (
                ("channels", getattr(endpoint, "_history", None)),
                ("stomp", getattr(getattr(endpoint.handler, "broker", None), "history", None)),
            ):
                if source is not None:
                    stores.setdefault(f"{kind}:{label}", source)
        for stream in self._app.get(EVENT_STREAMS) or []:
            stores.setdefault(f"events:{stream.prefix}", stream.hub)
        if stores:
            yield from _history_families(stores)


def collector(app: web.Application) -> Any:
    """A ``prometheus_client`` collector of every endpoint on ``app``, to register in a
    registry of your own."""
    return _Collector(app)


def add_metrics_route(app: web.Application, path: str = "/metrics") -> None:
    """Serve the counters of every endpoint on ``app`` at ``path`` (Prometheus text).

    Raises:
        ImportError: if ``prometheus-client`` is not installed (extra ``metrics``).
    """
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(app))

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app.router.add_get(path, metrics)
