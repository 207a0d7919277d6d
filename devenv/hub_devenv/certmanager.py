"""A stand-in for cert-manager: its Certificate CRD, and a loop issuing Certificates from test CAs.

Enough of cert-manager for the operator's certManager mode: a Certificate (``cert-manager.io/v1``) whose
``issuerRef.name`` names a known CA gets its Secret (``tls.crt``, ``tls.key``, ``ca.crt`` and, when asked, a
PKCS#12 keystore) and a ``Ready`` condition for its generation.  Used by the tests and by the demo's local node
(:mod:`hub_devenv.localnode`); a real cluster runs cert-manager.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import threading
from typing import Any, Self

from hub_operator import pki
from hub_operator.api.fieldtypes import parse_duration
from kubernetes import client as k8s

from .controlplane import LocalControlPlane

log = logging.getLogger(__name__)

GROUP, VERSION, PLURAL = "cert-manager.io", "v1", "certificates"

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {
        "group": GROUP,
        "names": {"kind": "Certificate", "plural": PLURAL, "singular": "certificate", "listKind": "CertificateList"},
        "scope": "Namespaced",
        "versions": [{
            "name": VERSION, "served": True, "storage": True, "subresources": {"status": {}},
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            }}},
        }],
    },
}


def install_crd(cluster: LocalControlPlane) -> None:
    cluster.kubectl("apply", "--server-side", "--field-manager=cert-manager-emulator", "-f", "-", input=json.dumps(CRD))
    cluster.kubectl("wait", "--for=condition=Established", f"crd/{PLURAL}.{GROUP}", "--timeout=60s")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class CertManagerEmulator:
    def __init__(self, api_client: k8s.ApiClient, namespace: str, issuers: dict[str, pki.CertificateAuthority],
                 interval: float = 0.3) -> None:
        self._objects = k8s.CustomObjectsApi(api_client)
        self._core = k8s.CoreV1Api(api_client)
        self.namespace = namespace
        self.issuers = issuers
        self.interval = interval
        self.issued: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"cert-manager-{namespace}", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync_once()
            except Exception as error:  # noqa: BLE001
                log.debug("cert-manager emulator: %s", error)
            self._stop.wait(self.interval)

    def sync_once(self) -> None:
        listing = self._objects.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL)
        for certificate in listing.get("items", []):
            generation = certificate["metadata"].get("generation")
            conditions = (certificate.get("status") or {}).get("conditions") or []
            if any(c.get("type") == "Ready" and c.get("status") == "True" and c.get("observedGeneration") == generation
                   for c in conditions):
                continue
            self._issue(certificate)

    def _issue(self, certificate: dict[str, Any]) -> None:
        spec = certificate["spec"]
        name = certificate["metadata"]["name"]
        authority = self.issuers.get(spec["issuerRef"]["name"])
        if authority is None:
            self._status(certificate, "False", "IssuerNotFound", f"no issuer {spec['issuerRef']['name']}")
            return
        algorithm = pki.KeyAlgorithm.ECDSA_P256
        key = spec.get("privateKey") or {}
        if key.get("algorithm") == "RSA":
            algorithm = pki.KeyAlgorithm.RSA_3072 if key.get("size") == 3072 else pki.KeyAlgorithm.RSA_2048
        validity = parse_duration(spec.get("duration", "2160h"))
        issued = authority.issue(spec["commonName"], valid_for=validity, algorithm=algorithm)
        data = {"tls.crt": _b64(issued.cert_pem), "tls.key": _b64(issued.key_pem), "ca.crt": _b64(issued.ca_pem)}
        keystore = ((spec.get("keystores") or {}).get("pkcs12") or {})
        if keystore.get("create"):
            reference = keystore["passwordSecretRef"]
            password_secret = self._core.read_namespaced_secret(reference["name"], self.namespace)
            password = base64.b64decode(password_secret.data[reference["key"]])
            data["keystore.p12"] = _b64(issued.pkcs12(password))
        labels = ((spec.get("secretTemplate") or {}).get("labels") or {})
        body = {"metadata": {"name": spec["secretName"], "namespace": self.namespace, "labels": labels},
                "type": "kubernetes.io/tls", "data": data}
        try:
            self._core.replace_namespaced_secret(spec["secretName"], self.namespace, body)
        except k8s.ApiException as error:
            if error.status != 404:
                raise
            self._core.create_namespaced_secret(self.namespace, body)
        self._status(certificate, "True", "Ready", "Certificate is up to date and has not expired",
                     notAfter=issued.not_after.strftime("%Y-%m-%dT%H:%M:%SZ"))
        self.issued.append(name)

    def _status(self, certificate: dict[str, Any], status: str, reason: str, message: str, **extra: str) -> None:
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {"status": {"conditions": [{
            "type": "Ready", "status": status, "reason": reason, "message": message, "lastTransitionTime": now,
            "observedGeneration": certificate["metadata"].get("generation"),
        }], **extra}}
        self._objects.patch_namespaced_custom_object_status(GROUP, VERSION, self.namespace, PLURAL,
                                                           certificate["metadata"]["name"], body,
                                                           _content_type="application/merge-patch+json")
