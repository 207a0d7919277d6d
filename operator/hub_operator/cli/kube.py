"""Reading the hub's objects from the Kubernetes API: the three custom resources and Secrets of one namespace.

hubctl only reads (``onboard`` prints YAML for Git, it never creates anything), through the
:class:`HubReader` protocol so that commands can be tested against :class:`StaticHub`.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import urllib3
from kubernetes import client as k8s
from kubernetes import config as kube_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from hub_operator.api.base import GROUP, VERSION, KindInfo
from hub_operator.cli.errors import HubctlError

DEFAULT_NAMESPACE = "default"
#: Seconds per API call: hubctl is interactive, a hung API server must not hang it.
REQUEST_TIMEOUT = 15


class HubReader(Protocol):
    """What the commands read from a hub environment (one namespace)."""

    namespace: str

    @property
    def server(self) -> str:
        """Where the objects come from, for messages."""
        ...

    def list(self, kind: KindInfo) -> list[dict[str, Any]]: ...

    def get(self, kind: KindInfo, name: str) -> dict[str, Any] | None: ...

    def secret(self, name: str) -> dict[str, bytes] | None: ...


@dataclass(frozen=True)
class KubeTarget:
    """Where to find the API server: a kubeconfig (default ``$KUBECONFIG`` or ``~/.kube/config``, else the
    in-cluster service account), a context in it, and a namespace (default: the context's)."""

    kubeconfig: Path | None = None
    context: str | None = None
    namespace: str | None = None


def _context_namespace(target: KubeTarget) -> str | None:
    try:
        contexts, active = kube_config.list_kube_config_contexts(
            config_file=str(target.kubeconfig) if target.kubeconfig else None)
    except (ConfigException, OSError):
        return None
    chosen = next((c for c in contexts if c.get("name") == target.context), None) if target.context else active
    return ((chosen or {}).get("context") or {}).get("namespace")


def _api_client(target: KubeTarget) -> k8s.ApiClient:
    kubeconfig = target.kubeconfig
    if kubeconfig is not None and not kubeconfig.is_file():
        raise HubctlError(f"kubeconfig {kubeconfig} does not exist")
    default_exists = Path(os.environ.get("KUBECONFIG", "~/.kube/config").split(os.pathsep)[0]).expanduser().is_file()
    if kubeconfig is None and not default_exists and os.environ.get("KUBERNETES_SERVICE_HOST"):
        configuration = k8s.Configuration()
        kube_config.load_incluster_config(client_configuration=configuration)
        return k8s.ApiClient(configuration)
    try:
        return kube_config.new_client_from_config(
            config_file=str(kubeconfig) if kubeconfig else None, context=target.context, persist_config=False)
    except ConfigException as error:
        raise HubctlError(f"cannot use the kubeconfig: {error}",
                          hint="pass --kubeconfig FILE (and --context NAME), or set KUBECONFIG") from None


@dataclass
class KubernetesHub:
    """:class:`HubReader` over the Kubernetes API."""

    api: k8s.ApiClient
    namespace: str
    _custom: k8s.CustomObjectsApi = field(init=False, repr=False)
    _core: k8s.CoreV1Api = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._custom = k8s.CustomObjectsApi(self.api)
        self._core = k8s.CoreV1Api(self.api)

    @classmethod
    def connect(cls, target: KubeTarget) -> KubernetesHub:
        namespace = target.namespace or _context_namespace(target) or DEFAULT_NAMESPACE
        return cls(_api_client(target), namespace)

    @property
    def server(self) -> str:
        return str(self.api.configuration.host)

    def list(self, kind: KindInfo) -> list[dict[str, Any]]:
        answer = self._call(f"list {kind.plural}", self._custom.list_namespaced_custom_object,
                            GROUP, VERSION, self.namespace, kind.plural, kind=kind)
        items = answer.get("items", []) if isinstance(answer, dict) else []
        return sorted(items, key=lambda item: item.get("metadata", {}).get("name", ""))

    def get(self, kind: KindInfo, name: str) -> dict[str, Any] | None:
        try:
            answer = self._call(f"get {kind.singular} {name}", self._custom.get_namespaced_custom_object,
                                GROUP, VERSION, self.namespace, kind.plural, name, kind=kind)
        except _NotFound:
            return None
        return answer if isinstance(answer, dict) else None

    def secret(self, name: str) -> dict[str, bytes] | None:
        try:
            secret = self._call(f"get secret {name}", self._core.read_namespaced_secret, name, self.namespace)
        except _NotFound:
            return None
        return {key: base64.b64decode(value) for key, value in (secret.data or {}).items()}

    def _call(self, what: str, method: Any, *args: Any, kind: KindInfo | None = None) -> Any:
        try:
            return method(*args, _request_timeout=REQUEST_TIMEOUT)
        except ApiException as error:
            if error.status == 404:
                if kind is not None and "the server could not find the requested resource" in str(error.body).lower():
                    raise HubctlError(f"the API server at {self.server} does not know {kind.crd_name}",
                                      hint="install the hub-operator CRDs (crds/ or the Helm chart)") from None
                raise _NotFound() from None
            if error.status in (401, 403):
                raise HubctlError(f"{what} in namespace {self.namespace}: {error.reason} ({error.status})",
                                  hint="check your kubeconfig user and its RBAC permissions") from None
            raise HubctlError(f"{what} in namespace {self.namespace} failed: HTTP {error.status} {error.reason}") from None
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise HubctlError(f"cannot reach the Kubernetes API at {self.server}: {_root_cause(error)}",
                              hint="check --kubeconfig / --context, or your VPN / port-forward") from None


class _NotFound(Exception):
    pass


def _root_cause(error: BaseException) -> str:
    reason = getattr(error, "reason", None)
    return str(reason or error)


@dataclass
class StaticHub:
    """:class:`HubReader` over objects in memory (tests, and offline rendering of exported manifests)."""

    namespace: str = DEFAULT_NAMESPACE
    objects: Sequence[Mapping[str, Any]] = ()
    secrets: Mapping[str, Mapping[str, bytes]] = field(default_factory=dict)

    @property
    def server(self) -> str:
        return "memory"

    def list(self, kind: KindInfo) -> list[dict[str, Any]]:
        found = [dict(body) for body in self.objects if body.get("kind") == kind.kind]
        return sorted(found, key=lambda body: body["metadata"]["name"])

    def get(self, kind: KindInfo, name: str) -> dict[str, Any] | None:
        return next((body for body in self.list(kind) if body["metadata"]["name"] == name), None)

    def secret(self, name: str) -> dict[str, bytes] | None:
        found = self.secrets.get(name)
        return dict(found) if found is not None else None
