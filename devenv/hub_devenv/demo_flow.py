"""The demo's messages: the 18→15 round trip and a message the hub refuses, hop by hop.

A fire brigade (``fr.fire.nexsis.sdis50``) sends a case (RC-EDA, ``createCase``) to SAMU 50 on the 15-NexSIS
vhost; the vhost's dispatcher validates and routes it; SAMU 50 receives it and answers with a functional ack
(RC-REF), which the dispatcher routes back to the brigade's ``.ack`` queue.  Then the brigade sends a message
claiming to come from SAMU 76: the dispatcher refuses it and the brigade receives the hub's RS-ERROR report on
its ``.info`` queue.

The clients are hubctl's (:mod:`hub_operator.cli`): the same session from the cluster (the certificate the
operator issued, the broker Secret, the VHostVersion's protocol profile), the same message builder, connection,
acknowledgement and display as ``hubctl send`` and ``hubctl listen --auto-ack``.  The dispatcher's hop is read
from the JSON log line it writes for every settled message.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from hub_dispatcher import edxl
from hub_dispatcher.bundle import ModelBundle
from hub_dispatcher.protocol import QueueKind
from hub_operator.cli import messaging
from hub_operator.cli.amqp import ClientConnection, Delivery
from hub_operator.cli.broker import BrokerOverrides
from hub_operator.cli.errors import EXIT_REJECTED
from hub_operator.cli.inventory import Inventory
from hub_operator.cli.kube import KubernetesHub, KubeTarget
from hub_operator.cli.session import models_directory, session_from_cluster
from rich.console import Console
from rich.text import Text

BRIGADE = "fr.fire.nexsis.sdis50"
SAMU = "fr.health.samu050"
IMPERSONATED = "fr.health.samu076"
VHOST = "15-nexsis_v1.8"
USE_CASE = "createCase"
#: The bundle offers two RC-EDA examples; the gas leak reads well in a demo.
EXAMPLE = "FuiteDeGaz"


class FlowFailed(RuntimeError):
    """A hop did not happen in time; the message names the hop."""


@dataclass(frozen=True)
class DispatcherHop:
    """What a dispatcher logged about one message: ``routed`` or ``reported``."""

    pod: str
    event: str
    fields: dict[str, Any]

    def describe(self, published_as: str) -> str:
        fields = self.fields
        took = f"{fields.get('duration_ms', 0):.1f} ms"
        if self.event == "routed":
            delivered = str(fields.get("content_type", "")).rpartition("/")[2].upper()
            conversion = f" (converted from {published_as})" if fields.get("converted") else ""
            return (f"validated {fields.get('use_case')} and routed it to {fields.get('queue')} as "
                    f"{delivered}{conversion} in {took}")
        return (f"refused it at stage {fields.get('stage')}: {fields.get('code')} {fields.get('reason')}, "
                f"report sent to {fields.get('queue')} in {took}")


@dataclass
class FlowContext:
    """Where the clients and dispatchers of the demo environment are."""

    kubeconfig: Path
    namespace: str
    models_root: Path
    dispatcher_logs: Callable[[str], dict[str, Path]]
    """Vhost -> the log file of each of its dispatcher pods, by pod name."""
    console: Console
    hop_timeout: float = 45.0


class DemoFlow:
    def __init__(self, context: FlowContext) -> None:
        self.context = context
        self.console = context.console
        hub = KubernetesHub.connect(KubeTarget(context.kubeconfig, None, context.namespace))
        inventory = Inventory.load(hub)
        self.brigade = session_from_cluster(hub, inventory, BRIGADE, VHOST, BrokerOverrides())
        self.samu = session_from_cluster(hub, inventory, SAMU, VHOST, BrokerOverrides())
        access = self.brigade.access
        self.bundle = ModelBundle.load(models_directory(access.models_version, access.models_path, explicit=None,
                                                        models_root=context.models_root))

    # -- the round trip ---------------------------------------------------------------------------------------
    def round_trip(self) -> None:
        access = self.brigade.access
        self._say(f"On vhost {access.vhost} (models {self.bundle.version}, {access.profile.value} protocol profile); "
                  f"each client connects with the certificate the operator issued for it (mTLS, username = CN).")
        request = messaging.SendRequest(recipient=SAMU, use_case=USE_CASE, example=EXAMPLE,
                                        message_format=messaging.WireFormat.XML)
        outgoing = messaging.build_outgoing(self.bundle, self.brigade, request)
        with ClientConnection(self.brigade) as brigade:
            brigade.publish(outgoing.routing_key, outgoing.body, outgoing.content_type, outgoing.distribution_id)
            self._hop(1, f"{BRIGADE} published {outgoing.use_case} (RC-EDA, {outgoing.source}) to {SAMU} as XML, "
                         f"routing key {outgoing.routing_key}",
                      f"distributionID {outgoing.distribution_id}")
            self._dispatcher_hop(2, outgoing.distribution_id, "routed", published_as="XML")

            ack_id = self._receive_and_acknowledge(outgoing.distribution_id)
            self._dispatcher_hop(5, ack_id, "routed", published_as="JSON")

            self._hop(6, f"{BRIGADE} reads its queues {', '.join(messaging.answer_queues(self.brigade))}")
            answer = messaging.wait_for_answer(brigade, outgoing, self.context.hop_timeout, self.console,
                                               show_body=False)
        if answer.exit_code != 0:
            raise FlowFailed(f"hop 6: no acknowledgement of {outgoing.distribution_id} reached "
                             f"{self.brigade.access.protocol.client_queue(BRIGADE, QueueKind.ACK)} within "
                             f"{self.context.hop_timeout:.0f}s")
        self.console.print(Text("  ✓ the acknowledgement of the case is back on the brigade's ack queue",
                                style="bold green"))

    def _receive_and_acknowledge(self, distribution_id: str) -> str:
        """SAMU 50 reads its message queue until the case arrives, then answers with RC-REF (``listen --auto-ack``)."""
        protocol = self.samu.access.protocol
        message_queue = protocol.client_queue(SAMU, QueueKind.MESSAGE)
        ack_routing_key = protocol.publish_routing_key(SAMU, QueueKind.ACK)
        acknowledgement: dict[str, Any] = {}

        def handle(delivery: Delivery) -> bool:
            received, problem = messaging.read(delivery)
            if received is None or received.distribution_id != distribution_id:
                self.console.print(messaging.describe_delivery(delivery, received, problem,
                                                               note="(not the demo's message)"))
                return True
            ack = edxl.functional_ack(received, acknowledged_by=SAMU)
            amqp.publish(ack_routing_key, orjson.dumps(ack), messaging.WireFormat.JSON.content_type,
                         str(ack["distributionID"]))
            acknowledgement.update(ack)
            note = f"→ acknowledged to {received.sender_id} (RC-REF {ack['distributionID']})"
            self._hop(3, f"{SAMU} received the case on {delivery.queue}")
            self.console.print(messaging.describe_delivery(delivery, received, problem, note=note))
            return False

        with ClientConnection(self.samu) as amqp:
            amqp.consume([message_queue], handle, timeout=self.context.hop_timeout)
        if not acknowledgement:
            raise FlowFailed(f"hop 3: the case {distribution_id} did not reach {message_queue} within "
                             f"{self.context.hop_timeout:.0f}s")
        ack_id = str(acknowledgement["distributionID"])
        self._hop(4, f"{SAMU} published the functional ack (RC-REF, distributionKind Ack) as JSON, routing key "
                     f"{ack_routing_key}", f"distributionID {ack_id}")
        return ack_id

    # -- a message the hub refuses ----------------------------------------------------------------------------
    def refused_message(self) -> None:
        """The brigade publishes (with its own routing key, as its permissions require) a message whose
        senderID says SAMU 76: the dispatcher's sender-consistency check answers 200 SENDER_INCONSISTENCY."""
        use_case = edxl.find_example(self.bundle.directory, USE_CASE, EXAMPLE).use_case()
        addressing = edxl.Addressing.create(IMPERSONATED, SAMU)
        document = edxl.json_message(use_case, addressing)
        protocol = self.brigade.access.protocol
        routing_key = protocol.publish_routing_key(BRIGADE, QueueKind.MESSAGE)
        spoofed = messaging.Outgoing(
            body=orjson.dumps(document), content_type=messaging.WireFormat.JSON.content_type,
            distribution_id=addressing.distribution_id, use_case=USE_CASE, source="spoofed senderID",
            recipient=SAMU, routing_key=routing_key, document=document,
        )
        with ClientConnection(self.brigade) as brigade:
            brigade.publish(spoofed.routing_key, spoofed.body, spoofed.content_type, spoofed.distribution_id)
            self._hop(1, f"{BRIGADE} publishes a case whose senderID claims {IMPERSONATED}, with its own routing key "
                         f"{routing_key} (the broker only lets it publish as itself)",
                      f"distributionID {spoofed.distribution_id}")
            self._dispatcher_hop(2, spoofed.distribution_id, "reported", published_as="JSON")
            self._hop(3, f"{BRIGADE} reads its queues {', '.join(messaging.answer_queues(self.brigade))}")
            answer = messaging.wait_for_answer(brigade, spoofed, self.context.hop_timeout, self.console,
                                               show_body=False)
        report = next((r for r in answer.received if r.refers_to(spoofed.distribution_id)), None)
        if answer.exit_code != EXIT_REJECTED or report is None:
            raise FlowFailed(f"hop 3: no error report about {spoofed.distribution_id} reached "
                             f"{protocol.client_queue(BRIGADE, QueueKind.INFO)} within {self.context.hop_timeout:.0f}s")
        samu_queue = self.samu.access.protocol.client_queue(SAMU, QueueKind.MESSAGE)
        with ClientConnection(self.samu) as samu:
            waiting = samu.depth(samu_queue)
        if waiting:
            raise FlowFailed(f"the refused message reached {samu_queue} ({waiting} message(s) waiting)")
        self.console.print(Text(f"  ✓ the brigade got the hub's error report {report.error_code} {report.error_status}; "
                                f"{samu_queue} is empty: nothing was delivered", style="bold green"))

    # -- output -----------------------------------------------------------------------------------------------
    def _say(self, text: str) -> None:
        self.console.print(Text(f"  {text}", style="dim"))

    def _hop(self, number: int, text: str, detail: str = "") -> None:
        self.console.print(Text.assemble(("  " + _circled(number) + " ", "bold cyan"), text))
        if detail:
            self.console.print(Text(f"      {detail}", style="dim"))

    def _dispatcher_hop(self, number: int, distribution_id: str, expected: str, *, published_as: str) -> None:
        hop = self._wait_dispatcher_log(distribution_id)
        if hop.event != expected:
            raise FlowFailed(f"hop {number}: the dispatcher {hop.event} {distribution_id} "
                             f"({hop.fields.get('code', '')} {hop.fields.get('reason', '')}), expected {expected}")
        self._hop(number, f"dispatcher (pod {hop.pod}) {hop.describe(published_as)}")

    def _wait_dispatcher_log(self, distribution_id: str) -> DispatcherHop:
        deadline = time.monotonic() + self.context.hop_timeout
        while time.monotonic() < deadline:
            for pod, path in self.context.dispatcher_logs(VHOST).items():
                for fields in _json_lines(path):
                    if fields.get("distribution_id") == distribution_id and fields.get("event") in ("routed", "reported"):
                        return DispatcherHop(pod, str(fields["event"]), fields)
            time.sleep(0.2)
        raise FlowFailed(f"no dispatcher of {VHOST} settled {distribution_id} within {self.context.hop_timeout:.0f}s "
                         "(is one running and consuming? see its log)")


def _json_lines(path: Path) -> Iterator[dict[str, Any]]:
    with contextlib.suppress(FileNotFoundError):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    yield json.loads(line)


def _circled(number: int) -> str:
    return chr(0x2460 + number - 1) if 1 <= number <= 20 else f"({number})"

