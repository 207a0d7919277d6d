"""Fixtures of the dispatcher's integration tests: a vhost provisioned through the operator's builders (one
definition of the topology), certificates for its clients and its dispatcher, and real dispatcher processes.

The cast (client ids):

* ``SENDER`` (fr.health.samu050) publishes JSON; ``JSON_RECIPIENT`` (samu076) receives JSON;
  ``XML_RECIPIENT`` (samu069) prefers XML (preferences file); ``FIRE_SENDER`` (fr.fire.nexsis.sdis50) and
  ``FIRE_RECIPIENT`` (sdis76) speak XML by default;
* ``TWIN_A``/``TWIN_B`` (samu051/samu052) share one certificate CN (one platform acting for two ids);
* ``EXPIRY_RECIPIENT`` (samu077) never consumes (its messages expire); ``UNPROVISIONED`` (samu099) has no
  queue at all (NO_ROUTE).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hub_devenv.rabbitmq import ClientCredentials, LocalBroker
from tests.helpers.dispatcher_process import DispatcherProcess
from tests.helpers.hubsante_models import bundle_dir
from tests.helpers.topology import ProvisionedVHost, deprovision_vhost, provision_vhost_blocking
from tests.integration.dispatcher.hubclient import HubTestClient

SENDER = "fr.health.samu050"
JSON_RECIPIENT = "fr.health.samu076"
XML_RECIPIENT = "fr.health.samu069"
FIRE_SENDER = "fr.fire.nexsis.sdis50"
FIRE_RECIPIENT = "fr.fire.nexsis.sdis76"
TWIN_A, TWIN_B = "fr.health.samu051", "fr.health.samu052"
EXPIRY_RECIPIENT = "fr.health.samu077"
UNPROVISIONED = "fr.health.samu099"
SENDER_EDITOR = "acme-lrm"

#: Certificate CN (suffix added per hub) -> the client ids it acts for.
CAST: dict[str, tuple[str, ...]] = {
    "samu050": (SENDER,),
    "samu076": (JSON_RECIPIENT,),
    "samu069": (XML_RECIPIENT,),
    "sdis50": (FIRE_SENDER,),
    "sdis76": (FIRE_RECIPIENT,),
    "twins": (TWIN_A, TWIN_B),
    "samu077": (EXPIRY_RECIPIENT,),
}


@dataclass
class Hub:
    """One provisioned vhost of the test broker, its certificates, and the dispatchers started on it."""

    broker: LocalBroker
    provisioned: ProvisionedVHost
    version: str
    workdir: Path
    dispatcher_credentials: ClientCredentials
    credentials_by_client: dict[str, ClientCredentials]
    preferences_file: Path
    dispatchers: list[DispatcherProcess] = field(default_factory=list)
    clients: list[HubTestClient] = field(default_factory=list)

    @property
    def vhost(self) -> str:
        return self.provisioned.vhost

    @property
    def bundle_dir(self) -> Path:
        return bundle_dir(self.version)

    def queue(self, client_id: str, kind: str = "message") -> str:
        from hub_dispatcher.protocol import QueueKind

        return self.provisioned.protocol.client_queue(client_id, QueueKind(kind))

    def client(self, client_id: str) -> HubTestClient:
        """A connection as the certificate acting for ``client_id`` (closed with the hub)."""
        client = HubTestClient(self.broker, self.credentials_by_client[client_id], self.vhost)
        self.clients.append(client)
        return client

    def dispatcher(self, name: str = "dispatcher", *, start: bool = True,
                   credentials: ClientCredentials | None = None, **settings: str) -> DispatcherProcess:
        process = DispatcherProcess(
            self.broker, self.vhost, self.bundle_dir, credentials or self.dispatcher_credentials, self.workdir,
            settings={"preferences_file": str(self.preferences_file), "preferences_reload_seconds": "0.5",
                      **settings},
            name=f"{name}-{len(self.dispatchers)}",
        )
        self.dispatchers.append(process)
        return process.start() if start else process

    def close(self) -> None:
        for client in self.clients:
            client.close()
        for process in self.dispatchers:
            if process.alive:
                process.stop(grace=10)


def make_hub(broker: LocalBroker, version: str, workdir: Path) -> Hub:
    unique = os.urandom(3).hex()
    cn_of = {short: f"{short}.t{unique}" for short in CAST}
    provisioned = provision_vhost_blocking(
        broker, f"dispatch-{unique}_v{version}",
        clients=[(cn_of[short], ids) for short, ids in CAST.items()],
        dispatcher_cn=f"dispatcher.t{unique}",
    )
    credentials = {short: broker.mint_client_cert(cn) for short, cn in cn_of.items()}
    preferences = workdir / "preferences.json"
    preferences.write_text(json.dumps({"clients": {
        XML_RECIPIENT: {"format": "xml"},
        SENDER: {"editor": SENDER_EDITOR},
    }}))
    return Hub(
        broker=broker,
        provisioned=provisioned,
        version=version,
        workdir=workdir,
        dispatcher_credentials=broker.mint_client_cert(provisioned.dispatcher_cn),
        credentials_by_client={client_id: credentials[short] for short, ids in CAST.items() for client_id in ids},
        preferences_file=preferences,
    )


HubFactory = Callable[[str], Hub]


@pytest.fixture(scope="module")
def hub_factory(broker: LocalBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubFactory]:
    """``hub_factory("3.4.1")``: a fresh vhost; torn down (dispatchers stopped, vhost and users deleted) after
    the module."""
    hubs: list[Hub] = []

    def make(version: str) -> Hub:
        hub = make_hub(broker, version, tmp_path_factory.mktemp(f"hub-{version}"))
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        hub.close()
        asyncio.run(deprovision_vhost(broker, hub.provisioned))
