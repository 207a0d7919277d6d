"""Suspension closes a live connection within seconds and refuses reconnection; lifting it restores access."""

from __future__ import annotations

import time

import pika
import pika.exceptions
import pytest

from tests.helpers.broker_refusals import wait_closed_by_broker
from tests.integration.operator.conftest import HubEnv
from tests.integration.operator.operator_manifests import SmallHub

pytestmark = [pytest.mark.cluster, pytest.mark.broker]


def test_suspend_then_unsuspend_a_connected_client(hub_env: HubEnv) -> None:
    hub = SmallHub()
    hub_env.apply(*hub.base(), hub.client("samua"), hub.client("samub"))
    hub_env.wait_condition("hubclient", "samua")
    hub_env.wait_condition("hubclient", "samub")
    credentials = hub_env.credentials("samua")
    bystander = pika.BlockingConnection(hub_env.broker.pika_parameters(hub_env.credentials("samub"), hub.vhost))
    connection = pika.BlockingConnection(hub_env.broker.pika_parameters(credentials, hub.vhost))
    connection.channel().queue_declare(f"{hub.client_id('samua')}.message", passive=True)

    started = time.monotonic()
    hub_env.kubectl("patch", "hubclient", "samua", "--type=merge", "-p", '{"spec":{"suspended":true}}')
    closed = wait_closed_by_broker(connection, timeout=15)
    closed_after = time.monotonic() - started
    assert isinstance(closed, pika.exceptions.ConnectionClosedByBroker) and closed.reply_code == 320
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika.BlockingConnection(hub_env.broker.pika_parameters(credentials, hub.vhost))
    ready = hub_env.wait_condition("hubclient", "samua", reason="Suspended", timeout=20)
    assert "suspended on purpose" in ready["message"]
    assert hub_env.condition("hubclient", "samua", "Suspended")["status"] == "True"
    assert hub_env.wait_for(lambda: hub_env.events("samua", "ConnectionsClosed"), timeout=10, what="an Event")
    assert bystander.is_open
    bystander.process_data_events(time_limit=0.2)
    assert bystander.is_open
    bystander.close()

    hub_env.kubectl("patch", "hubclient", "samua", "--type=merge", "-p", '{"spec":{"suspended":false}}')
    hub_env.wait_condition("hubclient", "samua", reason="Ready", timeout=20)
    pika.BlockingConnection(hub_env.broker.pika_parameters(credentials, hub.vhost)).close()
    print(f"\n[measure] live connection closed {closed_after:.2f} s after `kubectl patch` (suspended: true)")
