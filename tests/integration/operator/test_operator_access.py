"""What an issued certificate allows on the broker: its own routing key, its own queues, nothing else."""

from __future__ import annotations

import json
import urllib.request

import pika
import pika.exceptions
import pytest
from hub_dispatcher import protocol

from tests.integration.operator.conftest import HubEnv
from tests.integration.operator.operator_manifests import SmallHub

pytestmark = [pytest.mark.cluster, pytest.mark.broker]


def test_a_client_publishes_only_as_itself_reads_only_its_queues_and_declares_nothing(hub_env: HubEnv) -> None:
    hub = SmallHub()
    hub_env.apply(*hub.base(), hub.client("samua"), hub.client("samub"))
    for name in ("samua", "samub"):
        hub_env.wait_condition("hubclient", name)
    hub_env.wait_condition("vhostversion", hub.vhost_version, reason="ScaledToZero")
    own, other = hub.client_id("samua"), hub.client_id("samub")
    a = hub_env.credentials("samua")
    assert a.cn == own
    current = protocol.CURRENT

    with pika.BlockingConnection(hub_env.broker.pika_parameters(a, hub.vhost)) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish(protocol.HUB_EXCHANGE, own, b"{}",
                              pika.BasicProperties(content_type="application/json", delivery_mode=2))
        for queue in current.client_queues(own):
            channel.queue_declare(queue, passive=True)  # its own queues exist and are readable
        assert channel.basic_get(current.client_queue(own, protocol.QueueKind.MESSAGE))[0] is None
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            channel.basic_publish(protocol.HUB_EXCHANGE, other, b"{}", pika.BasicProperties(delivery_mode=2))
        assert refused.value.reply_code == 403
        channel = connection.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            channel.queue_declare(f"{own}.extra", durable=True)
        assert refused.value.reply_code == 403
        channel = connection.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            channel.basic_get(protocol.DISPATCH_QUEUE)
        assert refused.value.reply_code == 403

    b = hub_env.credentials("samub")
    with pika.BlockingConnection(hub_env.broker.pika_parameters(b, hub.vhost)) as connection:
        channel = connection.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            channel.basic_get(current.client_queue(own, protocol.QueueKind.MESSAGE))
        assert refused.value.reply_code == 403

    # The message published by samua waits in the dispatch queue (no dispatcher runs: replicas 0).
    dispatch = hub_env.rabbit("GET", "queues", hub.vhost, protocol.DISPATCH_QUEUE)
    assert dispatch is not None

    with urllib.request.urlopen(hub_env.operator.health_url, timeout=5) as response:
        assert response.status == 200
        assert "identity" in json.loads(response.read())
    with urllib.request.urlopen(hub_env.operator.metrics_url, timeout=5) as response:
        metrics = response.read().decode()
    assert 'hub_operator_reconciles_total{kind="HubClient",result="success"}' in metrics
    assert "hub_operator_broker_apply_duration_seconds" in metrics
    assert "Forbidden" not in hub_env.operator.log_text(), "the operator needed a permission hub_operator.rbac lacks"
