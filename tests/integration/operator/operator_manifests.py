"""Small hub environments for the operator's integration tests (unique names: the broker is shared)."""

from __future__ import annotations

from typing import Any

from tests.integration.operator.conftest import unique_suffix


def perimeter(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "hubsante.io/v1alpha1", "kind": "Perimeter", "metadata": {"name": name},
            "spec": {"description": f"test perimeter {name}", **spec}}


def vhost_version(perimeter_name: str, version: str = "1.0", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "hubsante.io/v1alpha1", "kind": "VHostVersion",
            "metadata": {"name": f"{perimeter_name}-v{version}"},
            "spec": {"perimeterRef": {"name": perimeter_name}, "version": version, "models": {"version": "1.1"},
                     **spec}}


def hub_client(name: str, client_id: str, vhost_versions: list[str], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "hubsante.io/v1alpha1", "kind": "HubClient", "metadata": {"name": name},
            "spec": {"clientId": client_id, "vhostVersions": vhost_versions, **spec}}


class SmallHub:
    """One perimeter, one vhost (no dispatcher: replicas 0) and clients with ids unique to this test."""

    def __init__(self) -> None:
        suffix = unique_suffix()
        self.perimeter = f"p-{suffix}"
        self.vhost_version = f"{self.perimeter}-v1.0"
        self.vhost = f"{self.perimeter}_v1.0"
        self.suffix = suffix

    def client_id(self, label: str) -> str:
        return f"fr.health.{label}{self.suffix}"

    def base(self, **perimeter_spec: Any) -> list[dict[str, Any]]:
        spec = {"dispatcher": {"replicas": 0}, **perimeter_spec}
        return [perimeter(self.perimeter, **spec), vhost_version(self.perimeter)]

    def client(self, label: str, **spec: Any) -> dict[str, Any]:
        return hub_client(label, self.client_id(label), [self.vhost_version], **spec)
