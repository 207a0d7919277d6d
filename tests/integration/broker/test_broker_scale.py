"""How fast a big vhost converges on the real broker (measured and printed, not asserted on time)."""

from __future__ import annotations

import time

import pytest
from hub_operator.broker_sync import ChangeAction, apply_desired_state
from hub_operator.builders.broker import ClientAccess, VHostTopology, desired_vhost_state
from hub_operator.builders.broker_definitions import Definitions, ItemKind
from hub_operator.clients.rabbitmq import RabbitMQManagementClient

pytestmark = [pytest.mark.broker, pytest.mark.slow]


@pytest.mark.parametrize("count", [200])
async def test_big_vhost_from_empty_then_noop_then_one_repair(
    management: RabbitMQManagementClient, unique: str, count: int
) -> None:
    topology = VHostTopology(f"scale-{unique}_v1.5", dispatcher_username=f"d-{unique}")
    clients = [ClientAccess(f"c{i:04d}-{unique}", (f"fr.health.samu{i:04d}",)) for i in range(count)]
    try:
        started = time.perf_counter()
        desired = desired_vhost_state(topology, clients)
        built = time.perf_counter() - started
        first = await apply_desired_state(management, desired)
        noop = await apply_desired_state(management, desired)
        await management.delete_queue(topology.vhost, "fr.health.samu0100.ack")
        repair = await apply_desired_state(management, desired)

        assert first.converged and noop.changes == () and len(repair.of(ChangeAction.REPAIRED)) == 2
        export = Definitions.from_api(await management.export_definitions(topology.vhost), vhost=topology.vhost)
        assert len(export.section(ItemKind.QUEUE)) == 2 + 3 * count
        print(
            f"\n[measure] {count} clients ({len(desired.definitions)} definitions): build {built * 1000:.0f} ms, "
            f"apply from empty {first.elapsed_seconds * 1000:.0f} ms, "
            f"no-op re-apply {noop.elapsed_seconds * 1000:.0f} ms, "
            f"repair of one queue {repair.elapsed_seconds * 1000:.0f} ms"
        )
    finally:
        await management.delete_vhost(topology.vhost)
        for username in [topology.dispatcher_username, *(c.username for c in clients)]:
            await management.delete_user(username)
