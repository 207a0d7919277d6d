"""A small hub environment in memory for the hubctl unit tests: two perimeters, a current and a legacy vhost,
clients in several states, their certificate Secrets and the broker Secret."""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

from typer.testing import CliRunner, Result

from hub_operator import pki
from hub_operator.cli import main as hubctl_main
from hub_operator.cli.kube import StaticHub

NAMESPACE = "hub-sandbox"
NOW = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
T = "2025-03-01T10:00:00Z"
SAMU_A, SAMU_B, SDIS = "fr.health.samu050", "fr.health.samu076", "fr.fire.nexsis.sdis50"
KEYSTORE_PASSWORD = b"keystore-secret"


def condition(kind: str, status: str, reason: str, message: str = "", generation: int = 1) -> dict[str, Any]:
    return {"type": kind, "status": status, "reason": reason, "message": message, "lastTransitionTime": T,
            "observedGeneration": generation}


def perimeter(name: str, ready: dict[str, Any], vhosts: list[str]) -> dict[str, Any]:
    return {"apiVersion": "hubsante.io/v1alpha1", "kind": "Perimeter",
            "metadata": {"name": name, "namespace": NAMESPACE, "generation": 1},
            "spec": {"description": f"perimeter {name}", "messageTTL": "12h"},
            "status": {"observedGeneration": 1, "conditions": [ready], "useCases": "all", "vhosts": vhosts}}


def vhost_version(perimeter_name: str, version: str, models: str, *, profile: str = "current",
                  state: str = "active", ready: dict[str, Any] | None = None, replicas: tuple[int, int] = (1, 1),
                  generation: int = 1) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "hubsante.io/v1alpha1", "kind": "VHostVersion",
        "metadata": {"name": f"{perimeter_name}-v{version}", "namespace": NAMESPACE, "generation": generation},
        "spec": {"perimeterRef": {"name": perimeter_name}, "version": version, "models": {"version": models},
                 "profile": profile, "state": state},
    }
    if ready is not None:
        body["status"] = {"observedGeneration": ready["observedGeneration"], "conditions": [ready],
                          "vhost": f"{perimeter_name}_v{version}", "clients": 2,
                          "dispatcher": {"replicas": replicas[0], "readyReplicas": replicas[1]}}
    return body


def hub_client(name: str, client_id: str, vhosts: list[str], *, ready: dict[str, Any] | None,
               states: dict[str, str] | None = None, not_after: dt.datetime | None = None, extra_spec: Any = None,
               additional: list[str] | None = None, generation: int = 1) -> dict[str, Any]:
    spec: dict[str, Any] = {"clientId": client_id, "vhostVersions": vhosts, **(extra_spec or {})}
    if additional:
        spec["additionalClientIds"] = additional
    body: dict[str, Any] = {"apiVersion": "hubsante.io/v1alpha1", "kind": "HubClient",
                            "metadata": {"name": name, "namespace": NAMESPACE, "generation": generation},
                            "spec": spec}
    if ready is not None:
        status: dict[str, Any] = {"observedGeneration": ready["observedGeneration"], "conditions": [ready],
                                  "username": spec.get("certificate", {}).get("commonName", client_id),
                                  "clientIds": [client_id, *(additional or [])],
                                  "vhosts": [{"vhostVersion": v, "vhost": v.replace("-v", "_v"),
                                              "state": (states or {}).get(v, "Provisioned")} for v in vhosts]}
        if not_after is not None:
            status["certificate"] = {"secretName": f"{name}-tls", "commonName": client_id,
                                     "notAfter": not_after.isoformat(), "serial": "1a2b"}
        body["status"] = status
    return body


@functools.cache
def authority() -> pki.CertificateAuthority:
    return pki.CertificateAuthority.generate("hubctl unit test CA")


def certificate_secret(cn: str, *, keystore: bool = True) -> dict[str, bytes]:
    issued = authority().issue(cn)
    data = {"tls.crt": issued.cert_pem, "tls.key": issued.key_pem, "ca.crt": authority().cert_pem}
    if keystore:
        data["keystore.p12"] = issued.pkcs12(KEYSTORE_PASSWORD)
        data["keystore.password"] = KEYSTORE_PASSWORD
    return data


def broker_secret(**overrides: bytes) -> dict[str, bytes]:
    data = {"managementUrl": b"http://127.0.0.1:1", "username": b"admin", "password": b"secret",
            "amqpsHost": b"rabbitmq.hub-sandbox.svc", "amqpsPort": b"5671", "ca.crt": authority().cert_pem}
    data.update(overrides)
    return data


def environment() -> StaticHub:
    ready = condition("Ready", "True", "Ready", "ok")
    objects = [
        perimeter("15-15", ready, ["15-15_v1.5", "15-15_v2.0"]),
        perimeter("15-nexsis", condition("Ready", "False", "VHostVersionsNotReady", "15-nexsis-v1.8: Pending"),
                  ["15-nexsis_v1.8"]),
        vhost_version("15-15", "1.5", "1.1", state="deprecated", ready=ready),
        vhost_version("15-15", "2.0", "2.2", ready=ready, replicas=(2, 2)),
        vhost_version("15-nexsis", "1.8", "1.1", profile="legacy",
                      ready=condition("Ready", "False", "BrokerUnreachable", "connection refused"), replicas=(1, 0)),
        hub_client(SAMU_A, SAMU_A, ["15-15-v1.5", "15-15-v2.0"], ready=ready, not_after=NOW + dt.timedelta(days=80)),
        hub_client(SAMU_B, SAMU_B, ["15-15-v2.0", "15-nexsis-v1.8"], ready=condition(
            "Ready", "False", "CertificateExpired", "expired"), states={"15-nexsis-v1.8": "Failed"},
            not_after=NOW - dt.timedelta(days=2)),
        hub_client(SDIS, SDIS, ["15-nexsis-v1.8"], ready=ready, not_after=NOW + dt.timedelta(days=10),
                   extra_spec={"suspended": True}),
        hub_client("regional", "fr.health.samu014", ["15-15-v2.0"], additional=["fr.health.samu061"],
                   ready=condition("Ready", "True", "Ready", "", 1), generation=2,
                   extra_spec={"certificate": {"mode": "external", "commonName": "regulation.example.fr"}}),
    ]
    secrets = {"hub-broker": broker_secret(), f"{SAMU_A}-tls": certificate_secret(SAMU_A),
               f"{SAMU_B}-tls": certificate_secret(SAMU_B, keystore=False)}
    return StaticHub(NAMESPACE, objects, secrets)


def run(hub: StaticHub, *arguments: str, monkeypatch: Any) -> Result:
    """hubctl in-process against ``hub``, on a wide terminal so that tables do not wrap."""
    monkeypatch.setattr(hubctl_main, "connect", lambda target: hub)
    return CliRunner().invoke(hubctl_main.app, list(arguments), env={"COLUMNS": "250", "NO_COLOR": "1"})
