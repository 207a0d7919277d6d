"""Certificates are renewed before they expire (the check runs every 5 s in these tests)."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pika
import pytest
from hub_operator import pki

from tests.integration.operator.conftest import HubEnv
from tests.integration.operator.operator_manifests import SmallHub

pytestmark = [pytest.mark.cluster, pytest.mark.broker]


def test_a_certificate_due_for_renewal_is_reissued_and_works(hub_env: HubEnv) -> None:
    hub = SmallHub()
    hub_env.apply(*hub.base(), hub.client("samua"))
    hub_env.wait_condition("hubclient", "samua")
    before = (hub_env.get("hubclient", "samua") or {})["status"]["certificate"]
    # Put back a certificate that expires within renewBefore (720h by default): as if it had aged.
    aged = hub_env.broker.ca.issue(hub.client_id("samua"), valid_for=dt.timedelta(hours=2))
    patch = {"data": {"tls.crt": base64.b64encode(aged.cert_pem).decode(),
                      "tls.key": base64.b64encode(aged.key_pem).decode()}}
    hub_env.kubectl("patch", "secret", before["secretName"], "--type=merge", "-p", json.dumps(patch))
    aged_serial = format(aged.certificate.serial_number, "x")

    def renewed() -> dict[str, object] | None:
        certificate = ((hub_env.get("hubclient", "samua") or {}).get("status") or {}).get("certificate") or {}
        return certificate if certificate.get("serial") not in (before["serial"], aged_serial) else None

    after = hub_env.wait_for(renewed, timeout=30, what="a renewed certificate")
    stored = pki.load_cert(hub_env.secret_data(before["secretName"])["tls.crt"])
    assert format(stored.serial_number, "x") == after["serial"]
    assert stored.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=80)
    assert hub_env.wait_for(lambda: hub_env.events("samua", "CertificateRenewed"), timeout=10, what="an Event")
    assert hub_env.condition("hubclient", "samua", "CertificateReady")["reason"] == "Renewed"
    pika.BlockingConnection(hub_env.broker.pika_parameters(hub_env.credentials("samua"), hub.vhost)).close()
