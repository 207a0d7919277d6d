"""How many dispatchers a vhost runs and with which resources (Perimeter defaults, VHostVersion overrides)."""

from __future__ import annotations

from pydantic import Field, model_validator

from .base import ApiModel, CelReason, CelRule, cel
from .fieldtypes import Quantity, quantity_value

#: Upper bound for fixed replicas and autoscaling: a vhost never needs more consumers than this.
MAX_DISPATCHER_REPLICAS = 20
#: Replicas when a Perimeter sets neither ``replicas`` nor ``autoscaling``.
DEFAULT_DISPATCHER_REPLICAS = 1
DEFAULT_TARGET_QUEUE_DEPTH = 10

_RESOURCES = ("cpu", "memory")


def _within_limit_rule(resource: str) -> CelRule:
    both = (f"has(self.requests) && has(self.limits) && has(self.requests.{resource}) "
            f"&& has(self.limits.{resource})")
    compare = (f"quantity(string(self.requests.{resource}))"
               f".compareTo(quantity(string(self.limits.{resource}))) <= 0")
    return CelRule(
        rule=f"!({both}) || {compare}",
        message=f"requests.{resource} must not exceed limits.{resource}",
        field_path=f".requests.{resource}",
    )


class ResourceList(ApiModel):
    """Amounts of compute resources, in Kubernetes quantity syntax."""

    cpu: Quantity | None = Field(None, description="CPU, e.g. 250m (a quarter of a core) or 1.")
    memory: Quantity | None = Field(None, description="Memory, e.g. 128Mi or 1Gi.")


class ResourceRequirements(ApiModel):
    """Compute resources of each dispatcher container (as in a Pod's resources)."""

    model_config = {"json_schema_extra": cel(*(_within_limit_rule(resource) for resource in _RESOURCES))}

    requests: ResourceList | None = Field(None, description="Resources reserved for each dispatcher.")
    limits: ResourceList | None = Field(None, description="Maximum resources each dispatcher may use.")

    @model_validator(mode="after")
    def _requests_within_limits(self) -> ResourceRequirements:
        if self.requests is None or self.limits is None:
            return self
        for resource in _RESOURCES:
            request, limit = getattr(self.requests, resource), getattr(self.limits, resource)
            if request is not None and limit is not None and quantity_value(request) > quantity_value(limit):
                raise ValueError(f"requests.{resource} ({request}) must not exceed limits.{resource} ({limit})")
        return self


class Autoscaling(ApiModel):
    """Scale the dispatchers on the depth of the vhost's ``dispatch`` queue."""

    model_config = {
        "json_schema_extra": cel(
            CelRule(
                rule="self.minReplicas <= self.maxReplicas",
                message="minReplicas must be less than or equal to maxReplicas",
                field_path=".minReplicas",
            )
        )
    }

    min_replicas: int = Field(
        1, ge=1, le=MAX_DISPATCHER_REPLICAS, description="Fewest dispatchers kept running, even when idle."
    )
    max_replicas: int = Field(
        ge=1, le=MAX_DISPATCHER_REPLICAS, description="Most dispatchers started under load."
    )
    target_queue_depth: int = Field(
        DEFAULT_TARGET_QUEUE_DEPTH,
        ge=1,
        le=100_000,
        description="Messages waiting in the dispatch queue per dispatcher above which another one is started.",
    )

    @model_validator(mode="after")
    def _min_le_max(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"minReplicas ({self.min_replicas}) must be less than or equal to maxReplicas ({self.max_replicas})"
            )
        return self


class DispatcherSettings(ApiModel):
    """Dispatchers of a vhost: a fixed number of replicas or autoscaling bounds, and resources.

    On a Perimeter these are the defaults of all its vhosts; on a VHostVersion each field set replaces
    the Perimeter's (``replicas`` and ``autoscaling`` replace each other).
    """

    model_config = {
        "json_schema_extra": cel(
            CelRule(
                rule="!(has(self.replicas) && has(self.autoscaling))",
                message="set either replicas (a fixed count) or autoscaling (bounds), not both",
                field_path=".autoscaling",
                reason=CelReason.FORBIDDEN,
            )
        )
    }

    replicas: int | None = Field(
        None,
        ge=0,
        le=MAX_DISPATCHER_REPLICAS,
        description=(
            f"Fixed number of dispatchers (0 pauses dispatching: messages wait in the dispatch queue). "
            f"Default {DEFAULT_DISPATCHER_REPLICAS} when neither replicas nor autoscaling is set."
        ),
    )
    autoscaling: Autoscaling | None = Field(
        None, description="Scale on queue depth between bounds instead of a fixed replica count."
    )
    resources: ResourceRequirements | None = Field(
        None, description="CPU and memory of each dispatcher; unset means the operator's defaults."
    )

    @model_validator(mode="after")
    def _fixed_or_autoscaled(self) -> DispatcherSettings:
        if self.replicas is not None and self.autoscaling is not None:
            raise ValueError("set either replicas (a fixed count) or autoscaling (bounds), not both")
        return self

    @property
    def effective_replicas(self) -> int | None:
        """The fixed replica count, or None when autoscaling decides."""
        if self.autoscaling is not None:
            return None
        return DEFAULT_DISPATCHER_REPLICAS if self.replicas is None else self.replicas

    def overridden_by(self, overrides: DispatcherSettings | None) -> DispatcherSettings:
        """These settings with each field the overrides set taking precedence."""
        if overrides is None:
            return self
        scaling = overrides if (overrides.replicas is not None or overrides.autoscaling is not None) else self
        return DispatcherSettings(
            replicas=scaling.replicas,
            autoscaling=scaling.autoscaling,
            resources=overrides.resources if overrides.resources is not None else self.resources,
        )
