"""Fixtures for tests against the real broker: a management client and names no other test uses."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from hub_devenv.rabbitmq import LocalBroker
from hub_operator.clients.rabbitmq import RabbitMQManagementClient

from tests.helpers.topology import management_client


@pytest.fixture
async def management(broker: LocalBroker) -> AsyncIterator[RabbitMQManagementClient]:
    async with management_client(broker) as client:
        yield client


@pytest.fixture
def unique() -> str:
    """A suffix making vhost and user names unique in the session-wide broker."""
    return os.urandom(4).hex()
