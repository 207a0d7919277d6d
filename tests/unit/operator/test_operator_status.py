"""Status computation: Ready summaries and reasons, lastTransitionTime, status writes only on change."""

from __future__ import annotations

import datetime as dt
import json
import logging

from hub_operator.api.hubclient import CertificateMode, VhostAccessState
from hub_operator.certificates import CertificateFacts
from hub_operator.clients.fake_kubernetes import FakeKubernetes
from hub_operator.clients.kubernetes import HUBCLIENTS
from hub_operator.inventory import ClientRecord
from hub_operator.logs import JsonFormatter
from hub_operator.status import AccessFacts, StatusPublisher, client_status

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
RECORD = ClientRecord.from_body({
    "metadata": {"name": "c", "namespace": "ns", "uid": "u", "generation": 3},
    "spec": {"clientId": "fr.health.samu050", "vhostVersions": ["15-15-v1.5", "15-15-v2.0"]},
})
CERTIFICATE = CertificateFacts(True, "Issued", "ok", CertificateMode.OPERATOR, "fr.health.samu050", "c-tls")


def _conditions(status: object) -> dict[str, object]:
    return {c.type: c for c in status.conditions}  # type: ignore[attr-defined]


def test_ready_names_the_first_failure() -> None:
    accesses = [
        AccessFacts("15-15-v1.5", "15-15_v1.5", VhostAccessState.PROVISIONED, "Provisioned"),
        AccessFacts("15-15-v2.0", "15-15_v2.0", VhostAccessState.FAILED, "BrokerUnreachable", "no route"),
    ]
    status = client_status(RECORD, CERTIFICATE, accesses, None, now=NOW, drift_window=dt.timedelta(minutes=5))
    ready = _conditions(status)["Ready"]
    assert ready.status.value == "False" and ready.reason == "BrokerUnreachable"  # type: ignore[attr-defined]
    assert status.observed_generation == 3 and status.ready_vhosts == 1
    expired = CertificateFacts(False, "CertificateExpired", "expired", CertificateMode.CERT_MANAGER, "x")
    status = client_status(RECORD, expired, accesses[:1], None, now=NOW, drift_window=dt.timedelta(minutes=5))
    assert _conditions(status)["Ready"].reason == "CertificateExpired"  # type: ignore[attr-defined]


def test_transition_time_moves_only_when_the_status_changes() -> None:
    ok = [AccessFacts("15-15-v1.5", "15-15_v1.5", VhostAccessState.PROVISIONED, "Provisioned")]
    first = client_status(RECORD, CERTIFICATE, ok, None, now=NOW, drift_window=dt.timedelta(0))
    later = NOW + dt.timedelta(hours=1)
    same = client_status(RECORD, CERTIFICATE, ok, first, now=later, drift_window=dt.timedelta(0))
    assert _conditions(same)["Ready"].last_transition_time == NOW  # type: ignore[attr-defined]
    failed = [AccessFacts("15-15-v1.5", "15-15_v1.5", VhostAccessState.FAILED, "QueueConflict")]
    changed = client_status(RECORD, CERTIFICATE, failed, same, now=later, drift_window=dt.timedelta(0))
    assert _conditions(changed)["Ready"].last_transition_time == later  # type: ignore[attr-defined]


async def test_publisher_writes_only_changes_and_removes_stale_fields() -> None:
    kube = FakeKubernetes()
    kube.put(HUBCLIENTS, {"metadata": {"name": "c", "namespace": "ns"}})
    publisher = StatusPublisher(kube)  # type: ignore[arg-type]
    assert await publisher.write("hubclients", "ns", "c", {"username": "x", "readyVhosts": 1}, None)
    assert not await publisher.write("hubclients", "ns", "c", {"username": "x", "readyVhosts": 1}, None)
    assert await publisher.write("hubclients", "ns", "c", {"username": "x"}, None)
    assert kube.statuses[("hubclients", "ns", "c")] == {"username": "x"}
    assert publisher.writes == 2


def test_json_logs_carry_the_object() -> None:
    record = logging.LogRecord("kopf.objects", logging.INFO, __file__, 1, "handled %s", ("x",), None)
    record.k8s_ref = {"namespace": "ns", "name": "c", "kind": "HubClient"}
    record.reason = "DriftRepaired"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "handled x" and line["object"] == "ns/c" and line["kind"] == "HubClient"
    assert line["reason"] == "DriftRepaired" and line["level"] == "info"
