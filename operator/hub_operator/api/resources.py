"""Whole custom resources (apiVersion, kind, metadata, spec, status) with their object-level rules.

The operator mostly needs only the spec (``HubClientSpec.model_validate(body["spec"])``); these are for
tools and tests that read complete manifests, e.g. the examples.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter, model_validator

from hub_dispatcher import protocol

from .base import API_VERSION, ApiModel
from .common import ObjectMeta
from .fieldtypes import PERIMETER_NAME_MAX
from .hubclient import HubClientSpec, HubClientStatus
from .perimeter import PerimeterSpec, PerimeterStatus
from .vhostversion import VHostVersionSpec, VHostVersionStatus, expected_object_name

_PERIMETER_NAME_RE = re.compile(protocol.PERIMETER_NAME_PATTERN)


class _Resource(ApiModel):
    api_version: Literal["hubsante.io/v1alpha1"] = Field(API_VERSION, description="hubsante.io/v1alpha1")
    metadata: ObjectMeta = Field(description="Object metadata.")


class Perimeter(_Resource):
    kind: Literal["Perimeter"] = Field("Perimeter", description="Perimeter")
    spec: PerimeterSpec = Field(description="Desired state.")
    status: PerimeterStatus | None = Field(None, description="Observed state.")

    @model_validator(mode="after")
    def _name_is_a_perimeter_name(self) -> Perimeter:
        if len(self.metadata.name) > PERIMETER_NAME_MAX or not _PERIMETER_NAME_RE.match(self.metadata.name):
            raise ValueError(
                f"metadata.name {self.metadata.name!r} is not a perimeter name: lower-case letters, digits and '-', "
                f"at most {PERIMETER_NAME_MAX} characters"
            )
        return self


class VHostVersion(_Resource):
    kind: Literal["VHostVersion"] = Field("VHostVersion", description="VHostVersion")
    spec: VHostVersionSpec = Field(description="Desired state.")
    status: VHostVersionStatus | None = Field(None, description="Observed state.")

    @model_validator(mode="after")
    def _name_matches_vhost(self) -> VHostVersion:
        expected = expected_object_name(self.spec.perimeter, self.spec.version)
        if self.metadata.name != expected:
            raise ValueError(f"metadata.name must be {expected} (<perimeterRef.name>-v<version>), got {self.metadata.name}")
        return self


class HubClient(_Resource):
    kind: Literal["HubClient"] = Field("HubClient", description="HubClient")
    spec: HubClientSpec = Field(description="Desired state.")
    status: HubClientStatus | None = Field(None, description="Observed state.")


HubResource = Annotated[Perimeter | VHostVersion | HubClient, Field(discriminator="kind")]
_ADAPTER: TypeAdapter[Perimeter | VHostVersion | HubClient] = TypeAdapter(HubResource)


def parse_resource(body: dict[str, Any]) -> Perimeter | VHostVersion | HubClient:
    """Validate a manifest of one of the three kinds (chosen by its ``kind``)."""
    return _ADAPTER.validate_python(body)
