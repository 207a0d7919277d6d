"""The HTTP client against real failures: unreachable, bad credentials, no access, odd names."""

from __future__ import annotations

import socket
import time

import pytest
from hub_devenv.rabbitmq import LocalBroker
from hub_operator.broker_sync import apply_desired_state, remove_vhost
from hub_operator.builders.broker import VHostTopology, desired_vhost_state
from hub_operator.clients.broker_api import (
    BrokerAccessRefused,
    BrokerAuthenticationFailed,
    BrokerNotFound,
    BrokerRejected,
    BrokerUnreachable,
)
from hub_operator.clients.rabbitmq import ManagementSettings, RabbitMQManagementClient

from tests.helpers.topology import management_client

pytestmark = pytest.mark.broker


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_unreachable_broker_fails_fast_with_a_typed_error() -> None:
    settings = ManagementSettings(f"http://127.0.0.1:{_closed_port()}", "hub-admin", "x", connect_timeout=1.0)
    async with RabbitMQManagementClient(settings) as client:
        started = time.perf_counter()
        with pytest.raises(BrokerUnreachable, match="ConnectError"):
            await apply_desired_state(client, desired_vhost_state(VHostTopology("15-15_v1.5")))
        with pytest.raises(BrokerUnreachable):
            await remove_vhost(client, "15-15_v1.5", delete=True)  # deletion does not hang either
        elapsed = time.perf_counter() - started
    print(f"\n[measure] unreachable broker detected in {elapsed * 1000:.0f} ms (two operations)")
    assert elapsed < 5  # generous: a refused connection is immediate, a black hole waits connect_timeout


async def test_wrong_password_is_an_authentication_failure(broker: LocalBroker) -> None:
    async with management_client(broker, password="not-the-password") as client:
        with pytest.raises(BrokerAuthenticationFailed, match=broker.admin_user):
            await client.overview()


async def test_deleting_where_the_operator_has_no_access_is_access_refused(
    broker: LocalBroker, management: RabbitMQManagementClient, unique: str
) -> None:
    vhost = f"noaccess-{unique}"
    assert await management.create_vhost(vhost) is True
    assert await management.create_vhost(vhost) is False
    try:
        await management.import_definitions(
            {"queues": [{"vhost": vhost, "name": "q", "durable": True, "auto_delete": False}]}
        )
        assert await management.delete_permission(vhost, management.username) is True
        with pytest.raises(BrokerAccessRefused, match="Access refused") as refused:
            await management.delete_queue(vhost, "q")
        assert refused.value.status == 401 and refused.value.method == "DELETE"
    finally:
        await management.delete_vhost(vhost)


async def test_rejections_carry_status_reason_and_path(management: RabbitMQManagementClient) -> None:
    with pytest.raises(BrokerRejected, match="no_such_user") as rejected:
        await management.import_definitions(
            {"permissions": [{"user": "nobody-at-all", "vhost": "/", "configure": "", "write": "", "read": ""}]}
        )
    assert rejected.value.status == 400 and rejected.value.path == "/api/definitions"
    with pytest.raises(BrokerNotFound):
        await management.export_definitions("no-such-vhost")
    with pytest.raises(BrokerNotFound):
        await management.list_permissions("no-such-vhost")
    assert await management.delete_queue("no-such-vhost", "q") is False


async def test_the_default_vhost_slash_is_encoded(management: RabbitMQManagementClient) -> None:
    permissions = await management.list_permissions("/")
    assert {p["vhost"] for p in permissions} == {"/"}
    health = await management.check_health()
    overview = await management.overview()
    assert health.healthy and overview.rabbitmq_version.startswith("3.")
