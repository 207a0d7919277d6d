"""hubctl send builds valid messages from the bundles (JSON and XML, current and legacy routing keys) and refuses
what the vhost's bundle refuses; what it shows of a received message."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import orjson
import pytest
from lxml import etree
from rich.console import Console
from typer.testing import CliRunner
from tests.helpers.hubsante_models import MODEL_VERSIONS
from tests.unit.dispatcher.dispatch_support import load_bundle
from tests.unit.hubctl.hubctl_support import SAMU_A, SAMU_B, SDIS, authority, certificate_secret

from hub_devenv.paths import models_root
from hub_devenv.processes import free_port
from hub_dispatcher import edxl
from hub_dispatcher.protocol import ProtocolProfile
from hub_operator.cli.amqp import ClientConnection, Delivery
from hub_operator.cli.errors import HubctlError
from hub_operator.cli.main import app
from hub_operator.cli.messaging import SendKind, SendRequest, WireFormat, build_outgoing, describe_delivery
from hub_operator.cli.session import ClientIdentity, ClientSession, VhostAccess

NOW = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.timezone.utc)


def session(version: str, profile: ProtocolProfile = ProtocolProfile.CURRENT, client_id: str = SAMU_A) -> ClientSession:
    access = VhostAccess("15-15_v2.0", "15-15-v2.0", profile, version, None, "127.0.0.1", 5671, "localhost")
    identity = ClientIdentity(client_id, (client_id,), b"", b"", b"", b"")
    return ClientSession(identity, access, client_id)


@pytest.mark.parametrize("version", MODEL_VERSIONS)
@pytest.mark.parametrize("wire", list(WireFormat))
def test_a_create_case_is_valid_in_both_formats(version: str, wire: WireFormat) -> None:
    bundle = load_bundle(version)
    outgoing = build_outgoing(bundle, session(version), SendRequest(SAMU_B, "RC-EDA", message_format=wire), NOW)
    assert outgoing.content_type == f"application/{wire.value}"
    if wire is WireFormat.JSON:
        assert bundle.is_valid_json(orjson.loads(outgoing.body))
    else:
        assert bundle.validate_xml(etree.fromstring(outgoing.body)).valid
    received = edxl.read_received(outgoing.body, outgoing.content_type)
    assert (received.distribution_id, received.sender_id, received.recipient_id, received.use_case) == (
        outgoing.distribution_id, SAMU_A, SAMU_B, "createCase")
    assert outgoing.routing_key == SAMU_A


def test_legacy_vhosts_get_the_legacy_routing_key() -> None:
    outgoing = build_outgoing(load_bundle("1.1"), session("1.1", ProtocolProfile.LEGACY, SDIS),
                              SendRequest(SAMU_A, "createCase"), NOW)
    assert outgoing.routing_key == f"{SDIS}.out.message"


def test_kind_status_and_lifetime_reach_the_envelope() -> None:
    request = SendRequest(SAMU_B, "createCase", kind=SendKind.UPDATE, status=edxl.DistributionStatus.EXERCISE,
                          lifetime=dt.timedelta(hours=2))
    document = build_outgoing(load_bundle("3.4.1"), session("3.4.1"), request, NOW).document
    assert (document["distributionKind"], document["distributionStatus"]) == ("Update", "Exercise")
    assert (document["dateTimeSent"], document["dateTimeExpires"]) == ("2025-03-01T12:00:00+00:00",
                                                                       "2025-03-01T14:00:00+00:00")


def test_a_use_case_file_of_your_own_is_sent(tmp_path: Path) -> None:
    path = tmp_path / "mine.json"
    path.write_text('{"reference": {"distributionID": "fr.health.samu076_42"}}')
    outgoing = build_outgoing(load_bundle("2.2"), session("2.2"), SendRequest(SAMU_B, use_case_file=path), NOW)
    assert (outgoing.use_case, outgoing.source) == ("reference", "mine")


def test_an_invalid_use_case_is_refused_with_the_field_unless_validation_is_off(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"createCase": {"caseId": 7}}')
    with pytest.raises(HubctlError) as failure:
        build_outgoing(load_bundle("3.4.1"), session("3.4.1"), SendRequest(SAMU_B, use_case_file=path), NOW)
    assert "the createCase message is not valid against model 3.4.1" in failure.value.message
    assert "/createCase" in failure.value.message and "--no-validate" in (failure.value.hint or "")
    sent = build_outgoing(load_bundle("3.4.1"), session("3.4.1"),
                          SendRequest(SAMU_B, use_case_file=path, validate=False), NOW)
    assert orjson.loads(sent.body)["content"][0]["jsonContent"]["embeddedJsonContent"]["message"]["createCase"] == {
        "caseId": 7}


@pytest.mark.parametrize(("version", "request_", "error"), [
    ("2.2", SendRequest(SAMU_B, "appointment"), "model bundle 2.2 has no example of appointment"),
    ("1.1", SendRequest(SAMU_B, "createCaseHealthUpdate", message_format=WireFormat.XML),
     "model 1.1 gives createCaseHealthUpdate no XML form: send it as JSON"),
    ("3.4.1", SendRequest("fr.health", "createCase"), "recipient 'fr.health' is not a client id"),
    ("3.4.1", SendRequest(SAMU_B), "choose a use case"),
    ("3.4.1", SendRequest(SAMU_B, "createCase", example="nope"), "no example of createCase matches 'nope'"),
])
def test_refusals(version: str, request_: SendRequest, error: str) -> None:
    with pytest.raises(HubctlError) as failure:
        build_outgoing(load_bundle(version), session(version), request_, NOW)
    assert error in failure.value.message


def test_a_use_case_the_bundle_does_not_define_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "rdv.json"
    path.write_text('{"appointment": {}}')
    with pytest.raises(HubctlError) as failure:
        build_outgoing(load_bundle("2.2"), session("2.2"), SendRequest(SAMU_B, use_case_file=path), NOW)
    assert "model 2.2 of 15-15_v2.0 has no use case appointment" in failure.value.message


def test_a_use_case_file_must_match_the_named_use_case(tmp_path: Path) -> None:
    path = tmp_path / "ref.json"
    path.write_text('{"reference": {"distributionID": "x"}}')
    with pytest.raises(HubctlError, match="holds reference, not createCase"):
        build_outgoing(load_bundle("3.4.1"), session("3.4.1"), SendRequest(SAMU_B, "createCase", use_case_file=path))


def test_an_error_report_is_shown_with_its_code_and_cause() -> None:
    report = {"distributionID": "fr.health.hub_1", "senderID": "fr.health.hub", "distributionKind": "Error",
              "descriptor": {"explicitAddress": {"explicitAddressValue": SAMU_A}},
              "content": [{"jsonContent": {"embeddedJsonContent": {"message": {"error": {
                  "errorCode": {"statusCode": 300, "statusString": "INVALID_MESSAGE"},
                  "errorCause": "/content/0/...: missing required property 'caseId'",
                  "referencedDistributionID": "fr.health.samu050_1"}}}}}]}
    body = orjson.dumps(report)
    delivery = Delivery(f"{SAMU_A}.info", body, "application/json", 1, True)
    console = Console(width=200, record=True, color_system=None)
    console.print(describe_delivery(delivery, edxl.read_received(body, "application/json"), show_body=True))
    text = console.export_text()
    assert "error report on fr.health.samu050.info (redelivered)" in text
    assert "300 INVALID_MESSAGE" in text and "missing required property 'caseId'" in text
    assert "refers to        fr.health.samu050_1" in text
    assert '"statusCode": 300' in text  # the body, pretty-printed


def test_an_unreachable_broker_is_explained_with_the_socket_error() -> None:
    tls = certificate_secret(SAMU_A, keystore=False)
    access = VhostAccess("15-15_v2.0", "15-15-v2.0", ProtocolProfile.CURRENT, "3.4.1", None, "127.0.0.1",
                         free_port(), "localhost")
    identity = ClientIdentity(SAMU_A, (SAMU_A,), tls["tls.crt"], tls["tls.key"], b"", authority().cert_pem)
    with pytest.raises(HubctlError) as failure, ClientConnection(ClientSession(identity, access, SAMU_A), timeout=2):
        pass
    assert failure.value.message.startswith(f"cannot reach the broker at amqps://127.0.0.1:{access.port}/15-15_v2.0: "
                                            "ConnectionRefusedError")
    assert "--amqps-host" in (failure.value.hint or "")


def test_an_unusable_key_is_refused_before_connecting() -> None:
    access = VhostAccess("v_v1.0", "v-v1.0", ProtocolProfile.CURRENT, "3.4.1", None, "127.0.0.1", 1, "localhost")
    identity = ClientIdentity(SAMU_A, (SAMU_A,), b"not a certificate", b"nor a key", b"", authority().cert_pem)
    with pytest.raises(HubctlError, match="the client certificate, key or broker CA is unusable"):
        with ClientConnection(ClientSession(identity, access, SAMU_A)):
            pass


def test_examples_lists_use_cases_with_their_forms_and_examples() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["examples", "--models", "1.1", "--models-root", str(models_root())],
                           env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if line.startswith("│")}
    assert "RC-EDA-FemmeEnceinte-DelphineVigneau" in rows["createCase"]
    assert "RC-EDA-FuiteDeGaz-AliceGregoireNormand" in result.stdout
    # model 1.1 gives createCaseHealthUpdate no XML form, and error reports travel without header
    assert [cell.strip() for cell in rows["createCaseHealthUpdate"].split("│")[3:5]] == ["yes", "no"]
    assert [cell.strip() for cell in rows["error"].split("│")[3:5]] == ["no", "yes"]
    missing = runner.invoke(app, ["examples", "--models", "9.9", "--models-root", str(models_root())])
    assert missing.exit_code == 1 and "model bundle 9.9 not found" in missing.stderr
