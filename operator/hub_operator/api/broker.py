"""The broker connection Secret a VHostVersion points at (``spec.brokerRef``)."""

from __future__ import annotations

import enum

from pydantic import Field

from .base import ApiModel
from .fieldtypes import ObjectName

#: Secret the operator falls back to when a VHostVersion names no broker (an operator setting may change it).
DEFAULT_BROKER_SECRET_NAME = "hub-broker"


class BrokerSecretKey(str, enum.Enum):
    """Keys of the broker connection Secret."""

    MANAGEMENT_URL = "managementUrl"
    USERNAME = "username"
    PASSWORD = "password"
    AMQPS_HOST = "amqpsHost"
    AMQPS_PORT = "amqpsPort"
    CA_CERT = "ca.crt"


_SECRET_KEYS_DOC = (
    "managementUrl (RabbitMQ management API base URL), username and password (an administrator of the "
    "management API), amqpsHost and amqpsPort (the AMQPS listener clients and dispatchers connect to), "
    "ca.crt (PEM CA that signed the broker's server certificate)"
)


class BrokerRef(ApiModel):
    """The broker a vhost lives on, as a Secret in the VHostVersion's namespace."""

    secret_name: ObjectName = Field(
        description=f"Name of a Secret in the same namespace with the keys {_SECRET_KEYS_DOC}."
    )
