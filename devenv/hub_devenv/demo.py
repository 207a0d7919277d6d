"""``make demo``: the whole hub on this machine, then a message end to end.

1. a local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager) and a RabbitMQ broker
   configured like the national hub (AMQPS only, mutual TLS, username = certificate CN);
2. what the Helm chart would install: the CRDs, the namespaces, the operator's RBAC, the broker Secret (the
   real one, describing the local broker) and the operator CA (the broker's CA, so the broker trusts what the
   operator issues), plus the CRD of the cert-manager stand-in;
3. ``hub-operator`` as a local process under its own RBAC, watching the ``hub-sandbox`` namespace;
4. the local node (:mod:`hub_devenv.localnode`), the kubelet of this machine: it runs every dispatcher pod the
   operator's Deployments create as a local ``hub-dispatcher`` process, and marks it Ready only once the
   process's ``/readyz`` answers;
5. ``examples/`` applied (its placeholder broker Secret left out: step 2 wrote the real one), until every
   object is Ready;
6. the 18→15 round trip and a refused message (:mod:`hub_devenv.demo_flow`);
7. ``hubctl status``.

Every process is detached and recorded in ``.cache/devenv/state.json``: the environment keeps running after
the demo (explore it with hubctl and kubectl) until ``make demo-down``.  Ctrl-C, or a step that fails, stops
everything; a failure names the step and shows the tail of the relevant logs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hub_operator.api.base import GROUP, VERSION
from hub_operator.api.crdgen import KINDS
from hub_operator.builders.workloads import LABEL_VHOST
from kubernetes import client as k8s
from rich.console import Console
from rich.markup import escape
from rich.rule import Rule
from rich.text import Text

from . import certmanager
from .demo_flow import BRIGADE, SAMU, DemoFlow, FlowContext, FlowFailed
from .demo_flow import VHOST as FLOW_VHOST
from .environment import (
    LOCAL_NODE_PROCESS,
    OPERATOR_PROCESS,
    DevEnvironment,
    register_process,
    stop,
)
from .hub_resources import (
    EXAMPLES_DIR,
    broker_secret,
    grant_operator_access,
    install_crds,
    operator_ca_secret,
)
from .localnode import (
    DISPATCHER_PODS,
    NODE_STARTED_LINE,
    list_pods,
    pod_log_path,
    read_process_file,
)
from .operator_process import OperatorProcess
from .paths import REPO_ROOT, models_root
from .processes import log_tail, wait_until

NAMESPACE = "hub-sandbox"
OPERATOR_NAMESPACE = "hub-system"
OPERATOR_USER = "hub-operator"
#: examples/ files applied as they are; 00-broker.yaml is a placeholder the demo replaces with the real Secret.
EXAMPLE_FILES = ("10-perimeters.yaml", "20-vhostversions.yaml", "30-hubclients.yaml")
PLACEHOLDER_FILE = "00-broker.yaml"
READY_TIMEOUT = 240.0
STATUS_COLUMNS = 200
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


class StepFailed(RuntimeError):
    def __init__(self, step: str, message: str, logs: Sequence[Path] = ()) -> None:
        super().__init__(message)
        self.step = step
        self.message = message
        self.logs = list(logs)


@dataclass
class Demo:
    console: Console
    environment: DevEnvironment = field(default_factory=DevEnvironment.create)
    steps_total: int = 8
    _step_number: int = 0
    _timings: list[tuple[str, float]] = field(default_factory=list)

    @property
    def root(self) -> Path:
        return self.environment.root

    @property
    def operator_log(self) -> Path:
        return self.environment.logs_dir / "hub-operator.log"

    @property
    def node_log(self) -> Path:
        return self.environment.logs_dir / "local-node.log"

    # -- the steps ----------------------------------------------------------------------------------------------
    def run(self) -> None:
        started = time.monotonic()
        self.console.print(Rule("hub-operator demo: a Hub Santé message hub on this machine"))
        self._start_components()
        self._install_prerequisites()
        self._start_operator()
        self._start_local_node()
        self._apply_examples()
        self._play_flow()
        self._show_status()
        total = time.monotonic() - started
        timings = ", ".join(f"{name} {seconds:.0f}s" for name, seconds in self._timings)
        self.console.print(Rule(f"demo completed in {total:.0f}s"))
        self.console.print(Text(f"  steps: {timings}", style="dim"))
        self.console.print(explore_hint(self.environment))

    def _start_components(self) -> None:
        with self._step("control plane and broker", "Local Kubernetes control plane and RabbitMQ broker",
                        logs=[self.environment.control_plane.log_path(c) for c in ("etcd", "kube-apiserver")]
                        + [self.environment.broker.log_path]):
            self.environment.start()
            plane, broker = self.environment.control_plane, self.environment.broker
            self._ok(f"etcd + kube-apiserver (RBAC) + kube-controller-manager at {plane.server} (no kubelet)")
            self._ok(f"RabbitMQ node {broker.full_node_name}: AMQPS {broker.host}:{broker.amqps_port} only, mutual "
                     f"TLS, username = certificate CN (EXTERNAL); management API {broker.management_url}")

    def _install_prerequisites(self) -> None:
        plane, broker = self.environment.control_plane, self.environment.broker
        with self._step("prerequisites", "What the Helm chart installs: CRDs, namespaces, RBAC, broker Secret, CA"):
            install_crds(plane)
            self._ok("CRDs " + ", ".join(info.crd_name for info in KINDS))
            certmanager.install_crd(plane)
            self._ok(f"CRD {certmanager.PLURAL}.{certmanager.GROUP} of the cert-manager stand-in")
            namespaces = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
                          for name in (OPERATOR_NAMESPACE, NAMESPACE)]
            plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(namespaces))
            grant_operator_access(plane, OPERATOR_USER, [OPERATOR_NAMESPACE, NAMESPACE], role_name=OPERATOR_USER)
            self._ok(f"namespaces {OPERATOR_NAMESPACE} (operator) and {NAMESPACE} (hub environment); user "
                     f"{OPERATOR_USER} bound to the operator's ClusterRole in both")
            secrets = [broker_secret(broker, NAMESPACE), operator_ca_secret(broker, OPERATOR_NAMESPACE)]
            plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(secrets))
            self._ok(f"Secret {NAMESPACE}/hub-broker: management API, admin credentials, AMQPS address and CA of "
                     f"the local broker (replaces the placeholder examples/{PLACEHOLDER_FILE})")
            self._ok(f"Secret {OPERATOR_NAMESPACE}/hub-operator-ca: the CA the broker trusts, which issues client "
                     "and dispatcher certificates")
            write_demo_kubeconfig(self.environment)

    def _start_operator(self) -> None:
        plane = self.environment.control_plane
        with self._step("operator", "hub-operator (local process, under its own RBAC)", logs=[self.operator_log]):
            kubeconfig = plane.write_kubeconfig(self.root / "operator.kubeconfig", OPERATOR_USER)
            operator = OperatorProcess(
                kubeconfig, NAMESPACE, self.operator_log,
                {"HUB_OPERATOR_CA_AUTOGENERATE": "false", "HUB_OPERATOR_LOG_FORMAT": "text"},
                operator_namespace=OPERATOR_NAMESPACE, identity="hub-operator-demo",
            )
            try:
                operator.start()
            finally:
                if operator.process is not None:
                    register_process(OPERATOR_PROCESS, operator.process.pid, self.root)
            assert operator.process is not None
            self._ok(f"pid {operator.process.pid}, watching {NAMESPACE}, Lease in {OPERATOR_NAMESPACE}; metrics "
                     f"{operator.metrics_url}; log {self._relative(self.operator_log)}")

    def _start_local_node(self) -> None:
        plane, broker = self.environment.control_plane, self.environment.broker
        with self._step("local node", "Local node: dispatcher pods as local processes", logs=[self.node_log]):
            self.node_log.parent.mkdir(parents=True, exist_ok=True)
            with open(self.node_log, "ab") as node_log:
                process = subprocess.Popen(
                    [sys.executable, "-m", "hub_devenv", "node", "--namespace", NAMESPACE,
                     "--kubeconfig", str(plane.kubeconfig), "--issuer-ca-dir", str(broker.tls_dir)],
                    stdout=node_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                    cwd=REPO_ROOT,
                )
            register_process(LOCAL_NODE_PROCESS, process.pid, self.root)
            # It logs this line once it has its API client and issuers, just before its first sync.
            wait_until(lambda: NODE_STARTED_LINE in self.node_log.read_text(errors="replace"), timeout=30,
                       what="the local node", process=process, log=self.node_log)
            self._ok(f"pid {process.pid}: runs each pod of the dispatcher Deployments as `hub-dispatcher` with the "
                     "pod's environment, its TLS Secret and preferences ConfigMap as files, the model bundles from "
                     f"{models_root()}; Ready only once /readyz answers")
            self._ok("also the cert-manager stand-in: Certificates of issuer hub-sandbox-ca are signed by the demo CA")

    def _apply_examples(self) -> None:
        plane = self.environment.control_plane
        with self._step("examples", f"examples/ applied to {NAMESPACE}, waiting until everything is Ready",
                        logs=[self.operator_log, self.node_log]):
            documents = []
            for name in EXAMPLE_FILES:
                documents += [d for d in yaml.safe_load_all((EXAMPLES_DIR / name).read_text()) if d]
            plane.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=yaml.safe_dump_all(documents))
            counts: dict[str, int] = {}
            for document in documents:
                counts[document["kind"]] = counts.get(document["kind"], 0) + 1
            self._ok(", ".join(f"{count} {kind}s" for kind, count in counts.items())
                     + f" (examples/{PLACEHOLDER_FILE} skipped)")
            ReadinessWatch(self, documents).wait(READY_TIMEOUT)

    def _play_flow(self) -> None:
        def dispatcher_logs(vhost: str) -> dict[str, Path]:
            pods = list_pods(self._api_client(), NAMESPACE, f"{DISPATCHER_PODS},{LABEL_VHOST}={vhost}")
            return {pod["metadata"]["name"]: pod_log_path(self.root, pod["metadata"]["name"]) for pod in pods}

        context = FlowContext(kubeconfig=self.environment.control_plane.kubeconfig, namespace=NAMESPACE,
                              models_root=models_root(), dispatcher_logs=dispatcher_logs, console=self.console)
        def logs() -> list[Path]:
            return [*dispatcher_logs(FLOW_VHOST).values(), self.node_log, self.operator_log]

        with self._step("flow 18→15", "The 18→15 flow: a fire brigade sends a case to SAMU 50, which acknowledges it",
                        logs=logs):
            flow = DemoFlow(context)
            flow.round_trip()
        with self._step("error report", "A message the hub refuses, and its error report", logs=logs):
            flow.refused_message()

    def _show_status(self) -> None:
        with self._step("status", "hubctl status"):
            command = [str(Path(sys.executable).parent / "hubctl"), "status",
                       "--kubeconfig", str(self.environment.control_plane.kubeconfig), "-n", NAMESPACE]
            self.console.print(Text(f"  $ hubctl status -n {NAMESPACE}", style="dim"))
            sys.stdout.flush()
            env = {**os.environ, "HUBSANTE_MODELS_DIR": str(models_root())}
            if not sys.stdout.isatty():
                env["COLUMNS"] = str(STATUS_COLUMNS)  # wide enough for the clients table in a log file
            result = subprocess.run(command, env=env, stdin=subprocess.DEVNULL, timeout=120, check=False)
            if result.returncode != 0:
                raise StepFailed("status", f"hubctl status exited with {result.returncode}")

    # -- helpers ------------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _step(
        self, name: str, title: str, *, logs: Sequence[Path] | Callable[[], Sequence[Path]] = ()
    ) -> Iterator[None]:
        """A numbered step, timed; any failure in it becomes a StepFailed naming it, with its logs to show."""
        self._step_number += 1
        self.console.print()
        self.console.print(Text.assemble((f"[{self._step_number}/{self.steps_total}] ", "bold"), (title, "bold")))
        started = time.monotonic()
        try:
            yield
        except StepFailed:
            raise
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as error:
            message = str(error) if isinstance(error, FlowFailed) else f"{type(error).__name__}: {error}"
            raise StepFailed(name, message, _resolve_logs(logs)) from error
        elapsed = time.monotonic() - started
        self._timings.append((name, elapsed))
        self.console.print(Text(f"  done in {elapsed:.1f}s", style="dim"))

    def _ok(self, text: str) -> None:
        self.console.print(Text.assemble(("  ✓ ", "green"), text))

    def _api_client(self) -> k8s.ApiClient:
        return self.environment.control_plane.api_client()

    def _relative(self, path: Path) -> str:
        with contextlib.suppress(ValueError):
            return str(path.relative_to(REPO_ROOT))
        return str(path)


class ReadinessWatch:
    """Prints each object and each dispatcher pod as it turns Ready; on timeout, what is not and why."""

    def __init__(self, demo: Demo, documents: Sequence[dict[str, Any]]) -> None:
        self.demo = demo
        self.expected = [(d["kind"], d["metadata"]["name"]) for d in documents]
        # A Perimeter is Ready as soon as it is valid; shown once it also lists every vhost the examples give it.
        self.perimeter_vhosts: dict[str, set[str]] = {}
        for document in documents:
            if document["kind"] == "VHostVersion":
                spec = document["spec"]
                self.perimeter_vhosts.setdefault(spec["perimeterRef"]["name"], set()).add(
                    f"{spec['perimeterRef']['name']}_v{spec['version']}")
        self.api_client = demo.environment.control_plane.api_client()
        self.objects = k8s.CustomObjectsApi(self.api_client)
        self.ready: set[tuple[str, str]] = set()
        self.ready_pods: set[str] = set()
        self.last_seen: dict[tuple[str, str], dict[str, Any]] = {}

    def wait(self, timeout: float) -> None:
        started = time.monotonic()
        while True:
            self._poll(started)
            if all(key in self.ready for key in self.expected):
                return
            if time.monotonic() - started > timeout:
                raise StepFailed("examples", f"not Ready after {timeout:.0f}s:\n" + self._pending(),
                                 [self.demo.operator_log, self.demo.node_log])
            time.sleep(0.5)

    def _poll(self, started: float) -> None:
        # Objects first, pods second, printed the other way round: a VHostVersion is Ready only after its
        # dispatcher pods are, so every pod Ready when the objects were read is in the pod listing.
        items: list[dict[str, Any]] = []
        for info in KINDS:
            listing: dict[str, Any] = self.objects.list_namespaced_custom_object(  # type: ignore[assignment]
                GROUP, VERSION, NAMESPACE, info.plural)
            items += listing.get("items", [])
        pods = list_pods(self.api_client, NAMESPACE, DISPATCHER_PODS)
        elapsed = time.monotonic() - started
        for pod in sorted(pods, key=lambda pod: str(pod["metadata"]["name"])):
            name = str(pod["metadata"]["name"])
            conditions = {c["type"]: c["status"] for c in (pod.get("status") or {}).get("conditions") or []}
            if name in self.ready_pods or conditions.get("Ready") != "True":
                continue
            self.ready_pods.add(name)
            process = read_process_file(self.demo.root, name) or {}
            vhost = (pod["metadata"].get("labels") or {}).get(LABEL_VHOST, "?")
            self._line(elapsed, f"pod {name}", f"(vhost {vhost}): hub-dispatcher pid {process.get('pid', '?')}, "
                                                f"{process.get('readinessUrl', '/readyz')} answers 200")
        for item in sorted(items, key=lambda item: _PRINT_ORDER.index(item["kind"])):
            key = (item["kind"], item["metadata"]["name"])
            self.last_seen[key] = item
            if key not in self.ready and _is_ready(item) and self._complete(item):
                self.ready.add(key)
                self._line(elapsed, f"{key[0]} {key[1]}", _describe_ready(item))

    def _complete(self, item: dict[str, Any]) -> bool:
        """Ready is not all the demo waits for: every dispatcher of a vhost, every vhost of a perimeter."""
        status = item.get("status") or {}
        if item["kind"] == "VHostVersion":
            dispatcher = status.get("dispatcher") or {}
            return dispatcher.get("readyReplicas", 0) == dispatcher.get("replicas", 0)
        if item["kind"] == "Perimeter":
            return self.perimeter_vhosts.get(item["metadata"]["name"], set()) <= set(status.get("vhosts") or [])
        return True

    def _line(self, elapsed: float, subject: str, detail: str) -> None:
        self.demo.console.print(Text.assemble(("  ✓ ", "green"), (f"{elapsed:5.1f}s  ", "dim"), (subject, "bold"),
                                              f"  {detail}"))

    def _pending(self) -> str:
        lines = []
        for key in self.expected:
            if key in self.ready:
                continue
            ready = _condition(self.last_seen.get(key, {}), "Ready")
            lines.append(f"  {key[0]} {key[1]}: Ready={ready.get('status', 'no status yet')} "
                         f"{ready.get('reason', '')} {ready.get('message', '')}".rstrip())
        return "\n".join(lines)


def _resolve_logs(logs: Sequence[Path] | Callable[[], Sequence[Path]]) -> list[Path]:
    if not callable(logs):
        return list(logs)
    try:
        return list(logs())
    except Exception:  # noqa: BLE001 - the logs are a help for the failure being reported, never a new failure
        return []


#: Within one poll, a vhost before its perimeter (which lists it), clients last.
_PRINT_ORDER = ("VHostVersion", "Perimeter", "HubClient")


def _condition(item: dict[str, Any], condition_type: str) -> dict[str, Any]:
    return next((c for c in (item.get("status") or {}).get("conditions") or [] if c.get("type") == condition_type), {})


def _is_ready(item: dict[str, Any]) -> bool:
    ready = _condition(item, "Ready")
    generation = item["metadata"].get("generation")
    return ready.get("status") == "True" and ready.get("observedGeneration", generation) == generation


def _describe_ready(item: dict[str, Any]) -> str:
    status = item.get("status") or {}
    kind = item["kind"]
    reason = _condition(item, "Ready").get("reason", "")
    if kind == "Perimeter":
        return f"vhosts: {', '.join(status.get('vhosts') or []) or 'none (no VHostVersion yet)'}"
    if kind == "VHostVersion":
        dispatcher = status.get("dispatcher") or {}
        deprecated = ", deprecated" if (item.get("spec") or {}).get("state") == "deprecated" else ""
        return (f"vhost {status.get('vhost', '?')} provisioned, {dispatcher.get('readyReplicas', 0)}/"
                f"{dispatcher.get('replicas', 0)} dispatchers ready{deprecated}")
    certificate = status.get("certificate") or {}
    issued = _condition(item, "CertificateReady").get("reason", "")
    return (f"user {status.get('username', '?')} on {status.get('readyVhosts', 0)} vhost(s), certificate {issued}"
            + (f" until {certificate['notAfter'][:10]}" if certificate.get("notAfter") else "")
            + (f" ({reason})" if reason not in ("Ready", "") else ""))


def demo_kubeconfig_path(environment: DevEnvironment) -> Path:
    return environment.root / "demo.kubeconfig"


def write_demo_kubeconfig(environment: DevEnvironment) -> Path:
    """The admin kubeconfig with the hub environment as its namespace: kubectl and hubctl need no -n."""
    config = yaml.safe_load(environment.control_plane.kubeconfig.read_text())
    for context in config["contexts"]:
        context["context"]["namespace"] = NAMESPACE
    path = demo_kubeconfig_path(environment)
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def explore_hint(environment: DevEnvironment) -> Text:
    plane = environment.control_plane
    kubectl = plane.tools.kubectl if plane.tools else "kubectl"
    scripts = Path(sys.executable).parent
    lines = [
        f"The environment keeps running (namespace {NAMESPACE}). Explore it:",
        f"  export KUBECONFIG={demo_kubeconfig_path(environment)} HUBSANTE_MODELS_DIR={models_root()}",
        f"  export PATH={scripts}:{Path(kubectl).parent}:$PATH      # hubctl, kubectl",
        "  hubctl status",
        f"  hubctl listen {SAMU} --vhost {FLOW_VHOST} --auto-ack           # in one terminal,",
        f"  hubctl send {BRIGADE} --to {SAMU} -u createCase --format xml   # in another",
        "  kubectl get hubsante,deployments,pods",
        f"  logs: {environment.logs_dir} (hub-operator.log, local-node.log, one per dispatcher pod)",
        "Stop everything: make demo-down",
    ]
    return Text("\n".join(lines))



def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    # Ctrl-C (and a SIGTERM, e.g. from a CI runner) stops everything, even when started from a shell that
    # ignores SIGINT for background jobs.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    tty = sys.stdout.isatty()
    console = Console(highlight=False, width=None if tty else max(shutil.get_terminal_size((140, 40)).columns, 140))
    demo = Demo(console)
    try:
        demo.run()
    except KeyboardInterrupt:
        console.print("\n[yellow]interrupted: stopping everything the demo started[/]")
        _stop_everything(console, demo.root)
        return EXIT_INTERRUPTED
    except StepFailed as failure:
        _report_failure(console, failure)
        _stop_everything(console, demo.root)
        return EXIT_FAILED
    except Exception as unexpected:  # noqa: BLE001 - a bug of the demo itself: say so, still stop everything
        console.print_exception()
        _report_failure(console, StepFailed("unexpected", f"{type(unexpected).__name__}: {unexpected}"))
        _stop_everything(console, demo.root)
        return EXIT_FAILED
    return 0


def _report_failure(console: Console, failure: StepFailed) -> None:
    console.print()
    console.print(f"[bold red]demo failed at step “{escape(failure.step)}”:[/] {escape(failure.message)}")
    for path in failure.logs:
        if path.exists():
            console.print(Rule(f"tail of {path}", style="red"))
            console.print(Text(log_tail(path, 40)))


def _stop_everything(console: Console, root: Path) -> None:
    # A second Ctrl-C must not leave half the processes running: stopping is not interruptible.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    stopped = stop(root, report=lambda name, seconds: console.print(f"  stopped {name} ({seconds:.1f}s)"))
    console.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")
