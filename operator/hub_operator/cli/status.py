"""``hubctl status``: what the custom resources say (readiness, dispatchers, certificates) and what the broker
holds (queue depths), as one report rendered as rich tables or JSON."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from hub_dispatcher.protocol import DEAD_LETTER_QUEUE, DISPATCH_QUEUE, QueueKind
from hub_operator.api.hubclient import CertificateMode
from hub_operator.api.resources import HubClient, Perimeter, VHostVersion
from hub_operator.cli.inventory import NO_STATUS, Inventory, Readiness
from hub_operator.clients.broker_api import QueueDepth

#: Depths per vhost: queue name -> depth, or why the broker could not be asked.
VhostDepths = Mapping[str, Mapping[str, QueueDepth] | str]


@dataclass(frozen=True)
class PerimeterRow:
    name: str
    use_cases: str
    message_ttl: str
    vhosts: list[str]
    readiness: Readiness


@dataclass(frozen=True)
class VhostRow:
    name: str
    vhost: str
    perimeter: str
    models: str
    profile: str
    state: str
    dispatchers_ready: int | None
    dispatchers_desired: int | None
    clients: int | None
    dispatch_queue: int | None
    """Messages waiting for a dispatcher; None when the broker could not be asked."""
    dead_letters: int | None
    readiness: Readiness
    depth_problem: str = ""


@dataclass(frozen=True)
class ClientVhost:
    vhost_version: str
    vhost: str
    state: str
    message: str
    queued: dict[str, int] | None
    """Messages waiting in the client's queues by kind (message, ack, info), summed over its client ids."""


@dataclass(frozen=True)
class ClientRow:
    name: str
    client_ids: list[str]
    username: str
    suspended: bool
    certificate_mode: str
    certificate_not_after: dt.datetime | None
    renew_before: dt.timedelta
    vhosts: list[ClientVhost]
    readiness: Readiness


@dataclass
class StatusReport:
    namespace: str
    generated_at: dt.datetime
    perimeters: list[PerimeterRow] = field(default_factory=list)
    vhosts: list[VhostRow] = field(default_factory=list)
    clients: list[ClientRow] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            if isinstance(value, dict):
                return {key: plain(item) for key, item in value.items()}
            if isinstance(value, list):
                return [plain(item) for item in value]
            if isinstance(value, dt.datetime):
                return value.isoformat()
            if isinstance(value, dt.timedelta):
                return value.total_seconds()
            return value

        document = plain(asdict(self))
        for section in ("perimeters", "vhosts", "clients"):
            for row, source in zip(document[section], getattr(self, section), strict=True):
                row["readiness"]["ready"] = source.readiness.ready
        return document


# -- building -------------------------------------------------------------------------------------------------
def build_report(inventory: Inventory, depths: VhostDepths | None, now: dt.datetime) -> StatusReport:
    report = StatusReport(inventory.namespace, now, warnings=list(inventory.problems))
    report.perimeters = [_perimeter_row(perimeter) for perimeter in inventory.perimeters]
    report.vhosts = [_vhost_row(vhost_version, depths) for vhost_version in inventory.vhost_versions]
    report.clients = [_client_row(client, inventory, depths) for client in inventory.hub_clients]
    return report


def _perimeter_row(perimeter: Perimeter) -> PerimeterRow:
    status = perimeter.status
    return PerimeterRow(
        name=perimeter.metadata.name,
        use_cases=(status.use_cases if status and status.use_cases else perimeter.spec.use_case_summary),
        message_ttl=perimeter.spec.message_ttl,
        vhosts=list(status.vhosts) if status else [],
        readiness=Readiness.of(perimeter),
    )


def _depths_of(depths: VhostDepths | None, vhost: str) -> tuple[Mapping[str, QueueDepth] | None, str]:
    if depths is None:
        return None, "not asked"
    found = depths.get(vhost)
    if found is None:
        return None, "not asked"
    if isinstance(found, str):
        return None, found
    return found, ""


def _vhost_row(vhost_version: VHostVersion, depths: VhostDepths | None) -> VhostRow:
    spec, status = vhost_version.spec, vhost_version.status
    queues, problem = _depths_of(depths, spec.vhost_name)
    dispatcher = status.dispatcher if status else None

    def ready_messages(name: str) -> int | None:
        if queues is None:
            return None
        return queues[name].ready if name in queues else 0

    return VhostRow(
        name=vhost_version.metadata.name,
        vhost=status.vhost if status and status.vhost else spec.vhost_name,
        perimeter=spec.perimeter,
        models=spec.models.version,
        profile=spec.profile.value,
        state=spec.state.value,
        dispatchers_ready=dispatcher.ready_replicas if dispatcher else None,
        dispatchers_desired=dispatcher.replicas if dispatcher else None,
        clients=status.clients if status else None,
        dispatch_queue=ready_messages(DISPATCH_QUEUE),
        dead_letters=ready_messages(DEAD_LETTER_QUEUE),
        readiness=Readiness.of(vhost_version),
        depth_problem=problem,
    )


def _client_row(client: HubClient, inventory: Inventory, depths: VhostDepths | None) -> ClientRow:
    spec, status = client.spec, client.status
    states = {entry.vhost_version: entry for entry in status.vhosts} if status else {}
    vhosts = []
    for name in spec.vhost_versions:
        vhost_version = inventory.vhost_version(name)
        entry = states.get(name)
        vhost = (entry.vhost if entry and entry.vhost else None) or (
            vhost_version.spec.vhost_name if vhost_version else "")
        queued = None
        if vhost_version is not None:
            queues, _ = _depths_of(depths, vhost_version.spec.vhost_name)
            if queues is not None:
                protocol = vhost_version.spec.protocol
                queued = {kind.value: sum(queues[queue].ready for client_id in spec.all_client_ids
                                          if (queue := protocol.client_queue(client_id, kind)) in queues)
                          for kind in QueueKind}
        vhosts.append(ClientVhost(
            vhost_version=name,
            vhost=vhost,
            state=entry.state.value if entry else ("NoVHostVersion" if vhost_version is None else "Unknown"),
            message=(entry.message or "") if entry else "",
            queued=queued,
        ))
    certificate = status.certificate if status else None
    return ClientRow(
        name=client.metadata.name,
        client_ids=list(spec.all_client_ids),
        username=(status.username if status and status.username else spec.username),
        suspended=spec.suspended,
        certificate_mode=spec.certificate.mode.value,
        certificate_not_after=certificate.not_after if certificate else None,
        renew_before=spec.certificate.renew_before_delta,
        vhosts=vhosts,
        readiness=Readiness.of(client),
    )


# -- rendering ------------------------------------------------------------------------------------------------
def readiness_text(readiness: Readiness, *, suspended: bool = False) -> Text:
    if suspended and readiness.status == "True" and not readiness.stale:
        return Text("Suspended", style="magenta")
    if readiness.ready:
        return Text("Ready", style="green")
    label = readiness.reason or readiness.status
    if readiness.reason == NO_STATUS:
        return Text("Waiting for the operator (no status yet)", style="yellow")
    if readiness.stale:
        # What the conditions say describes an older spec: show it, but as the past.
        return Text(f"Reconciling (was {'Ready' if readiness.status == 'True' else label})", style="yellow")
    if readiness.status == "False":
        return Text(f"Not ready: {label}", style="red")
    return Text(f"Pending: {label}", style="yellow")


def certificate_text(row: ClientRow, now: dt.datetime) -> Text:
    not_after = row.certificate_not_after
    if not_after is None:
        if row.certificate_mode == CertificateMode.EXTERNAL.value:
            return Text(f"external (CN {row.username})", style="dim")
        return Text("not issued yet", style="yellow")
    left = not_after - now
    when = not_after.strftime("%Y-%m-%d %H:%M")
    if left <= dt.timedelta(0):
        return Text(f"EXPIRED {when} ({-left.days}d ago)", style="bold red")
    days = f"{left.days}d" if left.days else f"{int(left.total_seconds() // 3600)}h"
    style = "yellow" if left <= row.renew_before else "green"
    return Text(f"until {when} ({days})", style=style)


def _count(value: int | None) -> Text:
    if value is None:
        return Text("?", style="dim")
    return Text(str(value), style="bold yellow" if value else "")


def _dispatchers(row: VhostRow) -> Text:
    if row.dispatchers_desired is None:
        return Text("?", style="dim")
    ready = row.dispatchers_ready or 0
    return Text(f"{ready}/{row.dispatchers_desired}", style="green" if ready >= row.dispatchers_desired else "yellow")


def _client_vhosts(row: ClientRow) -> Text:
    text = Text()
    for index, vhost in enumerate(row.vhosts):
        if index:
            text.append("\n")
        style = {"Provisioned": "green", "Failed": "red", "Suspended": "magenta"}.get(vhost.state, "yellow")
        text.append(vhost.vhost or vhost.vhost_version, style="bold")
        text.append(f" {vhost.state}", style=style)
        if vhost.queued is None:
            text.append("  queues ?", style="dim")
        else:
            text.append("  " + " · ".join(f"{kind} {count}" for kind, count in vhost.queued.items()))
        if vhost.message and vhost.state != "Provisioned":
            text.append(f"  {vhost.message}", style="dim")
    return text


def render(report: StatusReport, console: Console) -> None:
    console.print(Text(f"Hub environment {report.namespace}", style="bold"),
                  Text(f"({report.generated_at.strftime('%Y-%m-%d %H:%M:%S %Z')})", style="dim"))

    perimeters = Table(title="Perimeters", title_justify="left", expand=False)
    for column in ("Perimeter", "Use cases", "TTL", "Vhosts", "Ready"):
        perimeters.add_column(column)
    for perimeter in report.perimeters:
        perimeters.add_row(perimeter.name, perimeter.use_cases, perimeter.message_ttl,
                           ", ".join(perimeter.vhosts) or "-", readiness_text(perimeter.readiness))
    console.print(perimeters)

    vhosts = Table(title="Vhosts", title_justify="left")
    for column in ("VHostVersion", "Vhost", "Models", "Profile", "Dispatchers", "dispatch", "dlq", "Clients", "Ready"):
        vhosts.add_column(column, justify="right" if column in ("dispatch", "dlq", "Clients") else "left")
    for vhost in report.vhosts:
        vhosts.add_row(vhost.name, vhost.vhost + (" (deprecated)" if vhost.state == "deprecated" else ""),
                       vhost.models, vhost.profile, _dispatchers(vhost), _count(vhost.dispatch_queue),
                       _count(vhost.dead_letters), "?" if vhost.clients is None else str(vhost.clients),
                       readiness_text(vhost.readiness))
    console.print(vhosts)

    clients = Table(title="Clients", title_justify="left")
    for column in ("HubClient", "Client ids", "User (CN)", "Certificate", "Vhosts and queued messages", "Ready"):
        clients.add_column(column)
    for client in report.clients:
        clients.add_row(client.name, "\n".join(client.client_ids), client.username,
                        certificate_text(client, report.generated_at), _client_vhosts(client),
                        readiness_text(client.readiness, suspended=client.suspended))
    console.print(clients)

    problems = sorted({vhost.depth_problem for vhost in report.vhosts
                       if vhost.depth_problem and vhost.depth_problem != "not asked"})
    for warning in [*report.warnings, *(f"queue depths unavailable: {problem}" for problem in problems)]:
        console.print(Text(f"warning: {warning}", style="yellow"))
