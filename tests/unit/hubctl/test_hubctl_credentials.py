"""hubctl credentials: the client's bundle written as files (private ones 0600), a connection description that
``send --credentials`` reads back, runnable snippets, and clear refusals."""

from __future__ import annotations

import ast
import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import pkcs12
from tests.unit.hubctl.hubctl_support import (
    KEYSTORE_PASSWORD,
    SAMU_A,
    SAMU_B,
    SDIS,
    broker_secret,
    environment,
    run,
)

from hub_dispatcher.protocol import ProtocolProfile
from hub_operator import pki
from hub_operator.cli.broker import BrokerEndpoint, BrokerOverrides
from hub_operator.cli.credentials import collect, write
from hub_operator.cli.errors import HubctlError
from hub_operator.cli.inventory import Inventory
from hub_operator.cli.kube import StaticHub
from hub_operator.cli.session import session_from_cluster, session_from_folder


def bundle_of(client_id: str, hub: StaticHub | None = None, overrides: BrokerOverrides = BrokerOverrides()):  # noqa: ANN201
    hub = hub or environment()
    return collect(hub, Inventory.load(hub), client_id, overrides)


def test_the_folder_holds_the_bundle_with_private_files_closed(tmp_path: Path) -> None:
    folder = tmp_path / "samu"
    written = write(bundle_of(SAMU_A), folder)
    assert sorted(path.name for path in written) == sorted([
        "tls.crt", "tls.key", "ca.crt", "broker-ca.crt", "keystore.p12", "keystore.password", "connection.json",
        "connect_pika.py", "HubConnection.java"])
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in written}
    assert {name for name, mode in modes.items() if mode == 0o600} == {"tls.key", "keystore.p12", "keystore.password"}
    assert pki.common_name(pki.load_cert((folder / "tls.crt").read_bytes())) == SAMU_A
    key, certificate, _ = pkcs12.load_key_and_certificates((folder / "keystore.p12").read_bytes(), KEYSTORE_PASSWORD)
    assert key is not None and certificate is not None and pki.common_name(certificate) == SAMU_A


def test_connection_description_lists_every_vhost_with_its_routing_keys_and_queues(tmp_path: Path) -> None:
    write(bundle_of(SAMU_B), tmp_path)
    description = json.loads((tmp_path / "connection.json").read_text())
    vhosts = {entry["vhost"]: entry for entry in description["vhosts"]}
    assert set(vhosts) == {"15-15_v2.0", "15-nexsis_v1.8"}
    assert vhosts["15-nexsis_v1.8"]["profile"] == "legacy"
    assert vhosts["15-nexsis_v1.8"]["publish"] == {SAMU_B: f"{SAMU_B}.out.message"}
    assert vhosts["15-nexsis_v1.8"]["queues"][SAMU_B] == [f"{SAMU_B}.in.message", f"{SAMU_B}.in.ack", f"{SAMU_B}.in.info"]
    assert vhosts["15-15_v2.0"]["publish"] == {SAMU_B: SAMU_B}
    assert (vhosts["15-15_v2.0"]["host"], vhosts["15-15_v2.0"]["port"]) == ("rabbitmq.hub-sandbox.svc", 5671)
    assert vhosts["15-15_v2.0"]["models"] == {"version": "2.2"}
    # no keystore in that Secret: no keystore file, no Java snippet
    assert "keystore" not in description["files"] and not (tmp_path / "HubConnection.java").exists()


def test_the_folder_reads_back_as_the_same_session_as_the_cluster_gives(tmp_path: Path) -> None:
    hub = environment()
    overrides = BrokerOverrides(amqps_host="127.0.0.1", amqps_port=15671, tls_server_name="rabbitmq.hub-sandbox.svc")
    write(bundle_of(SAMU_B, hub, overrides), tmp_path)
    from_folder = session_from_folder(tmp_path, SAMU_B, "15-nexsis-v1.8", BrokerOverrides())
    from_cluster = session_from_cluster(hub, Inventory.load(hub), SAMU_B, "15-nexsis_v1.8", overrides)
    assert from_folder.access == from_cluster.access
    assert from_folder.access.profile is ProtocolProfile.LEGACY and from_folder.access.host == "127.0.0.1"
    assert (from_folder.identity.cert_pem, from_folder.identity.key_pem, from_folder.identity.broker_ca_pem) == (
        from_cluster.identity.cert_pem, from_cluster.identity.key_pem, from_cluster.identity.broker_ca_pem)


def test_snippets_are_filled_in_and_the_python_one_is_valid_python(tmp_path: Path) -> None:
    write(bundle_of(SAMU_A), tmp_path, snippet_vhost="15-15_v2.0")
    python = (tmp_path / "connect_pika.py").read_text()
    tree = ast.parse(python)
    constants = {target.id: node.value for node in tree.body if isinstance(node, ast.Assign)
                 for target in node.targets if isinstance(target, ast.Name)}
    assert ast.literal_eval(constants["QUEUES"]) == {"message": f"{SAMU_A}.message", "ack": f"{SAMU_A}.ack",
                                                     "info": f"{SAMU_A}.info"}
    assert "'15-15_v2.0'" in python and "ExternalCredentials()" in python
    java = (tmp_path / "HubConnection.java").read_text()
    assert 'static final String VHOST = "15-15_v2.0";' in java and "DefaultSaslConfig.EXTERNAL" in java
    assert java.count("{") == java.count("}")
    assert KEYSTORE_PASSWORD.decode() not in java  # read from the file, never inlined


def test_nothing_is_overwritten_without_force(tmp_path: Path) -> None:
    write(bundle_of(SAMU_A), tmp_path)
    (tmp_path / "tls.key").write_text("kept")
    with pytest.raises(HubctlError) as failure:
        write(bundle_of(SAMU_A), tmp_path)
    assert "already holds" in failure.value.message and "tls.key" in failure.value.message
    assert (tmp_path / "tls.key").read_text() == "kept"
    write(bundle_of(SAMU_A), tmp_path, force=True)
    assert (tmp_path / "tls.key").read_text() != "kept"


@pytest.mark.parametrize(("client_id", "secrets", "error"), [
    ("fr.health.samu014", None, "uses an external certificate (CN regulation.example.fr)"),
    (SDIS, None, f"the certificate of {SDIS} is not issued yet: Secret {SDIS}-tls does not exist"),
    ("fr.health.samu999", None, "no HubClient serves client id fr.health.samu999 in namespace hub-sandbox"),
    (SAMU_A, {"hub-broker": broker_secret(amqpsPort=b"amqps")}, "amqpsPort 'amqps' is not a port number"),
    (SAMU_A, {"hub-broker": {k: v for k, v in broker_secret().items() if k != "ca.crt"}}, "lacks ca.crt"),
    (SAMU_A, {"hub-broker": broker_secret(managementUrl=b"rabbitmq:15672")}, "is not an http(s) URL"),
    (SAMU_A, {"hub-broker": broker_secret(**{"ca.crt": b"not a pem"})}, "ca.crt is not a PEM certificate"),
    (SAMU_A, {}, "broker Secret hub-broker not found in namespace hub-sandbox"),
])
def test_refusals(client_id: str, secrets: dict | None, error: str) -> None:
    hub = environment()
    if secrets is not None:
        hub = StaticHub(hub.namespace, hub.objects, {**{k: v for k, v in hub.secrets.items() if k != "hub-broker"},
                                                     **secrets})
    with pytest.raises(HubctlError) as failure:
        bundle_of(client_id, hub)
    assert error in failure.value.message


def test_broker_overrides_replace_the_secret_addresses() -> None:
    endpoint = BrokerEndpoint.from_secret("hub-broker", broker_secret(), BrokerOverrides(
        management_url="http://127.0.0.1:15672", amqps_host="127.0.0.1", amqps_port=25671))
    assert (endpoint.management_url, endpoint.amqps_host, endpoint.amqps_port) == ("http://127.0.0.1:15672",
                                                                                   "127.0.0.1", 25671)
    assert endpoint.tls_server_name == "rabbitmq.hub-sandbox.svc"  # still the name the broker certificate carries


@pytest.mark.parametrize(("content", "vhost", "client_id", "error"), [
    (None, None, SAMU_B, "connection.json does not exist"),
    ("{", None, SAMU_B, "is not readable JSON"),
    ('{"format": 9}', None, SAMU_B, "is not a hubctl connection description (format 1)"),
    ("keep", None, SAMU_B, "describes several vhosts (15-15_v2.0, 15-nexsis_v1.8): choose one with --vhost"),
    ("keep", "15-smur_v1.4", SAMU_B, "has no access to 15-smur_v1.4"),
    ("keep", "15-15_v2.0", SAMU_A, f"{SAMU_A} is not one of the ids this certificate acts for ({SAMU_B})"),
])
def test_a_bad_credentials_folder_is_refused(tmp_path: Path, content: str | None, vhost: str | None,
                                             client_id: str, error: str) -> None:
    write(bundle_of(SAMU_B), tmp_path)
    if content is None:
        (tmp_path / "connection.json").unlink()
    elif content != "keep":
        (tmp_path / "connection.json").write_text(content)
    with pytest.raises(HubctlError) as failure:
        session_from_folder(tmp_path, client_id, vhost, BrokerOverrides())
    assert error in failure.value.message


def test_the_session_refuses_a_vhost_the_client_is_not_allowed_on() -> None:
    hub = environment()
    with pytest.raises(HubctlError) as failure:
        session_from_cluster(hub, Inventory.load(hub), SAMU_A, "15-nexsis_v1.8", BrokerOverrides())
    assert failure.value.message == f"HubClient {SAMU_A} is not allowed on 15-nexsis_v1.8"
    with pytest.raises(HubctlError, match="may use several vhosts"):
        session_from_cluster(hub, Inventory.load(hub), SAMU_A, None, BrokerOverrides())


def test_command_writes_the_folder_and_lists_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    result = run(environment(), "credentials", SAMU_A, "-o", str(tmp_path / "out"), monkeypatch=monkeypatch)
    assert result.exit_code == 0, result.output
    assert "keystore.p12" in result.stdout and "15-15_v2.0: amqps://rabbitmq.hub-sandbox.svc:5671" in result.stdout
    again = run(environment(), "credentials", SAMU_A, "-o", str(tmp_path / "out"), monkeypatch=monkeypatch)
    assert again.exit_code == 1 and "already holds" in again.stderr and "--force" in again.stderr
