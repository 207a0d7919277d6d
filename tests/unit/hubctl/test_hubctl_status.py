"""hubctl status: the report says what the custom resources and the broker say, and the table shows it."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from rich.console import Console
from tests.unit.hubctl.hubctl_support import NOW, SAMU_A, SAMU_B, SDIS, environment, hub_client, run

from hub_operator.cli.inventory import Inventory, Readiness
from hub_operator.cli.kube import StaticHub
from hub_operator.cli.status import ClientRow, StatusReport, build_report, certificate_text, render
from hub_operator.clients.broker_api import QueueDepth

DEPTHS: dict[str, dict[str, QueueDepth] | str] = {
    "15-15_v1.5": {},
    "15-15_v2.0": {
        "dispatch": QueueDepth("dispatch", 3, 1, 2),
        "dispatch.dlq": QueueDepth("dispatch.dlq", 1, 0, 2),
        f"{SAMU_A}.message": QueueDepth(f"{SAMU_A}.message", 2, 5, 0),
        f"{SAMU_A}.info": QueueDepth(f"{SAMU_A}.info", 1, 0, 0),
        "fr.health.samu061.ack": QueueDepth("fr.health.samu061.ack", 4, 0, 0),
    },
    "15-nexsis_v1.8": "GET /api/queues/15-nexsis_v1.8: connection refused",
}


def report() -> StatusReport:
    return build_report(Inventory.load(environment()), DEPTHS, NOW)


def rendered(status_report: StatusReport) -> str:
    console = Console(width=250, record=True, color_system=None)
    render(status_report, console)
    return console.export_text()


def test_vhost_rows_carry_dispatchers_and_the_depth_of_the_dispatch_queues() -> None:
    rows = {row.name: row for row in report().vhosts}
    v20 = rows["15-15-v2.0"]
    assert (v20.dispatchers_ready, v20.dispatchers_desired, v20.dispatch_queue, v20.dead_letters) == (2, 2, 3, 1)
    assert rows["15-15-v1.5"].dispatch_queue == 0  # asked, and no queue there yet: nothing waits
    legacy = rows["15-nexsis-v1.8"]
    assert legacy.dispatch_queue is None and "connection refused" in legacy.depth_problem
    assert (legacy.profile, legacy.readiness.status, legacy.readiness.reason) == ("legacy", "False", "BrokerUnreachable")


def test_client_queue_depths_are_summed_over_all_its_ids_with_the_vhost_profile() -> None:
    clients = {row.name: row for row in report().clients}
    samu = {vhost.vhost: vhost.queued for vhost in clients[SAMU_A].vhosts}
    # Ready messages only: the 5 unacknowledged ones are with a consumer already.
    assert samu == {"15-15_v1.5": {"message": 0, "ack": 0, "info": 0},
                    "15-15_v2.0": {"message": 2, "ack": 0, "info": 1}}
    regional = clients["regional"]
    assert regional.client_ids == ["fr.health.samu014", "fr.health.samu061"]
    assert regional.vhosts[0].queued == {"message": 0, "ack": 4, "info": 0}
    assert [v.queued for v in clients[SDIS].vhosts] == [None]  # broker unreachable for that vhost


def test_the_table_shows_readiness_expiry_and_queues() -> None:
    text = rendered(report())
    lines = {line.split("│")[1].strip(): line for line in text.splitlines() if line.startswith("│") and line.split("│")[1].strip()}
    assert "Not ready: BrokerUnreachable" in lines["15-nexsis-v1.8"] and "0/1" in lines["15-nexsis-v1.8"]
    assert "EXPIRED 2025-02-27 12:00 (2d ago)" in lines[SAMU_B]
    assert "Not ready: CertificateExpired" in lines[SAMU_B]
    assert "until 2025-05-20 12:00 (80d)" in lines[SAMU_A]
    assert "message 2 · ack 0 · info 1" in text
    assert "Suspended" in lines[SDIS]
    assert "external (CN regulation.example.fr)" in lines["regional"]
    assert "Reconciling (was Ready)" in lines["regional"]  # generation 2, observed 1
    assert "15-15_v1.5 (deprecated)" in text
    assert "warning: queue depths unavailable: GET /api/queues/15-nexsis_v1.8: connection refused" in text


@pytest.mark.parametrize(("not_after", "expected", "style"), [
    (NOW + dt.timedelta(days=40), "until 2025-04-10 12:00 (40d)", "green"),
    (NOW + dt.timedelta(days=20), "until 2025-03-21 12:00 (20d)", "yellow"),   # within renewBefore (30 days)
    (NOW + dt.timedelta(hours=5), "until 2025-03-01 17:00 (5h)", "yellow"),
    (NOW - dt.timedelta(days=1), "EXPIRED 2025-02-28 12:00 (1d ago)", "bold red"),
    (None, "not issued yet", "yellow"),
])
def test_certificate_expiry_is_judged_against_renew_before(not_after: dt.datetime | None, expected: str,
                                                           style: str) -> None:
    row = ClientRow("c", ["fr.health.c"], "fr.health.c", False, "operator", not_after, dt.timedelta(days=30), [],
                    Readiness("True"))
    text = certificate_text(row, NOW)
    assert (text.plain, str(text.style)) == (expected, style)


def test_an_object_the_models_refuse_is_a_warning_not_a_failure() -> None:
    hub = environment()
    odd_status = hub_client("odd", "fr.health.samu099", ["15-15-v2.0"], ready=None)
    odd_status["status"] = {"conditions": [], "futureField": 1}
    bad_spec = hub_client("bad", "not-a-client-id", ["15-15-v2.0"], ready=None)
    inventory = Inventory.load(StaticHub(hub.namespace, [*hub.objects, odd_status, bad_spec], hub.secrets))
    assert [client.metadata.name for client in inventory.hub_clients].count("odd") == 1
    assert "bad" not in [client.metadata.name for client in inventory.hub_clients]
    assert any(problem.startswith("HubClient odd: status ignored (status.futureField") for problem in inventory.problems)
    assert any(problem.startswith("HubClient bad: skipped, not a valid HubClient (spec.clientId")
               for problem in inventory.problems)


def test_json_output_through_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    result = run(environment(), "status", "-o", "json", "--no-queues", monkeypatch=monkeypatch)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    vhosts = {row["name"]: row for row in document["vhosts"]}
    assert vhosts["15-15-v2.0"]["readiness"]["ready"] is True
    assert vhosts["15-15-v2.0"]["dispatch_queue"] is None and vhosts["15-15-v2.0"]["depth_problem"] == "not asked"
    clients = {row["name"]: row for row in document["clients"]}
    assert clients[SAMU_B]["readiness"] == {"status": "False", "reason": "CertificateExpired", "message": "expired",
                                            "stale": False, "ready": False}
    assert clients[SAMU_B]["certificate_not_after"].startswith("2025-02-27")


def test_an_unreachable_broker_does_not_hide_the_custom_resources(monkeypatch: pytest.MonkeyPatch) -> None:
    result = run(environment(), "status", monkeypatch=monkeypatch)  # the broker Secret points at port 1
    assert result.exit_code == 0, result.output
    assert "Not ready: CertificateExpired" in result.stdout
    assert "warning: queue depths unavailable:" in result.stdout and "127.0.0.1:1" in result.stdout


def test_a_bad_output_format_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    result = run(environment(), "status", "-o", "yaml", monkeypatch=monkeypatch)
    assert result.exit_code == 1 and "--output 'yaml': choose table or json" in result.stderr
