"""Endpoints on a backplane: ``add_endpoint(..., backplane=)``, ``use_backplane`` on a
built app, the app's lifecycle, and the metrics. Two aiohttp servers in this process act as
two nodes of one bus (memory, or a real Redis)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.test_utils import TestClient

from sockjs_gateway import ENDPOINTS, SockJSOptions, add_endpoint, add_metrics_route
from sockjs_gateway.backplane import BACKPLANES, Backplane, BackplaneState, use_backplane
from sockjs_gateway.stomp import StompHandler
from sockjs_gateway.testserver import BroadcastHandler, make_app
from tests.backplane.conftest import Cluster
from tests.conftest import RecordingHandler

Client = TestClient[web.Request, web.Application]
AiohttpClient = Callable[[web.Application], Awaitable[Client]]
OPTIONS = SockJSOptions(allowed_origins=("*",))


async def poll(client: Client, url: str) -> str:
    response = await asyncio.wait_for(client.post(url), 5)
    assert response.status == 200
    return await response.text()


async def node_app(aiohttp_client: AiohttpClient, backplane: Backplane) -> Client:
    app = web.Application()
    add_endpoint(app, RecordingHandler(), prefix="/b", options=OPTIONS, backplane=backplane)
    add_metrics_route(app)
    return await aiohttp_client(app)


async def test_broadcast_reaches_sessions_on_every_node_once(
    cluster: Cluster, aiohttp_client: AiohttpClient
) -> None:
    one = await node_app(aiohttp_client, await cluster.node())
    two = await node_app(aiohttp_client, await cluster.node())
    for client, sid in ((one, "s1"), (two, "s2"), (two, "s3")):
        assert await poll(client, f"/b/000/{sid}/xhr") == "o\n"
    await cluster.settle()
    [endpoint_one] = one.app[ENDPOINTS]
    text = 'all "nodes" \u2028 \ud800'  # escaping and a lone surrogate survive the trip
    assert endpoint_one.broadcast(text) == 1  # sessions of this node
    await cluster.settle()
    frame = await poll(one, "/b/000/s1/xhr")
    assert json.loads(frame[1:]) == [text]
    assert await poll(two, "/b/000/s2/xhr") == frame  # byte for byte the same frame
    assert await poll(two, "/b/000/s3/xhr") == frame


async def test_the_backplane_starts_and_closes_with_the_app(
    cluster: Cluster, aiohttp_client: AiohttpClient
) -> None:
    backplane = await cluster.node(start=False)
    app = web.Application()
    add_endpoint(app, RecordingHandler(), prefix="/x", backplane=backplane)
    add_endpoint(app, RecordingHandler(), prefix="/y", backplane=backplane)
    assert app[BACKPLANES] == [backplane]  # registered once
    client = await aiohttp_client(app)
    assert backplane.up
    await client.close()
    assert backplane.state is BackplaneState.CLOSED


async def test_use_backplane_clusters_every_endpoint_and_stomp_broker_once(
    cluster: Cluster,
) -> None:
    backplane = await cluster.node()
    app = make_app(backplane=backplane)
    endpoints = app[ENDPOINTS]
    assert all(endpoint.backplane is backplane for endpoint in endpoints)
    [stomp] = [e.handler for e in endpoints if isinstance(e.handler, StompHandler)]
    relay = stomp.broker.topic_relay
    assert relay != stomp.broker.deliver_topic
    use_backplane(app, backplane)  # again: nothing changes
    assert stomp.broker.topic_relay == relay
    assert app[BACKPLANES] == [backplane]


async def test_the_testserver_broadcast_endpoint_crosses_nodes(
    cluster: Cluster, aiohttp_client: AiohttpClient
) -> None:
    one = await aiohttp_client(make_app(backplane=await cluster.node()))
    two = await aiohttp_client(make_app(backplane=await cluster.node()))
    assert await poll(one, "/broadcast/000/a/xhr") == "o\n"
    assert await poll(two, "/broadcast/000/b/xhr") == "o\n"
    await cluster.settle()
    sent = await one.post("/broadcast/000/a/xhr_send", data='["hello"]')
    assert sent.status == 204
    assert await poll(two, "/broadcast/000/b/xhr") == 'a["hello"]\n'
    assert await poll(one, "/broadcast/000/a/xhr") == 'a["hello"]\n'
    assert isinstance(
        one.app[ENDPOINTS][-2].handler,
        BroadcastHandler,
    )


async def test_metrics_show_the_backplane(cluster: Cluster, aiohttp_client: AiohttpClient) -> None:
    backplane = await cluster.node()
    client = await node_app(aiohttp_client, backplane)
    [endpoint] = client.app[ENDPOINTS]
    endpoint.broadcast("m")
    await backplane.flush()
    text = await (await client.get("/metrics")).text()
    labels = f'backend="{cluster.backend}",node="{backplane.node_id}"'
    assert f"sockjs_backplane_up{{{labels}}} 1.0" in text
    assert f"sockjs_backplane_published_total{{{labels}}} 1.0" in text
    assert f"sockjs_backplane_pending{{{labels}}} 0.0" in text
    assert "sockjs_backplane_reconnects_total" in text
    assert "sockjs_backplane_failures_total" in text
