"""``hubctl``: status of a hub environment, onboarding, client credentials and test messages.

Commands are thin: they parse options, show progress, and call the small modules of this package.
See docs/hubctl.md.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from hub_dispatcher import edxl
from hub_dispatcher.bundle import BundleError, ModelBundle
from hub_dispatcher.usecases import BY_KEY
from hub_operator.api.fieldtypes import parse_duration
from hub_operator.api.hubclient import HUBCLIENT, CertificateMode, IssuerKind, MessageFormat
from hub_operator.api.vhostversion import VHOSTVERSION
from hub_operator.cli import credentials as credentials_module
from hub_operator.cli import messaging, onboard as onboard_module, status as status_module
from hub_operator.cli.amqp import ClientConnection
from hub_operator.cli.broker import BrokerOverrides, load_broker, queue_depths
from hub_operator.cli.console import stderr, stdout
from hub_operator.cli.errors import EXIT_NO_ANSWER, HubctlError, reports_errors
from hub_operator.cli.inventory import Inventory
from hub_operator.clients.broker_api import QueueDepth
from hub_operator.cli.kube import HubReader, KubernetesHub, KubeTarget
from hub_operator.cli.session import (
    MODELS_ROOT_ENV,
    ClientSession,
    models_directory,
    session_from_cluster,
    session_from_folder,
)

app = typer.Typer(
    name="hubctl",
    help="Operate a Hub Santé environment: status, onboarding, client credentials, test messages.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)

@app.callback()
def _quiet_libraries(
    debug: Annotated[bool, typer.Option("--debug", help="Show the logs of the libraries hubctl uses.")] = False,
) -> None:
    """Operate a Hub Santé environment: status, onboarding, client credentials, test messages."""
    # pika logs every refused connection with a traceback; hubctl explains the refusal itself.
    logging.basicConfig(level=logging.DEBUG if debug else logging.CRITICAL, format="%(name)s: %(message)s")


# -- options shared by several commands ---------------------------------------------------------------------------
Kubeconfig = Annotated[Path | None, typer.Option("--kubeconfig", envvar="KUBECONFIG", help="Kubeconfig file.",
                                                 show_default=False, rich_help_panel="Cluster")]
Context = Annotated[str | None, typer.Option("--context", help="Kubeconfig context.", rich_help_panel="Cluster")]
Namespace = Annotated[str | None, typer.Option("--namespace", "-n", envvar="HUBCTL_NAMESPACE",
                                               help="Hub environment (namespace); default: the context's.",
                                               rich_help_panel="Cluster")]
ManagementUrl = Annotated[str | None, typer.Option("--management-url", help="Broker management API instead of the "
                                                   "broker Secret's (e.g. through a port-forward).",
                                                   rich_help_panel="Broker")]
AmqpsHost = Annotated[str | None, typer.Option("--amqps-host", help="AMQPS host instead of the broker Secret's.",
                                               rich_help_panel="Broker")]
AmqpsPort = Annotated[int | None, typer.Option("--amqps-port", min=1, max=65535, help="AMQPS port instead of the "
                                               "broker Secret's.", rich_help_panel="Broker")]
TlsServerName = Annotated[str | None, typer.Option("--tls-server-name", help="Name the broker certificate must carry "
                                                   "(when --amqps-host is a tunnel).", rich_help_panel="Broker")]
Vhost = Annotated[str | None, typer.Option("--vhost", help="Vhost (15-15_v2.0) or VHostVersion (15-15-v2.0); "
                                           "needed when the client has several.")]
CredentialsFolder = Annotated[Path | None, typer.Option(
    "--credentials", help="Folder written by `hubctl credentials` (no cluster access needed).", file_okay=False)]
ShowBody = Annotated[bool, typer.Option("--show-body", help="Print each message body.")]


def _target(kubeconfig: Path | None, context: str | None, namespace: str | None) -> KubeTarget:
    return KubeTarget(kubeconfig, context, namespace)


def connect(target: KubeTarget) -> HubReader:
    """The hub environment to read (tests replace it with a StaticHub)."""
    return KubernetesHub.connect(target)


def _load_inventory(target: KubeTarget, *kinds: str) -> tuple[HubReader, Inventory]:
    hub = connect(target)
    with stderr.status(f"Reading namespace {hub.namespace} from {hub.server}"):
        inventory = Inventory.load(hub, kinds) if kinds else Inventory.load(hub)
    return hub, inventory


def _session(client_id: str, vhost: str | None, folder: Path | None, target: KubeTarget,
             overrides: BrokerOverrides) -> ClientSession:
    onboard_module.check_client_id(client_id)
    if folder is not None:
        return session_from_folder(folder, client_id, vhost, overrides)
    hub, inventory = _load_inventory(target)
    return session_from_cluster(hub, inventory, client_id, vhost, overrides)


def _load_bundle(directory: Path) -> ModelBundle:
    with stderr.status(f"Loading the model bundle {directory}"):
        try:
            return ModelBundle.load(directory)
        except BundleError as error:
            raise HubctlError(f"model bundle {directory} is unusable: {error}") from None


# -- status -------------------------------------------------------------------------------------------------------
@app.command()
@reports_errors
def status(
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
    management_url: ManagementUrl = None,
    output: Annotated[str, typer.Option("--output", "-o", help="table or json.")] = "table",
    queues: Annotated[bool, typer.Option(help="Read queue depths from the broker's management API.")] = True,
) -> None:
    """Perimeters, vhosts and clients of a hub environment: readiness, dispatchers, certificate expiry and queue
    depths."""
    if output not in ("table", "json"):
        raise HubctlError(f"--output {output!r}: choose table or json")
    hub, inventory = _load_inventory(_target(kubeconfig, context, namespace))
    depths: dict[str, dict[str, QueueDepth] | str] | None = None
    if queues:
        depths = {}
        by_broker: dict[str, list[str]] = {}
        for vhost_version in inventory.vhost_versions:
            by_broker.setdefault(vhost_version.spec.broker_secret_name, []).append(vhost_version.spec.vhost_name)
        for secret_name, vhosts in by_broker.items():
            try:
                broker = load_broker(hub, secret_name, BrokerOverrides(management_url=management_url))
                with stderr.status(f"Reading queue depths from {broker.management_url}"):
                    depths.update(queue_depths(broker, vhosts))
            except HubctlError as error:
                depths.update({vhost: error.message for vhost in vhosts})
    report = status_module.build_report(inventory, depths, dt.datetime.now(dt.timezone.utc))
    if output == "json":
        stdout.print_json(json.dumps(report.to_json()))
    else:
        status_module.render(report, stdout)


# -- onboard ------------------------------------------------------------------------------------------------------
@app.command()
@reports_errors
def onboard(
    client_id: Annotated[str, typer.Argument(help="Client id, e.g. fr.health.samu050.")],
    perimeter: Annotated[str | None, typer.Option(help="Perimeter (15-15...): every active vhost of it, "
                                                  "or the versions given with --vhost.")] = None,
    vhost: Annotated[list[str] | None, typer.Option("--vhost", help="Version (2.0, with --perimeter), vhost "
                                                    "(15-15_v2.0) or VHostVersion (15-15-v2.0); repeatable.")] = None,
    name: Annotated[str | None, typer.Option(help="HubClient name; default: the client id in lower case.")] = None,
    additional_id: Annotated[list[str] | None, typer.Option("--additional-id", help="Another client id served by "
                                                            "the same certificate; repeatable.")] = None,
    common_name: Annotated[str | None, typer.Option(help="Certificate CN (the broker username); default: the "
                                                    "client id. Required with --certificate-mode external.")] = None,
    certificate_mode: Annotated[CertificateMode, typer.Option(help="Who issues the certificate.")] =
    CertificateMode.OPERATOR,
    issuer: Annotated[str | None, typer.Option(help="cert-manager issuer (certManager mode).")] = None,
    issuer_kind: Annotated[IssuerKind, typer.Option(help="Issuer or ClusterIssuer.")] = IssuerKind.ISSUER,
    message_format: Annotated[MessageFormat, typer.Option("--format", help="Format the client receives.")] =
    MessageFormat.JSON,
    editor: Annotated[str | None, typer.Option(help="Software editor (a metrics label).")] = None,
    offline: Annotated[bool, typer.Option(help="Do not check the vhosts against the cluster.")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the YAML here instead of stdout.",
                                                dir_okay=False)] = None,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """Print a ready-to-commit HubClient manifest (validated by the API model) for a new client."""
    request = onboard_module.OnboardRequest(
        client_id=client_id, perimeter=perimeter, vhosts=vhost or (), name=name,
        additional_client_ids=additional_id or (), common_name=common_name, certificate_mode=certificate_mode,
        issuer=issuer, issuer_kind=issuer_kind, message_format=message_format, editor=editor,
    )
    onboard_module.check_client_id(client_id)
    descriptions: list[str] = []
    if offline:
        chosen = onboard_module.choose_vhost_versions(request, None)
    else:
        _, inventory = _load_inventory(_target(kubeconfig, context, namespace), VHOSTVERSION.kind, HUBCLIENT.kind)
        chosen = onboard_module.choose_vhost_versions(request, inventory.vhost_versions)
        taken = [(i, c.metadata.name) for c in inventory.hub_clients
                 for i in (client_id, *request.additional_client_ids) if i in c.spec.all_client_ids]
        if taken:
            raise HubctlError("already served: " + ", ".join(f"{i} by HubClient {n}" for i, n in taken))
        for chosen_name in chosen:
            found = inventory.vhost_version(chosen_name)
            if found is not None:
                descriptions.append(f"{chosen_name}: vhost {found.spec.vhost_name}, models {found.spec.models.version}, "
                                    f"profile {found.spec.profile.value}")
    manifest = onboard_module.build_manifest(request, chosen)
    text = onboard_module.render_yaml(manifest, descriptions)
    for warning in request.warnings:
        stderr.print(f"[yellow]warning:[/] {warning}")
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)
        stderr.print(f"wrote {output}: commit it to the environment's Git repository")


# -- credentials --------------------------------------------------------------------------------------------------
@app.command()
@reports_errors
def credentials(
    client_id: Annotated[str, typer.Argument(help="Client id, e.g. fr.health.samu050.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Folder to write; default ./<client id>.",
                                                file_okay=False)] = None,
    vhost: Annotated[str | None, typer.Option("--vhost", help="Vhost the snippets connect to; default the first.")] =
    None,
    force: Annotated[bool, typer.Option(help="Overwrite files already in the folder.")] = False,
    amqps_host: AmqpsHost = None,
    amqps_port: AmqpsPort = None,
    tls_server_name: TlsServerName = None,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """Write a client's certificate bundle (PEM, PKCS#12), the broker CA, connection.json and connection snippets."""
    onboard_module.check_client_id(client_id)
    hub, inventory = _load_inventory(_target(kubeconfig, context, namespace))
    overrides = BrokerOverrides(amqps_host=amqps_host, amqps_port=amqps_port, tls_server_name=tls_server_name)
    bundle = credentials_module.collect(hub, inventory, client_id, overrides)
    folder = output or Path(client_id)
    written = credentials_module.write(bundle, folder, snippet_vhost=vhost, force=force)
    table = Table(title=f"Credentials of {client_id} (CN {bundle.identity.username}) in {folder}", title_justify="left")
    table.add_column("file")
    table.add_column("what")
    what = {"tls.crt": "client certificate (PEM)", "tls.key": "private key (PEM, 0600)",
            "ca.crt": "CA that issued the certificate", "broker-ca.crt": "CA of the broker's server certificate",
            "keystore.p12": "PKCS#12 keystore for Java (0600)", "keystore.password": "keystore password (0600)",
            "connection.json": "hosts, vhosts, routing keys, queues (hubctl send --credentials)",
            "connect_pika.py": "Python/pika client", "HubConnection.java": "Java (RabbitMQ client) connection"}
    for path in written:
        table.add_row(path.name, what.get(path.name, ""))
    stdout.print(table)
    for access in bundle.accesses:
        stdout.print(f"  {access.vhost}: amqps://{access.host}:{access.port} (profile {access.profile.value}, "
                     f"models {access.models_version})")
    for missing in bundle.missing_vhosts:
        stderr.print(f"[yellow]warning:[/] VHostVersion {missing} does not exist: not in connection.json")
    stderr.print("[dim]The key is secret: hand the folder over through a secure channel.[/]")


# -- send / listen ------------------------------------------------------------------------------------------------
def _describe_session(session: ClientSession) -> str:
    access = session.access
    return (f"{session.client_id} (CN {session.identity.username}) on {access.vhost} at "
            f"amqps://{access.host}:{access.port}, profile {access.profile.value}")


@app.command()
@reports_errors
def send(
    client_id: Annotated[str, typer.Argument(help="Sender: one of the client ids of the certificate used.")],
    to: Annotated[str, typer.Option("--to", help="Recipient client id.")],
    use_case: Annotated[str | None, typer.Option("--use-case", "-u", help="Use case key (createCase) or model "
                                                 "(RC-EDA): sends the bundle's example of it.")] = None,
    example: Annotated[str | None, typer.Option(help="Part of the example's file name, when the bundle has "
                                                "several.")] = None,
    use_case_file: Annotated[Path | None, typer.Option(help="Your own bare use case, e.g. "
                                                       "{\"createCase\": {...}} (JSON).", dir_okay=False)] = None,
    message_format: Annotated[messaging.WireFormat, typer.Option("--format", help="Wire format.")] =
    messaging.WireFormat.JSON,
    kind: Annotated[messaging.SendKind, typer.Option(help="distributionKind.")] = messaging.SendKind.REPORT,
    exercise: Annotated[bool, typer.Option(help="distributionStatus Exercise instead of Actual.")] = False,
    expires_in: Annotated[str, typer.Option(help="Lifetime of the message (dateTimeExpires), e.g. 1h, 24h.")] = "24h",
    wait: Annotated[float, typer.Option(min=0, help="Seconds to wait for the ack or error report; 0: do not wait.")]
    = 15.0,
    validate: Annotated[bool, typer.Option(help="Refuse to send a message the bundle says is invalid.")] = True,
    show_body: ShowBody = False,
    vhost: Vhost = None,
    credentials_folder: CredentialsFolder = None,
    models: Annotated[Path | None, typer.Option(help="Model bundle folder (json-schema/, xsd/, sample/).",
                                                file_okay=False, rich_help_panel="Models")] = None,
    models_root: Annotated[Path | None, typer.Option(envvar=MODELS_ROOT_ENV, help="Folder of bundles by version.",
                                                     file_okay=False, rich_help_panel="Models")] = None,
    amqps_host: AmqpsHost = None,
    amqps_port: AmqpsPort = None,
    tls_server_name: TlsServerName = None,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """Send a valid EDXL-DE message of a use case as a client, then show the acknowledgement or error report.

    Exit codes: 0 acknowledged (or not waiting), 3 nothing referencing it arrived in time, 4 the hub reported
    an error.
    """
    onboard_module.check_client_id(to, "recipient")
    try:
        lifetime = parse_duration(expires_in)
    except ValueError as error:
        raise HubctlError(f"--expires-in: {error}") from None
    overrides = BrokerOverrides(amqps_host=amqps_host, amqps_port=amqps_port, tls_server_name=tls_server_name)
    session = _session(client_id, vhost, credentials_folder, _target(kubeconfig, context, namespace), overrides)
    access = session.access
    bundle = _load_bundle(models_directory(access.models_version, access.models_path, explicit=models,
                                           models_root=models_root))
    request = messaging.SendRequest(
        recipient=to, use_case=use_case, example=example, use_case_file=use_case_file, message_format=message_format,
        kind=kind, status=edxl.DistributionStatus.EXERCISE if exercise else edxl.DistributionStatus.ACTUAL,
        lifetime=lifetime, validate=validate,
    )
    outgoing = messaging.build_outgoing(bundle, session, request)
    stderr.print(f"Sending as {_describe_session(session)}")
    with contextlib.ExitStack() as stack:
        with stderr.status("Connecting"):
            amqp = stack.enter_context(ClientConnection(session))
        amqp.publish(outgoing.routing_key, outgoing.body, outgoing.content_type, outgoing.distribution_id)
        stdout.print(Text.assemble(("→ sent ", "bold green"), f"{outgoing.use_case} ({outgoing.source}) to "
                                   f"{outgoing.recipient} as {message_format.value.upper()}, routing key "
                                   f"{outgoing.routing_key}"))
        stdout.print(f"  distributionID {outgoing.distribution_id}")
        if show_body:
            stdout.print(messaging.body_view(outgoing.body, outgoing.content_type))
        if wait <= 0:
            return
        # A plain line, not a spinner: answers are printed on stdout meanwhile.
        stderr.print(f"Waiting up to {wait:g}s for an answer on {', '.join(messaging.answer_queues(session))}")
        answer = messaging.wait_for_answer(amqp, outgoing, wait, stdout, show_body=show_body)
    if answer.exit_code == EXIT_NO_ANSWER:
        raise HubctlError(f"no acknowledgement or error report for {outgoing.distribution_id} within {wait:g}s",
                          hint="is a dispatcher running on the vhost, and the recipient acknowledging "
                               "(e.g. `hubctl listen RECIPIENT --auto-ack`)?", exit_code=answer.exit_code)
    if answer.exit_code:
        raise typer.Exit(answer.exit_code)


@app.command()
@reports_errors
def listen(
    client_id: Annotated[str, typer.Argument(help="Client id whose queues to read.")],
    auto_ack: Annotated[bool, typer.Option("--auto-ack", help="Answer every message with an RC-REF "
                                           "acknowledgement to its sender.")] = False,
    count: Annotated[int | None, typer.Option(min=1, help="Stop after this many messages.")] = None,
    timeout: Annotated[float | None, typer.Option(min=0, help="Stop after this many seconds; default: until "
                                                  "Ctrl-C.")] = None,
    show_body: ShowBody = False,
    vhost: Vhost = None,
    credentials_folder: CredentialsFolder = None,
    amqps_host: AmqpsHost = None,
    amqps_port: AmqpsPort = None,
    tls_server_name: TlsServerName = None,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """Show what arrives in a client's .message, .ack and .info queues, optionally acknowledging each message."""
    overrides = BrokerOverrides(amqps_host=amqps_host, amqps_port=amqps_port, tls_server_name=tls_server_name)
    session = _session(client_id, vhost, credentials_folder, _target(kubeconfig, context, namespace), overrides)
    with ClientConnection(session) as amqp:
        queues = session.access.protocol.client_queues(client_id)
        waiting = {queue: amqp.depth(queue) for queue in queues}
        stderr.print(f"Listening as {_describe_session(session)}")
        stderr.print("  " + ", ".join(f"{queue} ({depth} waiting)" for queue, depth in waiting.items())
                     + ("; acknowledging messages" if auto_ack else ""))
        result = messaging.listen(amqp, stdout, auto_ack=auto_ack, count=count, timeout=timeout, show_body=show_body)
    stderr.print(f"{result.messages} message(s) received, {len(result.acknowledged)} acknowledged")


# -- examples -----------------------------------------------------------------------------------------------------
@app.command()
@reports_errors
def examples(
    models: Annotated[str, typer.Option(help="Bundle folder, or a version under --models-root (e.g. 3.4.1).")],
    models_root: Annotated[Path | None, typer.Option(envvar=MODELS_ROOT_ENV, help="Folder of bundles by version.",
                                                     file_okay=False)] = None,
) -> None:
    """List the use cases a model bundle defines and the examples `hubctl send` can build messages from."""
    directory = Path(models)
    if not (directory / "json-schema").is_dir():
        directory = models_directory(models, None, explicit=None, models_root=models_root)
    bundle = _load_bundle(directory)
    by_key: dict[str, list[str]] = {}
    for found in edxl.bundle_examples(directory):
        by_key.setdefault(found.key, []).append(found.name)
    table = Table(title=f"Model bundle {bundle.version} ({directory})", title_justify="left")
    for column in ("use case", "model", "header", "XML"):
        table.add_column(column, no_wrap=True)
    table.add_column("examples (--example)", overflow="fold")
    for key, use_case in sorted(bundle.use_cases.items()):
        known = BY_KEY.get(key)
        table.add_row(key, known.model if known else "?", "yes" if use_case.has_header else "no",
                      "yes" if use_case.xml_variant else "no", "\n".join(by_key.get(key, [])) or "-")
    stdout.print(table)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
