"""The only place where the operator's own code calls the Kubernetes API (kopf does its watching itself).

Thin on purpose: one method per call the operator needs, answers as plain JSON dicts, every failure mapped to a
typed :class:`KubernetesError`, no business logic, and no retries (kopf retries handlers) but one: a 429 of the
API server's flow control is sent again after its Retry-After, as client-go does (a handler retried by kopf
waits 60 s).  Every request goes through :meth:`KubernetesClient._request`, so :mod:`hub_operator.rbac` can
check the whole surface (see tests/unit/operator/test_operator_rbac.py).  The official client is synchronous:
requests run in a small thread pool of their own, so a slow API server never blocks the event loop nor kopf's
default executor.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Self
from urllib.parse import quote

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from hub_operator.api.base import GROUP, VERSION

FIELD_MANAGER: Final = "hub-operator"
APPLY_CONTENT_TYPE: Final = "application/apply-patch+yaml"
MERGE_CONTENT_TYPE: Final = "application/merge-patch+json"
DEFAULT_TIMEOUT: Final = 30.0
DEFAULT_THREADS: Final = 16
#: A 429 (the API server's priority and fairness: the request was not processed) is sent again this many times,
#: after the server's Retry-After capped at THROTTLE_DELAY_CAP_SECONDS (1 s when it gives none).
THROTTLE_RETRIES: Final = 8
THROTTLE_DELAY_CAP_SECONDS: Final = 5.0
CERT_MANAGER_GROUP: Final = "cert-manager.io"


class KubernetesError(Exception):
    """A Kubernetes API call that failed."""

    def __init__(self, status: int, reason: str, message: str, method: str, path: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status} {reason}: {message}".rstrip(": "))
        self.status = status
        self.reason = reason
        self.message = message
        self.method = method
        self.path = path


class KubernetesNotFound(KubernetesError):
    """404: the object, or its kind (e.g. cert-manager not installed), does not exist."""


class KubernetesConflict(KubernetesError):
    """409: the object already exists, or it changed since it was read (optimistic concurrency)."""


class KubernetesForbidden(KubernetesError):
    """403: the operator's RBAC does not allow this call (see hub_operator.rbac)."""


class KubernetesInvalid(KubernetesError):
    """422 / 400: the API server refused the object."""


class KubernetesUnavailable(KubernetesError):
    """No answer, or a 5xx / 429: try again later."""


class KubernetesThrottled(KubernetesUnavailable):
    """429: the API server's flow control turned the request away before processing it."""

    retry_after: float = 1.0


@dataclass(frozen=True)
class Resource:
    """A resource type as addressed in API paths (and in RBAC rules)."""

    group: str
    version: str
    plural: str

    def path(self, namespace: str | None, name: str | None = None, subresource: str | None = None) -> str:
        prefix = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        parts = [prefix]
        if namespace is not None:
            parts.append(f"namespaces/{quote(namespace, safe='')}")
        parts.append(self.plural)
        if name is not None:
            parts.append(quote(name, safe=""))
        if subresource is not None:
            parts.append(subresource)
        return "/".join(parts)


SECRETS: Final = Resource("", "v1", "secrets")
CONFIG_MAPS: Final = Resource("", "v1", "configmaps")
SERVICES: Final = Resource("", "v1", "services")
EVENTS: Final = Resource("", "v1", "events")
DEPLOYMENTS: Final = Resource("apps", "v1", "deployments")
POD_DISRUPTION_BUDGETS: Final = Resource("policy", "v1", "poddisruptionbudgets")
LEASES: Final = Resource("coordination.k8s.io", "v1", "leases")
CERTIFICATES: Final = Resource(CERT_MANAGER_GROUP, "v1", "certificates")
PERIMETERS: Final = Resource(GROUP, VERSION, "perimeters")
VHOSTVERSIONS: Final = Resource(GROUP, VERSION, "vhostversions")
HUBCLIENTS: Final = Resource(GROUP, VERSION, "hubclients")
HUB_RESOURCES: Final = {resource.plural: resource for resource in (PERIMETERS, VHOSTVERSIONS, HUBCLIENTS)}


@dataclass(frozen=True)
class ObjectReference:
    """What an Event is about."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> ObjectReference:
        metadata = body.get("metadata") or {}
        return cls(body.get("apiVersion", ""), body.get("kind", ""), metadata.get("namespace", ""),
                   metadata.get("name", ""), metadata.get("uid", ""))


def load_api_client(kubeconfig: Path | None = None, *, pool_size: int = DEFAULT_THREADS) -> k8s.ApiClient:
    """An API client from a kubeconfig file, else the in-cluster service account, else $KUBECONFIG."""
    configuration = k8s.Configuration()
    if kubeconfig is not None:
        k8s_config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    else:
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)
        except k8s_config.ConfigException:
            k8s_config.load_kube_config(client_configuration=configuration)
    configuration.connection_pool_maxsize = pool_size
    configuration.retries = False  # one attempt per call: kopf and the reconcilers decide when to retry
    return k8s.ApiClient(configuration)


class KubernetesClient:
    """Async facade over the official (synchronous) client; use ``async with`` or :meth:`close`."""

    def __init__(
        self,
        api_client: k8s.ApiClient,
        *,
        threads: int = DEFAULT_THREADS,
        timeout: float = DEFAULT_TIMEOUT,
        field_manager: str = FIELD_MANAGER,
    ) -> None:
        self._api = api_client
        self._executor = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="kubernetes")
        self._timeout = timeout
        self.field_manager = field_manager

    def connection_info(self) -> Any:
        """The same credentials for kopf's own API client (its ``@kopf.on.login``)."""
        import kopf

        configuration = self._api.configuration
        header = configuration.get_api_key_with_prefix("BearerToken") or configuration.get_api_key_with_prefix(
            "authorization"
        )
        scheme, token = None, None
        if header:
            parts = header.split(" ", 1)
            scheme, token = (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])
        return kopf.ConnectionInfo(
            server=configuration.host,
            ca_path=configuration.ssl_ca_cert,
            insecure=not configuration.verify_ssl,
            username=configuration.username or None,
            password=configuration.password or None,
            scheme=scheme,
            token=token,
            certificate_path=configuration.cert_file,
            private_key_path=configuration.key_file,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._api.close()

    # -- transport ------------------------------------------------------------------------------------------
    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        for attempt in range(THROTTLE_RETRIES + 1):
            try:
                return await loop.run_in_executor(
                    self._executor, self._send, method, path, body, dict(query or {}), content_type
                )
            except KubernetesThrottled as throttled:
                if attempt == THROTTLE_RETRIES:
                    raise
                await asyncio.sleep(throttled.retry_after)
        raise AssertionError("unreachable")

    def _send(
        self, method: str, path: str, body: Any, query: dict[str, str], content_type: str
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        try:
            _, url, headers, serialized, _ = self._api.param_serialize(
                method, path, query_params=list(query.items()) or None, header_params=headers, body=body,
                auth_settings=["BearerToken"],
            )
            response = self._api.call_api(method, url, header_params=headers, body=serialized,
                                          _request_timeout=self._timeout)
            raw = response.read()
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise KubernetesUnavailable(0, type(error).__name__, str(error), method, path) from error
        except k8s.ApiException as error:  # raised by some client versions for error statuses
            raise _error(error.status or 0, error.reason or "", error.body or b"", method, path,
                         retry_after=(error.headers or {}).get("Retry-After")) from error
        if response.status >= 400:
            raise _error(response.status, response.reason or "", raw, method, path,
                         retry_after=response.getheader("Retry-After"))
        if not raw:
            return {}
        document = json.loads(raw)
        return document if isinstance(document, dict) else {"items": document}

    async def _get(self, resource: Resource, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self._request("GET", resource.path(namespace, name))
        except KubernetesNotFound:
            return None

    async def _apply(self, resource: Resource, body: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply: the operator owns exactly the fields it renders; force takes them back."""
        metadata = body.get("metadata") or {}
        return await self._request(
            "PATCH",
            resource.path(metadata.get("namespace"), metadata["name"]),
            body=dict(body),
            query={"fieldManager": self.field_manager, "force": "true"},
            content_type=APPLY_CONTENT_TYPE,
        )

    async def _delete(self, resource: Resource, namespace: str, name: str) -> bool:
        try:
            await self._request("DELETE", resource.path(namespace, name))
        except KubernetesNotFound:
            return False
        return True

    # -- secrets --------------------------------------------------------------------------------------------
    async def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._get(SECRETS, namespace, name)

    async def create_secret(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Raises :class:`KubernetesConflict` when it already exists."""
        return await self._request("POST", SECRETS.path(namespace), body=dict(body))

    async def replace_secret(self, namespace: str, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Raises :class:`KubernetesConflict` when ``metadata.resourceVersion`` is stale."""
        return await self._request("PUT", SECRETS.path(namespace, name), body=dict(body))

    # -- config maps ------------------------------------------------------------------------------------------
    async def get_config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._get(CONFIG_MAPS, namespace, name)

    async def apply_config_map(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self._apply(CONFIG_MAPS, body)

    # -- dispatcher workload ----------------------------------------------------------------------------------
    async def get_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._get(DEPLOYMENTS, namespace, name)

    async def apply_deployment(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self._apply(DEPLOYMENTS, body)

    async def apply_service(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self._apply(SERVICES, body)

    async def apply_pod_disruption_budget(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self._apply(POD_DISRUPTION_BUDGETS, body)

    async def delete_pod_disruption_budget(self, namespace: str, name: str) -> bool:
        return await self._delete(POD_DISRUPTION_BUDGETS, namespace, name)

    # -- cert-manager -----------------------------------------------------------------------------------------
    async def get_certificate(self, namespace: str, name: str) -> dict[str, Any] | None:
        """None when the Certificate is absent; :class:`KubernetesNotFound` escapes only from apply."""
        return await self._get(CERTIFICATES, namespace, name)

    async def apply_certificate(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Raises :class:`KubernetesNotFound` when cert-manager's CRDs are not installed."""
        return await self._apply(CERTIFICATES, body)

    # -- the hub's own resources ------------------------------------------------------------------------------
    async def patch_status(self, plural: str, namespace: str, name: str, status: Mapping[str, Any]) -> dict[str, Any]:
        """Merge-patch ``status`` of a Perimeter, VHostVersion or HubClient (lists are replaced whole)."""
        resource = HUB_RESOURCES[plural]
        return await self._request(
            "PATCH", resource.path(namespace, name, "status"), body={"status": dict(status)},
            content_type=MERGE_CONTENT_TYPE,
        )

    # -- events -----------------------------------------------------------------------------------------------
    async def create_event(
        self, involved: ObjectReference, *, type: str, reason: str, message: str, component: str = FIELD_MANAGER
    ) -> dict[str, Any]:
        """A core/v1 Event (what ``kubectl describe`` shows)."""
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{involved.name}.{uuid.uuid4().hex[:16]}", "namespace": involved.namespace},
            "involvedObject": {
                "apiVersion": involved.api_version,
                "kind": involved.kind,
                "namespace": involved.namespace,
                "name": involved.name,
                "uid": involved.uid,
            },
            "type": type,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": component},
            "reportingComponent": component,
            "reportingInstance": component,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        return await self._request("POST", EVENTS.path(involved.namespace), body=body)

    # -- leader election --------------------------------------------------------------------------------------
    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._get(LEASES, namespace, name)

    async def create_lease(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self._request("POST", LEASES.path(namespace), body=dict(body))

    async def replace_lease(self, namespace: str, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self._request("PUT", LEASES.path(namespace, name), body=dict(body))


def _error(status: int, reason: str, raw: bytes | str, method: str, path: str,
           retry_after: str | None = None) -> KubernetesError:
    message = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    try:
        document = json.loads(message)
        if isinstance(document, dict):
            message = str(document.get("message") or message)
            reason = str(document.get("reason") or reason)
    except ValueError:
        pass
    if status == 429:
        throttled = KubernetesThrottled(status, reason, message[:2000], method, path)
        throttled.retry_after = _retry_after_seconds(retry_after)
        return throttled
    kind: type[KubernetesError]
    if status == 404:
        kind = KubernetesNotFound
    elif status == 409:
        kind = KubernetesConflict
    elif status in (401, 403):
        kind = KubernetesForbidden
    elif status in (400, 422):
        kind = KubernetesInvalid
    elif status >= 500 or status == 0:
        kind = KubernetesUnavailable
    else:
        kind = KubernetesError
    return kind(status, reason, message[:2000], method, path)


def _retry_after_seconds(header: str | None) -> float:
    """Retry-After in seconds (the API server sends whole seconds), 1 s when absent or unreadable, capped."""
    try:
        seconds = float(header) if header else 1.0
    except ValueError:
        seconds = 1.0
    return min(max(seconds, 0.0), THROTTLE_DELAY_CAP_SECONDS)
