"""Everything needed to act as a hub client on one vhost: the client's certificate, the broker's address and
trust anchor, the vhost's protocol profile and model bundle.

It comes either from the cluster (the HubClient's certificate Secret, its VHostVersion and the broker Secret)
or from a credentials folder written by ``hubctl credentials`` (what a client's own software would use).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub_dispatcher.protocol import ProtocolProfile, VHostProtocol, for_profile
from hub_operator.api.hubclient import CertificateMode
from hub_operator.api.modelbundle import DEFAULT_MODELS_ROOT
from hub_operator.api.resources import HubClient, VHostVersion
from hub_operator.certificates import CA_KEY, KEYSTORE_KEY, KEYSTORE_PASSWORD_KEY, TLS_CERT_KEY, TLS_KEY_KEY
from hub_operator.cli.broker import BrokerEndpoint, BrokerOverrides, load_broker
from hub_operator.cli.errors import HubctlError
from hub_operator.cli.inventory import Inventory
from hub_operator.cli.kube import HubReader

CONNECTION_FILE = "connection.json"
BROKER_CA_FILE = "broker-ca.crt"
CONNECTION_FORMAT = 1
#: Environment variable naming the folder holding bundles by version (as in the dispatcher image).
MODELS_ROOT_ENV = "HUBSANTE_MODELS_DIR"


@dataclass(frozen=True)
class VhostAccess:
    """How to reach one vhost as a client."""

    vhost: str
    vhost_version: str
    profile: ProtocolProfile
    models_version: str
    models_path: str | None
    host: str
    port: int
    tls_server_name: str

    @property
    def protocol(self) -> VHostProtocol:
        return for_profile(self.profile)

    def to_json(self, client_ids: Sequence[str]) -> dict[str, Any]:
        protocol = self.protocol
        return {
            "vhost": self.vhost,
            "vhostVersion": self.vhost_version,
            "host": self.host,
            "port": self.port,
            "tlsServerName": self.tls_server_name,
            "profile": self.profile.value,
            "models": {"version": self.models_version, **({"path": self.models_path} if self.models_path else {})},
            # Informative: what the client's software uses (hubctl itself derives them from the profile).
            "publish": {client_id: protocol.publish_routing_key(client_id) for client_id in client_ids},
            "queues": {client_id: protocol.client_queues(client_id) for client_id in client_ids},
        }

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> VhostAccess:
        models = entry.get("models") or {}
        return cls(
            vhost=str(entry["vhost"]),
            vhost_version=str(entry.get("vhostVersion", "")),
            profile=ProtocolProfile(entry.get("profile", ProtocolProfile.CURRENT.value)),
            models_version=str(models["version"]),
            models_path=models.get("path"),
            host=str(entry["host"]),
            port=int(entry["port"]),
            tls_server_name=str(entry.get("tlsServerName") or entry["host"]),
        )


@dataclass(frozen=True)
class ClientIdentity:
    """The client's TLS material (PEM) and the broker's trust anchor."""

    username: str
    client_ids: tuple[str, ...]
    cert_pem: bytes
    key_pem: bytes
    issuer_ca_pem: bytes
    broker_ca_pem: bytes
    keystore_p12: bytes | None = None
    keystore_password: bytes | None = None


@dataclass(frozen=True)
class ClientSession:
    identity: ClientIdentity
    access: VhostAccess
    client_id: str

    def require_id(self, client_id: str) -> None:
        if client_id not in self.identity.client_ids:
            raise HubctlError(f"{client_id} is not one of the ids this certificate acts for "
                              f"({', '.join(self.identity.client_ids)})")


# -- from the cluster -----------------------------------------------------------------------------------------
def access_of(vhost_version: VHostVersion, broker: BrokerEndpoint) -> VhostAccess:
    models = vhost_version.spec.models
    return VhostAccess(
        vhost=vhost_version.spec.vhost_name,
        vhost_version=vhost_version.metadata.name,
        profile=vhost_version.spec.profile,
        models_version=models.version,
        models_path=models.path,
        host=broker.amqps_host,
        port=broker.amqps_port,
        tls_server_name=broker.tls_server_name,
    )


def identity_of(reader: HubReader, client: HubClient, broker_ca_pem: bytes) -> ClientIdentity:
    spec = client.spec
    secret_name = spec.certificate_secret_name(client.metadata.name)
    if client.status and client.status.certificate and client.status.certificate.secret_name:
        secret_name = client.status.certificate.secret_name
    if spec.certificate.mode is CertificateMode.EXTERNAL or secret_name is None:
        raise HubctlError(
            f"HubClient {client.metadata.name} uses an external certificate (CN {spec.username}): "
            "the hub never holds its private key",
            hint=f"the client uses its own certificate; write a credentials folder by hand ({CONNECTION_FILE}, "
                 "tls.crt, tls.key, broker-ca.crt) and pass --credentials")
    data = reader.secret(secret_name)
    if data is None or not data.get(TLS_CERT_KEY) or not data.get(TLS_KEY_KEY):
        readiness = _condition_summary(client, "CertificateReady")
        raise HubctlError(f"the certificate of {client.metadata.name} is not issued yet: Secret {secret_name} "
                          f"{'does not exist' if data is None else 'has no tls.crt/tls.key'}"
                          + (f" ({readiness})" if readiness else ""))
    return ClientIdentity(
        username=spec.username,
        client_ids=spec.all_client_ids,
        cert_pem=data[TLS_CERT_KEY],
        key_pem=data[TLS_KEY_KEY],
        issuer_ca_pem=data.get(CA_KEY, b""),
        broker_ca_pem=broker_ca_pem,
        keystore_p12=data.get(KEYSTORE_KEY),
        keystore_password=data.get(KEYSTORE_PASSWORD_KEY),
    )


def _condition_summary(client: HubClient, condition_type: str) -> str:
    for condition in client.status.conditions if client.status else []:
        if condition.type == condition_type:
            return f"{condition_type}={condition.status.value} {condition.reason}: {condition.message}".strip(": ")
    return ""


def session_from_cluster(reader: HubReader, inventory: Inventory, client_id: str, vhost: str | None,
                         overrides: BrokerOverrides) -> ClientSession:
    client = inventory.client_serving(client_id)
    vhost_version = _chosen_vhost_version(inventory, client, vhost)
    broker = load_broker(reader, vhost_version.spec.broker_secret_name, overrides)
    return ClientSession(identity_of(reader, client, broker.ca_pem), access_of(vhost_version, broker), client_id)


def _chosen_vhost_version(inventory: Inventory, client: HubClient, vhost: str | None) -> VHostVersion:
    allowed = client.spec.vhost_versions
    if vhost is None:
        if len(allowed) != 1:
            raise HubctlError(f"{client.spec.client_id} may use several vhosts ({', '.join(allowed)}): choose one with --vhost")
        vhost = allowed[0]
    vhost_version = inventory.vhost_version_for(vhost)
    if vhost_version.metadata.name not in allowed:
        raise HubctlError(f"HubClient {client.metadata.name} is not allowed on {vhost_version.spec.vhost_name}",
                          hint=f"its vhostVersions: {', '.join(allowed)}")
    return vhost_version


# -- from a credentials folder ----------------------------------------------------------------------------------
def session_from_folder(folder: Path, client_id: str, vhost: str | None, overrides: BrokerOverrides) -> ClientSession:
    description = _read_connection(folder)
    try:
        entries = [VhostAccess.from_json(entry) for entry in description.get("vhosts", [])]
        identity = ClientIdentity(
            username=str(description["username"]),
            client_ids=tuple(description["clientIds"]),
            cert_pem=_read(folder, description["files"]["cert"]),
            key_pem=_read(folder, description["files"]["key"]),
            issuer_ca_pem=b"",
            broker_ca_pem=_read(folder, description["files"]["brokerCa"]),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise HubctlError(f"{folder / CONNECTION_FILE} is not a hubctl connection description: {error!r}") from None
    if vhost is None and len(entries) != 1:
        raise HubctlError(f"{folder} describes several vhosts ({', '.join(e.vhost for e in entries)}): "
                          "choose one with --vhost")
    matching = [e for e in entries if vhost is None or vhost in (e.vhost, e.vhost_version)]
    if not matching:
        raise HubctlError(f"{folder} has no access to {vhost}; it describes "
                          f"{', '.join(e.vhost for e in entries) or 'no vhost'}")
    chosen = dataclasses.replace(
        matching[0],
        host=overrides.amqps_host or matching[0].host,
        port=overrides.amqps_port or matching[0].port,
        tls_server_name=overrides.tls_server_name or matching[0].tls_server_name,
    )
    session = ClientSession(identity, chosen, client_id)
    session.require_id(client_id)
    return session


def _read_connection(folder: Path) -> dict[str, Any]:
    path = folder / CONNECTION_FILE
    try:
        description = json.loads(path.read_text())
    except FileNotFoundError:
        raise HubctlError(f"{path} does not exist", hint="write the folder with `hubctl credentials CLIENT_ID`") from None
    except (OSError, json.JSONDecodeError) as error:
        raise HubctlError(f"{path} is not readable JSON: {error}") from None
    if not isinstance(description, dict) or description.get("format") != CONNECTION_FORMAT:
        raise HubctlError(f"{path} is not a hubctl connection description (format {CONNECTION_FORMAT})")
    return description


def _read(folder: Path, name: str) -> bytes:
    path = folder / name
    try:
        return path.read_bytes()
    except OSError as error:
        raise HubctlError(f"cannot read {path}: {error.strerror}") from None


# -- model bundles ----------------------------------------------------------------------------------------------
def models_directory(version: str, path: str | None, *, explicit: Path | None, models_root: Path | None) -> Path:
    """The bundle to build messages from: ``--models``, else the vhost's models.path when it exists here, else
    ``<models root>/<version>`` (root: ``--models-root``, ``$HUBSANTE_MODELS_DIR``, /opt/hubsante-models)."""
    if explicit is not None:
        candidates = [explicit]
    else:
        root = models_root or Path(os.environ.get(MODELS_ROOT_ENV) or DEFAULT_MODELS_ROOT)
        candidates = [Path(path)] if path else []
        candidates.append(root / version)
    for candidate in candidates:
        if (candidate / "json-schema").is_dir():
            return candidate
    raise HubctlError(f"model bundle {version} not found (looked in "
                      f"{', '.join(str(c) for c in candidates)})",
                      hint=f"pass --models-root (or set {MODELS_ROOT_ENV}) to the folder holding <version>/json-schema")
