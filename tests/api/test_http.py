"""The HTTP envelope of the server API, byte for byte where it matters
(``centrifugo-server-side.md`` §4.1-4.2): auth, statuses, bodies, the transport error
mode, batch. The app runs in-process behind httpx's ASGI transport; /health and /ready
too."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from tests.core.fakes import make_config
from wirehub import Node, create_app
from wirehub.brokers.memory import MemoryBroker

pytestmark = pytest.mark.anyio

KEY = "envelope-key"
NAMESPACES = [
    {"name": "news"},
    {"name": "h", "history_size": 5, "history_ttl": 60},
]


@asynccontextmanager
async def api(
    node: Node | None = None, *, running: bool = True, **http_api: Any
) -> AsyncIterator[httpx.AsyncClient]:
    if node is None:
        options = {"key": KEY, **http_api}
        node = Node(make_config(http_api=options, channel={"namespaces": NAMESPACES}))
    transport = httpx.ASGITransport(app=create_app(node))
    async with httpx.AsyncClient(transport=transport, base_url="http://wirehub") as http:
        if running:
            async with node:
                yield http
        else:
            yield http


def post(http: httpx.AsyncClient, method: str, body: Any = None, **headers: str) -> Any:
    content = body if isinstance(body, bytes) else json.dumps(body or {}).encode()
    headers = {"X-API-Key": KEY, "Content-Type": "application/json", **headers}
    return http.post(f"/api/{method}", content=content, headers=headers)


# Success and errors, default mode.


async def test_result_and_error_envelopes() -> None:
    async with api() as http:
        ok = await post(http, "publish", {"channel": "h:1", "data": {"x": 1}})
        assert ok.status_code == 200
        assert ok.headers["content-type"] == "application/json"
        result = ok.json()
        assert set(result) == {"result"}
        assert result["result"]["offset"] == 1
        plain = await post(http, "publish", {"channel": "news:1", "data": "x"})
        assert plain.json() == {"result": {}}  # no history: no offset, no epoch
        unknown = await post(http, "publish", {"channel": "nowhere:1", "data": 1})
        assert (unknown.status_code, unknown.json()) == (
            200,
            {"error": {"code": 102, "message": "unknown channel"}},
        )


async def test_always_present_fields() -> None:
    async with api() as http:
        history = await post(http, "history", {"channel": "h:2"})
        assert set(history.json()["result"]) == {"publications", "epoch", "offset"}
        assert history.json()["result"]["publications"] == []
        channels = await post(http, "channels")
        assert channels.json() == {"result": {"channels": {}}}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"channel": 5, "data": 1}, "at `$.channel`"),
        ({"channel": "h:1", "data": 1, "tags": {"a": 1}}, "at `$.tags[...]`"),
        ({"channel": "h:1", "data": 1, "skip_history": "yes"}, "at `$.skip_history`"),
        ([1, 2], "Expected `object`, got `array`"),
    ],
)
async def test_wrong_field_types_are_107_naming_the_field(body: Any, field: str) -> None:
    async with api() as http:
        error = (await post(http, "publish", body)).json()["error"]
        assert error["code"] == 107
        assert field in error["message"]


async def test_unknown_fields_are_ignored_and_missing_ones_are_107() -> None:
    async with api() as http:
        ok = await post(http, "publish", {"channel": "h:1", "data": 1, "future_option": [1]})
        assert "result" in ok.json()
        for body, missing in [({"data": 1}, "channel"), ({"channel": "h:1"}, "data")]:
            error = (await post(http, "publish", body)).json()["error"]
            assert error == {"code": 107, "message": f"bad request: {missing} required"}
        bad = await post(http, "publish", {"channel": "h:1", "b64data": "not base64!"})
        assert bad.json()["error"]["code"] == 107


async def test_malformed_json_is_400_plain_text() -> None:
    async with api() as http:
        response = await post(http, "publish", b'{"channel": ')
        assert response.status_code == 400
        assert response.headers["content-type"].startswith("text/plain")
        assert response.text == "Bad Request\n"


async def test_an_empty_body_counts_as_an_empty_object() -> None:
    async with api() as http:
        assert (await post(http, "info", b"")).json()["result"]["nodes"]


# HTTP-level refusals.


async def test_missing_or_wrong_key_is_401_with_an_empty_body() -> None:
    async with api() as http:
        body = json.dumps({}).encode()
        for headers in (
            {},
            {"X-API-Key": "wrong"},
            {"Authorization": "apikey wrong"},
            {"Authorization": f"bearer {KEY}"},
            {"X-API-Key": "wrong", "Authorization": f"apikey {KEY}"},  # X-API-Key first
        ):
            response = await http.post("/api/info", content=body, headers=headers)
            assert (response.status_code, response.content) == (401, b""), headers
        for scheme in ("apikey", "ApiKey", "APIKEY"):
            headers = {"Authorization": f"{scheme} {KEY}"}
            response = await http.post("/api/info", content=body, headers=headers)
            assert response.status_code == 200, scheme


async def test_methods_paths_content_types_and_sizes() -> None:
    async with api(max_body_size=64) as http:
        get = await http.get("/api/info", headers={"X-API-Key": KEY})
        assert (get.status_code, get.headers["allow"]) == (405, "POST")
        assert (await post(http, "connections")).status_code == 404  # a PRO method
        assert (await post(http, "")).status_code == 404
        form = await post(
            http, "info", b"{}", **{"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert form.status_code == 415
        charset = await post(
            http, "info", b"{}", **{"Content-Type": "application/json; charset=utf-8"}
        )
        assert charset.status_code == 200
        big = {"channel": "news:1", "data": "x" * 100}
        assert (await post(http, "publish", big)).status_code == 413
        # Without a Content-Length (chunked): counted while reading.
        chunks = [json.dumps(big).encode()[i : i + 10] for i in range(0, 120, 10)]

        async def stream() -> AsyncIterator[bytes]:
            for chunk in chunks:
                yield chunk

        headers = {"X-API-Key": KEY, "Content-Type": "application/json"}
        chunked = await http.post("/api/publish", content=stream(), headers=headers)
        assert chunked.status_code == 413


async def test_the_api_is_off_without_a_key(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="wirehub.api")
    node = Node(make_config())
    async with api(node) as http:
        response = await http.post("/api/info", json={})
    assert response.status_code == 404
    assert "http_api.key" in response.text
    assert "HTTP API off" in caplog.text


async def test_insecure_mode_needs_no_key(caplog: pytest.LogCaptureFixture) -> None:
    node = Node(make_config(http_api={"insecure": True}))
    async with api(node) as http:
        assert (await http.post("/api/info", json={})).status_code == 200
    assert "http_api.insecure" in caplog.text


# Transport error mode.


async def test_transport_error_mode_by_header_and_by_config() -> None:
    async with api() as http:
        transport = {"X-Centrifugo-Error-Mode": "transport"}
        cases = [
            ("publish", {"channel": "nowhere:1", "data": 1}, 404, 102),
            ("publish", {"channel": ""}, 400, 107),
            ("presence", {"channel": "news:1"}, 400, 108),
            ("history", {"channel": "h:3", "since": {"offset": 1, "epoch": "old"}}, 416, 112),
        ]
        for method, body, status, code in cases:
            response = await post(http, method, body, **transport)
            assert response.status_code == status, (method, body)
            assert response.json()["code"] == code
            assert set(response.json()) == {"code", "message"}
    async with api(error_mode="transport") as http:
        response = await post(http, "publish", {"channel": "nowhere:1", "data": 1})
        assert (response.status_code, response.json()["code"]) == (404, 102)
        ok = await post(http, "publish", {"channel": "news:1", "data": 1})
        assert ok.json() == {"result": {}}


async def test_rpc_has_no_methods() -> None:
    """As Centrifugo OSS: no server-side RPC extensions, so every call is 104."""
    async with api() as http:
        missing = (await post(http, "rpc", {})).json()["error"]
        assert missing == {"code": 107, "message": "bad request: method required"}
        unknown = (await post(http, "rpc", {"method": "x", "params": {"a": 1}})).json()
        assert unknown == {"error": {"code": 104, "message": "not found"}}


# Batch.


async def test_batch_with_an_error_in_the_middle() -> None:
    """Each command answered in its place; batch is 200 even in transport mode."""
    async with api(error_mode="transport") as http:
        commands = [
            {"publish": {"channel": "h:9", "data": 1}},
            {"publish": {"channel": "nowhere:1", "data": 1}},
            {"no_such_method": {}},
            None,
            {"history": {"channel": "h:9", "limit": -1}},
        ]
        for parallel in (False, True):
            response = await post(http, "batch", {"commands": commands, "parallel": parallel})
            assert response.status_code == 200
            replies = response.json()["replies"]
            assert replies[0]["publish"]["offset"] == (2 if parallel else 1)
            assert replies[1] == {"error": {"code": 102, "message": "unknown channel"}}
            assert replies[2] == {"error": {"code": 104, "message": "not found"}}
            assert replies[3]["error"]["code"] == 107
            assert [p["data"] for p in replies[4]["history"]["publications"]][:1] == [1]


# Health and readiness.


class UnreachableBroker(MemoryBroker):
    async def ping(self) -> None:
        raise ConnectionError("connection refused")


async def test_health_and_ready() -> None:
    node = Node(make_config(http_api={"key": KEY}))
    async with api(node, running=False) as http:
        assert (await http.get("/health")).json() == {}
        assert (await http.get("/ready")).status_code == 503  # not started
        async with node:
            assert (await http.get("/ready")).json() == {}
            node.shutting_down = True  # as on SIGTERM
            assert (await http.get("/ready")).status_code == 503
        assert (await http.get("/health")).status_code == 200


async def test_ready_is_503_when_the_broker_does_not_answer() -> None:
    node = Node(make_config(), broker=UnreachableBroker())
    async with api(node) as http:
        response = await http.get("/ready")
    assert response.status_code == 503
    assert response.json() == {"error": "UnreachableBroker unreachable"}


async def test_metrics_are_off_by_default() -> None:
    async with api() as http:
        response = await http.get("/metrics")
    assert response.status_code == 404
    assert "prometheus.enabled" in response.text
