"""``hubctl credentials``: a client's certificate bundle and connection details, written as files to hand over.

The folder holds the PEM certificate and key, the PKCS#12 keystore and its password (Java clients), the
broker's CA, ``connection.json`` (hosts, vhosts, profiles, queues: what ``hubctl send --credentials`` reads)
and two snippets.  Private files are written 0600 and nothing is overwritten without ``--force``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from hub_operator.api.resources import HubClient
from hub_operator.cli.broker import BrokerEndpoint, BrokerOverrides, load_broker
from hub_operator.cli.errors import HubctlError
from hub_operator.cli.inventory import Inventory
from hub_operator.cli.kube import HubReader
from hub_operator.cli.session import (
    BROKER_CA_FILE,
    CONNECTION_FILE,
    CONNECTION_FORMAT,
    ClientIdentity,
    VhostAccess,
    access_of,
    identity_of,
)
from hub_operator.cli.snippets import JAVA_FILE, PYTHON_FILE, java_snippet, python_snippet

FILES = {
    "cert": "tls.crt",
    "key": "tls.key",
    "issuerCa": "ca.crt",
    "brokerCa": BROKER_CA_FILE,
    "keystore": "keystore.p12",
    "keystorePassword": "keystore.password",
}
_PRIVATE = ("key", "keystore", "keystorePassword")


@dataclass(frozen=True)
class CredentialBundle:
    client: HubClient
    client_id: str
    identity: ClientIdentity
    accesses: list[VhostAccess]
    missing_vhosts: list[str]
    """Listed VHostVersions that do not exist (yet): not in the bundle."""


def collect(reader: HubReader, inventory: Inventory, client_id: str, overrides: BrokerOverrides) -> CredentialBundle:
    client = inventory.client_serving(client_id)
    accesses, missing = [], []
    brokers: dict[str, BrokerEndpoint] = {}
    for name in client.spec.vhost_versions:
        vhost_version = inventory.vhost_version(name)
        if vhost_version is None:
            missing.append(name)
            continue
        secret_name = vhost_version.spec.broker_secret_name
        if secret_name not in brokers:
            brokers[secret_name] = load_broker(reader, secret_name, overrides)
        accesses.append(access_of(vhost_version, brokers[secret_name]))
    if not accesses:
        raise HubctlError(f"none of the VHostVersions of {client.metadata.name} exists "
                          f"({', '.join(client.spec.vhost_versions)})")
    trust = {broker.ca_pem for broker in brokers.values()}
    if len(trust) > 1:
        # One trust file per folder keeps snippets simple; several brokers with several CAs: concatenate them.
        broker_ca = b"".join(sorted(trust))
    else:
        broker_ca = trust.pop()
    return CredentialBundle(client, client_id, identity_of(reader, client, broker_ca), accesses, missing)


def connection_description(bundle: CredentialBundle) -> dict[str, object]:
    identity, client = bundle.identity, bundle.client
    certificate = client.status.certificate if client.status else None
    return {
        "format": CONNECTION_FORMAT,
        "clientId": bundle.client_id,
        "clientIds": list(identity.client_ids),
        "username": identity.username,
        "hubClient": client.metadata.name,
        "certificate": {
            "notAfter": certificate.not_after.isoformat() if certificate and certificate.not_after else None,
            "serial": certificate.serial if certificate else None,
        },
        "files": present_files(identity),
        "vhosts": [access.to_json(identity.client_ids) for access in bundle.accesses],
    }


def present_files(identity: ClientIdentity) -> dict[str, str]:
    """Role -> file name of what this identity has (an issuer CA and a keystore are optional)."""
    return {role: name for role, name in FILES.items() if _content(identity, role)}


def _content(identity: ClientIdentity, role: str) -> bytes | None:
    return {
        "cert": identity.cert_pem,
        "key": identity.key_pem,
        "issuerCa": identity.issuer_ca_pem or None,
        "brokerCa": identity.broker_ca_pem,
        "keystore": identity.keystore_p12,
        "keystorePassword": identity.keystore_password,
    }[role]


def _snippet_access(bundle: CredentialBundle, vhost: str | None) -> VhostAccess:
    if vhost is None:
        return bundle.accesses[0]
    for access in bundle.accesses:
        if vhost in (access.vhost, access.vhost_version):
            return access
    raise HubctlError(f"--vhost {vhost}: {bundle.client.metadata.name} has no access to it "
                      f"(it has {', '.join(a.vhost for a in bundle.accesses)})")


def write(bundle: CredentialBundle, folder: Path, *, snippet_vhost: str | None = None, force: bool = False) -> list[Path]:
    """Writes the folder; returns the files written.  Refuses to overwrite unless ``force``."""
    access = _snippet_access(bundle, snippet_vhost)
    files = present_files(bundle.identity)
    contents: dict[str, tuple[bytes, bool]] = {
        name: (content, role in _PRIVATE) for role, name in files.items() if (content := _content(bundle.identity, role))
    }
    contents[CONNECTION_FILE] = (json.dumps(connection_description(bundle), indent=2).encode() + b"\n", False)
    contents[PYTHON_FILE] = (python_snippet(bundle.client_id, access, files).encode(), False)
    if {"keystore", "keystorePassword"} <= set(files):
        contents[JAVA_FILE] = (java_snippet(bundle.client_id, access, files).encode(), False)
    if folder.exists() and not folder.is_dir():
        raise HubctlError(f"{folder} exists and is not a folder")
    existing = sorted(name for name in contents if (folder / name).exists())
    if existing and not force:
        raise HubctlError(f"{folder} already holds {', '.join(existing)}", hint="choose another --output or pass --force")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (content, private) in contents.items():
        path = folder / name
        # Created with its final mode, so a private key is never readable by others, even for a moment.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(content)
        os.chmod(path, 0o600 if private else 0o644)
        written.append(path)
    return written
