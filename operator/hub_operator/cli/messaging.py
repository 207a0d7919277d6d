"""``hubctl send`` / ``hubctl listen``: a minimal test client, like the national test LRM.

``send`` builds a valid EDXL-DE message of a use case from the vhost's model bundle (one of its
``sample/examples``, or a use case of your own), publishes it as the client, and waits for what references it:
the recipient's acknowledgement (RC-REF, on ``.ack``) or the hub's error report (RS-ERROR, on ``.info``).
``listen`` shows what arrives in a client's queues and, with ``--auto-ack``, acknowledges every message.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from hub_dispatcher import edxl
from hub_dispatcher.bundle import ModelBundle
from hub_dispatcher.protocol import QueueKind
from hub_dispatcher.xmlcodec import ConversionError, to_bytes
from hub_operator.cli.amqp import ClientConnection, Delivery
from hub_operator.cli.errors import EXIT_NO_ANSWER, EXIT_REJECTED, HubctlError
from hub_operator.cli.session import ClientSession


class WireFormat(str, enum.Enum):
    JSON = "json"
    XML = "xml"

    @property
    def content_type(self) -> str:
        return f"application/{self.value}"


class SendKind(str, enum.Enum):
    """What a client sends of its own accord (acks come from ``listen --auto-ack``, errors from the hub)."""

    REPORT = "Report"
    UPDATE = "Update"
    CANCEL = "Cancel"


@dataclass(frozen=True)
class Outgoing:
    body: bytes
    content_type: str
    distribution_id: str
    use_case: str
    source: str
    """Where the use case comes from: the example's name or the file given."""
    recipient: str
    routing_key: str
    document: dict[str, object]


@dataclass(frozen=True)
class SendRequest:
    recipient: str
    use_case: str | None = None
    example: str | None = None
    use_case_file: Path | None = None
    message_format: WireFormat = WireFormat.JSON
    kind: SendKind = SendKind.REPORT
    status: edxl.DistributionStatus = edxl.DistributionStatus.ACTUAL
    lifetime: dt.timedelta = edxl.DEFAULT_LIFETIME
    validate: bool = True


def _use_case_source(bundle: ModelBundle, request: SendRequest) -> edxl.UseCaseExample:
    if request.use_case_file is not None:
        if request.example is not None:
            raise HubctlError("--example and --use-case-file exclude each other")
        if not request.use_case_file.is_file():
            raise HubctlError(f"--use-case-file {request.use_case_file} does not exist")
        source = edxl.UseCaseExample(request.use_case_file)
        if request.use_case is not None and edxl.use_case_key(request.use_case) != source.key:
            raise HubctlError(f"{request.use_case_file} holds {source.key}, not {request.use_case}")
        return source
    if request.use_case is None:
        raise HubctlError("choose a use case: --use-case createCase (or RC-EDA...), or --use-case-file FILE",
                          hint="`hubctl examples --models VERSION` lists what the bundle offers")
    return edxl.find_example(bundle.directory, request.use_case, request.example)


def build_outgoing(bundle: ModelBundle, session: ClientSession, request: SendRequest,
                   now: dt.datetime | None = None) -> Outgoing:
    """The message, wrapped and (unless told otherwise) valid against the vhost's bundle."""
    try:
        source = _use_case_source(bundle, request)
        use_case = source.use_case()
        key = next(iter(use_case))
        defined = bundle.use_cases.get(key)
        if defined is None:
            raise HubctlError(f"model {bundle.version} of {session.access.vhost} has no use case {key}",
                              hint=f"it defines: {', '.join(sorted(bundle.use_cases))}")
        kind = edxl.DistributionKind(request.kind.value)
        addressing = edxl.Addressing.create(session.client_id, request.recipient, kind=kind, status=request.status,
                                            sent_at=now, lifetime=request.lifetime)
    except edxl.EdxlError as error:
        raise HubctlError(str(error)) from None
    document = edxl.json_message(use_case, addressing, with_header=defined.has_header)
    if request.message_format is WireFormat.JSON:
        if request.validate and not bundle.is_valid_json(document):
            raise HubctlError(f"the {key} message is not valid against model {bundle.version}: "
                              + "; ".join(bundle.json_problems(document)),
                              hint="fix the use case, or pass --no-validate to send it anyway (the hub will report it)")
        body = orjson.dumps(document)
    else:
        if defined.xml_variant is None:
            raise HubctlError(f"model {bundle.version} gives {key} no XML form: send it as JSON")
        try:
            root = bundle.codec.json_to_xml(document)
        except ConversionError as error:
            raise HubctlError(f"the {key} message cannot be written as XML: {error}") from None
        if request.validate:
            validation = bundle.validate_xml(root)
            if not validation.valid:
                raise HubctlError(f"the {key} message is not valid XML for model {bundle.version}: "
                                  + "; ".join(validation.problems),
                                  hint="pass --no-validate to send it anyway")
        body = to_bytes(root)
    queue_kind = QueueKind.ACK if kind is edxl.DistributionKind.ACK else QueueKind.MESSAGE
    return Outgoing(
        body=body,
        content_type=request.message_format.content_type,
        distribution_id=addressing.distribution_id,
        use_case=key,
        source=source.name,
        recipient=request.recipient,
        routing_key=session.access.protocol.publish_routing_key(session.client_id, queue_kind),
        document=document,
    )


# -- showing what arrives -----------------------------------------------------------------------------------------
def describe_delivery(delivery: Delivery, received: edxl.ReceivedMessage | None, problem: str = "",
                      *, show_body: bool = False, note: str = "") -> Panel:
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="dim")
    facts.add_column()
    if received is None:
        facts.add_row("unreadable", Text(problem, style="red"))
        style, title = "red", "unreadable message"
    else:
        facts.add_row("distributionID", received.distribution_id or "-")
        facts.add_row("from → to", f"{received.sender_id or '?'} → {received.recipient_id or '?'}")
        facts.add_row("kind / use case", f"{received.distribution_kind or '?'} / {received.use_case or '?'}"
                      f" ({received.format.value})")
        if received.referenced_distribution_id:
            facts.add_row("refers to", received.referenced_distribution_id)
        if received.is_error:
            facts.add_row("error", Text(f"{received.error_code} {received.error_status}", style="bold red"))
            facts.add_row("cause", received.error_cause)
        style = "red" if received.is_error else "green" if received.is_ack else "cyan"
        title = "error report" if received.is_error else "acknowledgement" if received.is_ack else "message"
    parts: list[RenderableType] = [facts]
    if note:
        parts.append(Text(note, style="dim"))
    if show_body:
        parts.append(body_view(delivery.body, delivery.content_type))
    redelivered = " (redelivered)" if delivery.redelivered else ""
    return Panel(Group(*parts), title=f"← {title} on {delivery.queue}{redelivered}", title_align="left",
                 border_style=style, expand=False)


def body_view(body: bytes, content_type: str | None) -> Syntax | Text:
    """A message body, pretty-printed and highlighted."""
    try:
        if (content_type or "").startswith("application/xml") or body.lstrip()[:1] == b"<":
            return Syntax(body.decode("utf-8", errors="replace"), "xml", word_wrap=True)
        return Syntax(orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2).decode(), "json", word_wrap=True)
    except orjson.JSONDecodeError:
        return Text(body[:4000].decode("utf-8", errors="replace"))


def read(delivery: Delivery) -> tuple[edxl.ReceivedMessage | None, str]:
    try:
        return edxl.read_received(delivery.body, delivery.content_type), ""
    except edxl.EdxlError as error:
        return None, str(error)


# -- send ---------------------------------------------------------------------------------------------------------
@dataclass
class Answer:
    """What ``send --wait`` saw."""

    exit_code: int = EXIT_NO_ANSWER
    received: list[edxl.ReceivedMessage] = field(default_factory=list)


def answer_queues(session: ClientSession) -> list[str]:
    """Where answers to the client's messages land: acks, error reports, and replies."""
    protocol = session.access.protocol
    return [protocol.client_queue(session.client_id, kind) for kind in (QueueKind.ACK, QueueKind.INFO, QueueKind.MESSAGE)]


def wait_for_answer(amqp: ClientConnection, outgoing: Outgoing, timeout: float, console: Console,
                    *, show_body: bool) -> Answer:
    answer = Answer()

    def handle(delivery: Delivery) -> bool:
        received, problem = read(delivery)
        related = received is not None and received.refers_to(outgoing.distribution_id)
        note = "" if related else "(not about the message just sent)"
        console.print(describe_delivery(delivery, received, problem, show_body=show_body, note=note))
        if received is not None:
            answer.received.append(received)
        if related and received is not None:
            answer.exit_code = EXIT_REJECTED if received.is_error else 0
            return False
        return True

    amqp.consume(answer_queues(amqp.session), handle, timeout=timeout)
    return answer


# -- listen -------------------------------------------------------------------------------------------------------
@dataclass
class ListenResult:
    messages: int = 0
    acknowledged: list[str] = field(default_factory=list)
    """distributionIDs answered with an RC-REF."""


def listen(amqp: ClientConnection, console: Console, *, auto_ack: bool, count: int | None, timeout: float | None,
           show_body: bool) -> ListenResult:
    session = amqp.session
    protocol = session.access.protocol
    message_queue = protocol.client_queue(session.client_id, QueueKind.MESSAGE)
    ack_routing_key = protocol.publish_routing_key(session.client_id, QueueKind.ACK)
    result = ListenResult()

    def handle(delivery: Delivery) -> bool:
        received, problem = read(delivery)
        note = ""
        if auto_ack and received is not None and delivery.queue == message_queue and received.wants_ack:
            ack = edxl.functional_ack(received, acknowledged_by=session.client_id)
            amqp.publish(ack_routing_key, orjson.dumps(ack), WireFormat.JSON.content_type, str(ack["distributionID"]))
            result.acknowledged.append(received.distribution_id)
            note = f"→ acknowledged to {received.sender_id} (RC-REF {ack['distributionID']})"
        console.print(describe_delivery(delivery, received, problem, show_body=show_body, note=note))
        result.messages += 1
        return count is None or result.messages < count

    amqp.consume(protocol.client_queues(session.client_id), handle, timeout=timeout)
    return result
