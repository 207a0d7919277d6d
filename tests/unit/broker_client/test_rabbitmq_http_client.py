"""The HTTP client: paths, encoding and the mapping of every failure to a typed error.

Responses are shaped like RabbitMQ 3.10's (measured); the real broker is exercised in
tests/integration/broker/.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import orjson
import pytest
from hub_operator.clients.broker_api import (
    BrokerAccessRefused,
    BrokerAuthenticationFailed,
    BrokerManagement,
    BrokerNotFound,
    BrokerRejected,
    BrokerUnreachable,
)
from hub_operator.clients.rabbitmq import ManagementSettings, RabbitMQManagementClient, api_path

Handler = Callable[[httpx.Request], httpx.Response]


def _client(handler: Handler) -> RabbitMQManagementClient:
    settings = ManagementSettings("http://broker.test:15672/", "hub-admin", "secret")
    return RabbitMQManagementClient(settings, transport=httpx.MockTransport(handler))


def _json(status: int, body: object) -> httpx.Response:
    return httpx.Response(status, content=orjson.dumps(body), headers={"content-type": "application/json"})


def test_it_implements_the_protocol() -> None:
    assert isinstance(_client(lambda r: _json(200, {})), BrokerManagement)


def test_every_path_segment_is_percent_encoded() -> None:
    assert api_path("queues", "/", "fr.health.samu050.message") == "/api/queues/%2F/fr.health.samu050.message"
    assert api_path("bindings", "15-15_v1.5", "e", "hubsante", "q", "dispatch", "%23") == (
        "/api/bindings/15-15_v1.5/e/hubsante/q/dispatch/%2523"
    )
    assert (
        api_path("connections", "127.0.0.1:5 -> 127.0.0.1:5671")
        == "/api/connections/127.0.0.1%3A5%20-%3E%20127.0.0.1%3A5671"
    )


async def test_requests_carry_basic_auth_and_encoded_vhosts() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return _json(200, [])

    async with _client(handler) as client:
        await client.list_permissions("/")
    (request,) = seen
    assert request.url.raw_path == b"/api/vhosts/%2F/permissions"
    assert request.headers["authorization"].startswith("Basic ")


@pytest.mark.parametrize(
    ("response", "error", "text"),
    [
        (_json(401, {"error": "not_authorized", "reason": "Login failed"}), BrokerAuthenticationFailed, "hub-admin"),
        (httpx.Response(401), BrokerAuthenticationFailed, "refused the credentials"),
        (_json(401, {"error": "not_authorised", "reason": "Access refused."}), BrokerAccessRefused, "Access refused"),
        (_json(404, {"error": "Object Not Found", "reason": "Not Found"}), BrokerNotFound, "404"),
        (_json(503, {"error": "unavailable"}), BrokerUnreachable, "HTTP 503"),
        (
            _json(400, {"error": "bad_request", "reason": ["no_such_user", "ghost"]}),
            BrokerRejected,
            "no_such_user ghost",
        ),
        (
            _json(
                400, {"error": "bad_request", "reason": ["amqp_error", "precondition_failed", list(b"bad arg"), "none"]}
            ),
            BrokerRejected,
            "precondition_failed bad arg none",
        ),
        (httpx.Response(500, text="<html>oops</html>"), BrokerRejected, "oops"),
    ],
)
async def test_error_statuses_become_typed_errors(response: httpx.Response, error: type, text: str) -> None:
    async with _client(lambda request: response) as client:
        with pytest.raises(error, match=text) as raised:
            await client.list_users()
    if isinstance(raised.value, BrokerRejected):
        assert raised.value.path == "/api/users" and raised.value.method == "GET"


@pytest.mark.parametrize(
    "failure", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("eof")]
)
async def test_transport_failures_are_unreachable(failure: Exception) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise failure

    async with _client(handler) as client:
        with pytest.raises(BrokerUnreachable, match=type(failure).__name__) as raised:
            await client.overview()
    assert raised.value.url == "http://broker.test:15672/"


async def test_missing_vhost_export_is_not_found_although_310_says_400() -> None:
    async with _client(lambda r: _json(400, {"error": "bad_request", "reason": "vhost_not_found"})) as client:
        with pytest.raises(BrokerNotFound):
            await client.export_definitions("ghost")


async def test_deletes_answer_whether_something_was_deleted() -> None:
    statuses = iter([204, 404])
    async with _client(lambda r: httpx.Response(next(statuses))) as client:
        assert await client.delete_queue("v", "q") is True
        assert await client.delete_queue("v", "q") is False


async def test_a_vhost_deletion_may_take_longer_than_other_requests() -> None:
    # Deleting a vhost deletes every queue in it before the broker answers (tens of seconds for thousands).
    read_timeouts: dict[str, float] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        read_timeouts[request.url.path] = request.extensions["timeout"]["read"]
        return httpx.Response(204)

    settings = ManagementSettings("http://broker.test:15672/", "hub-admin", "secret", request_timeout=15.0,
                                  vhost_deletion_timeout=120.0)
    async with RabbitMQManagementClient(settings, transport=httpx.MockTransport(handler)) as client:
        await client.delete_vhost("15-gps_v1.0")
        await client.delete_queue("15-gps_v1.0", "dispatch")
    assert read_timeouts == {"/api/vhosts/15-gps_v1.0": 120.0, "/api/queues/15-gps_v1.0/dispatch": 15.0}


async def test_unbind_deletes_by_the_listed_properties_key() -> None:
    seen: list[tuple[str, bytes]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.raw_path))
        if request.method == "GET":
            return _json(
                200,
                [
                    {"routing_key": "#", "arguments": {}, "properties_key": "%23"},
                    {"routing_key": "other", "arguments": {}, "properties_key": "other"},
                ],
            )
        return httpx.Response(204)

    async with _client(handler) as client:
        assert await client.unbind("v", "hubsante", "dispatch", "#") is True
    assert seen == [
        ("GET", b"/api/bindings/v/e/hubsante/q/dispatch"),
        ("DELETE", b"/api/bindings/v/e/hubsante/q/dispatch/%2523"),
    ]


async def test_close_connection_sends_the_reason() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    async with _client(handler) as client:
        assert await client.close_connection("127.0.0.1:1 -> 127.0.0.1:2", "suspended") is True
    assert seen[0].headers["x-reason"] == "suspended"


async def test_list_connections_of_a_user_asks_for_few_columns_and_filters_the_vhost() -> None:
    rows = [{"name": "a", "user": "u", "vhost": "v1"}, {"name": "b", "user": "u", "vhost": "v2"}]
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return _json(200, rows)

    async with _client(handler) as client:
        connections = await client.list_connections(username="u", vhost="v2")
    assert [c.name for c in connections] == ["b"]
    assert seen[0].url.path == "/api/connections/username/u" and seen[0].url.params["columns"] == "name,user,vhost"


async def test_queue_depths_count_missing_statistics_as_zero() -> None:
    rows = [{"name": "fresh"}, {"name": "busy", "messages_ready": 5, "messages_unacknowledged": 2, "consumers": 1}]
    async with _client(lambda r: _json(200, rows)) as client:
        depths = {d.name: (d.ready, d.unacknowledged, d.consumers) for d in await client.queue_depths("v")}
    assert depths == {"fresh": (0, 0, 0), "busy": (5, 2, 1)}


async def test_health_reports_failed_checks_instead_of_raising() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("alarms"):
            return _json(503, {"status": "failed", "reason": "resource alarm(s) in effect: disk"})
        return _json(200, {"status": "ok"})

    async with _client(handler) as client:
        health = await client.check_health()
    assert not health.healthy and health.failures == ("alarms: resource alarm(s) in effect: disk",)


async def test_create_vhost_tells_created_from_existing() -> None:
    statuses = iter([201, 204])
    async with _client(lambda r: httpx.Response(next(statuses))) as client:
        assert await client.create_vhost("v") is True and await client.create_vhost("v") is False
