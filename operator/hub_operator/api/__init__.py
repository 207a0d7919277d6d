"""Typed views of the hub's custom resources; they also generate the CRDs (see ``crdgen``).

The operator loads a stored object's spec with e.g. ``HubClientSpec.model_validate(body["spec"])``.
"""

from .base import API_VERSION, CATEGORY, GROUP, VERSION
from .common import Condition, ConditionStatus, DeletionPolicy, set_condition
from .hubclient import HUBCLIENT, CertificateMode, HubClientSpec, HubClientStatus
from .perimeter import PERIMETER, PerimeterSpec, PerimeterStatus
from .vhostversion import VHOSTVERSION, VHostVersionSpec, VHostVersionStatus

__all__ = [
    "API_VERSION",
    "CATEGORY",
    "GROUP",
    "HUBCLIENT",
    "PERIMETER",
    "VERSION",
    "VHOSTVERSION",
    "CertificateMode",
    "Condition",
    "ConditionStatus",
    "DeletionPolicy",
    "HubClientSpec",
    "HubClientStatus",
    "PerimeterSpec",
    "PerimeterStatus",
    "VHostVersionSpec",
    "VHostVersionStatus",
    "set_condition",
]
