"""The fake broker behaves like RabbitMQ 3.10 where the operator depends on it (measured, see its docstring)."""

from __future__ import annotations

import pytest
from hub_operator.clients.broker_api import (
    BrokerAccessRefused,
    BrokerAuthenticationFailed,
    BrokerManagement,
    BrokerNotFound,
    BrokerRejected,
    BrokerUnreachable,
)
from hub_operator.clients.fake_rabbitmq import FakeConnectionRefused, FakeRabbitMQ

V = "v1"


@pytest.fixture
async def fake() -> FakeRabbitMQ:
    broker = FakeRabbitMQ()
    await broker.import_definitions(
        {
            "users": [{"name": "u", "password_hash": "", "tags": ["hub-operator"]}],
            "vhosts": [{"name": V}],
            "permissions": [{"user": "u", "vhost": V, "configure": "^$", "write": "^x$", "read": "^q$"}],
            "queues": [
                {"vhost": V, "name": "q", "durable": True, "auto_delete": False, "arguments": {"x-queue-version": 2}}
            ],
            "exchanges": [{"vhost": V, "name": "x", "type": "topic"}],
            "bindings": [
                {"vhost": V, "source": "x", "destination": "q", "destination_type": "queue", "routing_key": "#"}
            ],
        }
    )
    return broker


def test_it_implements_the_protocol() -> None:
    assert isinstance(FakeRabbitMQ(), BrokerManagement)


async def test_import_keeps_existing_queues_and_exchanges_but_overwrites_access(fake: FakeRabbitMQ) -> None:
    await fake.import_definitions(
        {
            "users": [{"name": "u", "password_hash": "c2VjcmV0", "tags": "administrator"}],
            "permissions": [{"user": "u", "vhost": V, "configure": ".*", "write": ".*", "read": ".*"}],
            "queues": [
                {
                    "vhost": V,
                    "name": "q",
                    "durable": True,
                    "auto_delete": False,
                    "arguments": {"x-queue-type": "quorum"},
                }
            ],
            "exchanges": [{"vhost": V, "name": "x", "type": "direct"}],
        }
    )
    assert fake.queues[(V, "q")]["arguments"] == {"x-queue-version": 2}
    assert fake.exchanges[(V, "x")]["type"] == "topic"
    assert fake.users["u"]["tags"] == ["administrator"] and fake.users["u"]["password_hash"] == "c2VjcmV0"
    assert fake.permissions[(V, "u")]["read"] == ".*"


async def test_import_skips_bindings_to_missing_objects_and_rejects_unknown_users(fake: FakeRabbitMQ) -> None:
    await fake.import_definitions(
        {
            "bindings": [
                {"vhost": V, "source": "x", "destination": "nope", "destination_type": "queue", "routing_key": ""}
            ]
        }
    )
    assert len(fake.bindings) == 1
    with pytest.raises(BrokerRejected, match="no_such_user ghost"):
        await fake.import_definitions(
            {"permissions": [{"user": "ghost", "vhost": V, "configure": "", "write": "", "read": ""}]}
        )
    with pytest.raises(BrokerRejected, match="no_such_vhost nowhere"):
        await fake.import_definitions(
            {"queues": [{"vhost": "nowhere", "name": "q", "durable": True, "auto_delete": False}]}
        )
    with pytest.raises(BrokerRejected, match="function_clause"):  # 3.10 needs auto_delete
        await fake.import_definitions({"queues": [{"vhost": V, "name": "q", "durable": True}]})
    with pytest.raises(BrokerRejected, match="regular expression"):
        await fake.import_definitions(
            {"policies": [{"vhost": V, "name": "p", "pattern": "(", "definition": {"max-length": 1}}]}
        )
    with pytest.raises(BrokerRejected, match="no policy provided"):
        await fake.import_definitions({"policies": [{"vhost": V, "name": "p", "pattern": "^q$", "definition": {}}]})


async def test_creating_a_vhost_grants_the_acting_user_and_deletes_need_that_access(fake: FakeRabbitMQ) -> None:
    assert fake.permissions[(V, "admin")] == {
        "user": "admin",
        "vhost": V,
        "configure": ".*",
        "write": ".*",
        "read": ".*",
    }
    await fake.delete_permission(V, "admin")
    with pytest.raises(BrokerAccessRefused, match="Access refused"):
        await fake.delete_queue(V, "q")
    with pytest.raises(BrokerAccessRefused):
        await fake.unbind(V, "x", "q", "#")
    assert await fake.create_vhost(V) is False and await fake.create_vhost("v2") is True


async def test_exports_have_the_real_shapes(fake: FakeRabbitMQ) -> None:
    per_vhost = await fake.export_definitions(V)
    assert set(per_vhost) == {"rabbit_version", "parameters", "policies", "queues", "exchanges", "bindings"}
    assert "vhost" not in per_vhost["queues"][0]
    whole = await fake.export_definitions()
    assert whole["queues"][0]["vhost"] == V and {"users", "vhosts", "permissions", "topic_permissions"} <= set(whole)
    with pytest.raises(BrokerNotFound):
        await fake.export_definitions("ghost")


async def test_deleting_a_user_leaves_its_connections_open(fake: FakeRabbitMQ) -> None:
    connection = fake.open_connection("u", V)
    assert await fake.delete_user("u") is True and await fake.delete_user("u") is False
    assert connection in fake.connections and (V, "u") not in fake.permissions
    with pytest.raises(FakeConnectionRefused, match="unknown user"):
        fake.open_connection("u", V)


async def test_deleting_a_queue_drops_its_bindings_and_depth(fake: FakeRabbitMQ) -> None:
    fake.set_queue_depth(V, "q", ready=4, unacknowledged=1, consumers=2)
    (depth,) = await fake.queue_depths(V)
    assert (depth.ready, depth.unacknowledged, depth.consumers, depth.total) == (4, 1, 2, 5)
    assert await fake.delete_queue(V, "q") is True
    assert fake.bindings == {} and await fake.queue_depths(V) == []
    with pytest.raises(KeyError):
        fake.set_queue_depth(V, "q", ready=1)


async def test_failure_modes(fake: FakeRabbitMQ) -> None:
    fake.fail_next["list_users"] = BrokerRejected(500, "boom", "/api/users")
    with pytest.raises(BrokerRejected, match="boom"):
        await fake.list_users()
    assert await fake.list_users()  # one-shot
    fake.credentials_valid = False
    with pytest.raises(BrokerAuthenticationFailed):
        await fake.overview()
    fake.credentials_valid, fake.reachable = True, False
    with pytest.raises(BrokerUnreachable):
        await fake.check_health()
    assert fake.calls[-1] == "check_health"
