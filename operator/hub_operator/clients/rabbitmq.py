"""A thin async client of the RabbitMQ management HTTP API (one pooled ``httpx.AsyncClient``).

Thin on purpose: one method per API call the operator needs, every failure mapped to a typed
:class:`~.broker_api.BrokerError`, no retries (kopf retries handlers) and no business logic
(that lives in :mod:`hub_operator.broker_sync`).  Behaviour measured on RabbitMQ 3.10 is noted where it matters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from .broker_api import (
    BrokerAccessRefused,
    BrokerAuthenticationFailed,
    BrokerHealth,
    BrokerNotFound,
    BrokerOverview,
    BrokerRejected,
    BrokerUnreachable,
    ConnectionInfo,
    QueueDepth,
)

#: Statuses meaning "the node is not serving right now" rather than "your request is wrong".
_UNAVAILABLE = frozenset({502, 503, 504})
_CONNECTION_COLUMNS = "name,user,vhost"
_DEPTH_COLUMNS = "name,messages_ready,messages_unacknowledged,consumers"


def api_path(*segments: str) -> str:
    """``/api/<segments>`` with every segment percent-encoded (vhost ``/`` is ``%2F``, ``#`` is ``%23``)."""
    return "/api/" + "/".join(quote(segment, safe="") for segment in segments)


@dataclass(frozen=True)
class ManagementSettings:
    url: str
    username: str
    password: str = ""
    #: Short: an unreachable broker must fail fast (deletion must not hang).
    connect_timeout: float = 3.0
    request_timeout: float = 15.0
    #: A bulk import of thousands of objects takes seconds on a busy node.
    import_timeout: float = 120.0
    #: Deleting a vhost deletes each of its queues before the broker answers: measured 20-50 s for a vhost of
    #: 2,400 queues on a busy 2-core node, where the request timeout cut it short and the deletion was retried.
    vhost_deletion_timeout: float = 120.0
    max_connections: int = 16
    #: TLS verification of an https management endpoint: True, False or a CA bundle path.
    verify: bool | str = True


class RabbitMQManagementClient:
    """Implements :class:`~.broker_api.BrokerManagement` over HTTP; use as an async context manager."""

    def __init__(self, settings: ManagementSettings, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._settings = settings
        self._http = httpx.AsyncClient(
            base_url=settings.url.rstrip("/"),
            auth=(settings.username, settings.password),
            timeout=httpx.Timeout(settings.request_timeout, connect=settings.connect_timeout),
            limits=httpx.Limits(
                max_connections=settings.max_connections, max_keepalive_connections=settings.max_connections
            ),
            verify=settings.verify,
            transport=transport,
            headers={"accept": "application/json"},
        )

    @property
    def username(self) -> str:
        return self._settings.username

    @property
    def url(self) -> str:
        return self._settings.url

    async def __aenter__(self) -> RabbitMQManagementClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- transport ------------------------------------------------------------------------------------------
    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        accept: Iterable[int] = (),
    ) -> httpx.Response:
        """Send one request; error statuses (except those in ``accept``) become typed errors."""
        content = None if body is None else orjson.dumps(body)
        request_headers = dict(headers or {})
        if content is not None:
            request_headers["content-type"] = "application/json"
        try:
            response = await self._http.request(
                method,
                path,
                content=content,
                params=params,
                headers=request_headers,
                timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
            )
        except httpx.TransportError as error:
            cause = f"{type(error).__name__}: {error}".rstrip(": ")
            raise BrokerUnreachable(self.url, cause) from error
        status = response.status_code
        if status < 400 or status in set(accept):
            return response
        reason = _reason(response)
        if status == 401:
            # 3.10 answers 401 both for bad or missing credentials ("Login failed", empty body) and for an
            # authenticated user lacking vhost access ("Access refused."): only the former is an authentication
            # failure.
            if not response.content.strip() or "login" in reason.lower():
                raise BrokerAuthenticationFailed(self.url, self.username)
            raise BrokerAccessRefused(status, reason, path, method)
        if status == 404:
            raise BrokerNotFound(status, reason, path, method)
        if status in _UNAVAILABLE:
            raise BrokerUnreachable(self.url, f"HTTP {status} on {method} {path}: {reason}")
        raise BrokerRejected(status, reason, path, method)

    async def _get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        response = await self._request("GET", path, params=params)
        return orjson.loads(response.content)

    async def _delete(
        self, path: str, headers: Mapping[str, str] | None = None, timeout: float | None = None
    ) -> bool:
        response = await self._request("DELETE", path, headers=headers, accept=(404,), timeout=timeout)
        return response.status_code != 404

    # -- definitions ----------------------------------------------------------------------------------------
    async def export_definitions(self, vhost: str | None = None) -> dict[str, Any]:
        path = api_path("definitions") if vhost is None else api_path("definitions", vhost)
        try:
            document = await self._get(path)
        except BrokerRejected as error:
            if error.status == 400 and "vhost_not_found" in error.reason:  # 3.10 says 400, not 404, here
                raise BrokerNotFound(404, error.reason, path) from error
            raise
        if not isinstance(document, dict):
            raise BrokerRejected(200, "definitions export is not a JSON object", path)
        return document

    async def import_definitions(self, definitions: Mapping[str, Any]) -> None:
        await self._request(
            "POST", api_path("definitions"), body=dict(definitions), timeout=self._settings.import_timeout
        )

    async def list_users(self) -> list[dict[str, Any]]:
        return list(await self._get(api_path("users")))

    async def list_permissions(self, vhost: str) -> list[dict[str, Any]]:
        return list(await self._get(api_path("vhosts", vhost, "permissions")))

    async def list_topic_permissions(self, vhost: str) -> list[dict[str, Any]]:
        return list(await self._get(api_path("vhosts", vhost, "topic-permissions")))

    # -- single objects -------------------------------------------------------------------------------------
    async def get_vhost(self, vhost: str) -> dict[str, Any] | None:
        try:
            document = await self._get(api_path("vhosts", vhost))
        except BrokerNotFound:
            return None
        return document if isinstance(document, dict) else None

    async def create_vhost(self, vhost: str, description: str = "") -> bool:
        response = await self._request("PUT", api_path("vhosts", vhost), body={"description": description})
        return response.status_code == 201  # 204: it already existed

    async def delete_vhost(self, vhost: str) -> bool:
        return await self._delete(api_path("vhosts", vhost), timeout=self._settings.vhost_deletion_timeout)

    async def delete_queue(self, vhost: str, queue: str) -> bool:
        return await self._delete(api_path("queues", vhost, queue))

    async def delete_exchange(self, vhost: str, exchange: str) -> bool:
        return await self._delete(api_path("exchanges", vhost, exchange))

    async def delete_user(self, username: str) -> bool:
        return await self._delete(api_path("users", username))

    async def delete_permission(self, vhost: str, username: str) -> bool:
        return await self._delete(api_path("permissions", vhost, username))

    async def delete_topic_permissions(self, vhost: str, username: str) -> bool:
        return await self._delete(api_path("topic-permissions", vhost, username))

    async def unbind(
        self,
        vhost: str,
        source: str,
        destination: str,
        routing_key: str,
        arguments: Mapping[str, Any] | None = None,
        destination_type: str = "queue",
    ) -> bool:
        # A binding is addressed by its "properties key", which RabbitMQ derives from the routing key and a hash
        # of the arguments: read it from the listing instead of re-implementing that encoding.
        letter = "q" if destination_type == "queue" else "e"
        listing = api_path("bindings", vhost, "e", source, letter, destination)
        try:
            bindings = await self._get(listing)
        except BrokerNotFound:
            return False
        wanted_arguments = dict(arguments or {})
        deleted = False
        for binding in bindings:
            if binding.get("routing_key") == routing_key and (binding.get("arguments") or {}) == wanted_arguments:
                deleted |= await self._delete(
                    api_path("bindings", vhost, "e", source, letter, destination, binding["properties_key"])
                )
        return deleted

    # -- connections ----------------------------------------------------------------------------------------
    async def list_connections(self, *, vhost: str | None = None, username: str | None = None) -> list[ConnectionInfo]:
        if username is not None:
            path = api_path("connections", "username", username)
        elif vhost is not None:
            path = api_path("vhosts", vhost, "connections")
        else:
            path = api_path("connections")
        try:
            rows = await self._get(path, params={"columns": _CONNECTION_COLUMNS})
        except BrokerNotFound:
            return []
        connections = [ConnectionInfo(row["name"], row.get("user", ""), row.get("vhost", "")) for row in rows]
        return [
            c for c in connections if (vhost is None or c.vhost == vhost) and (username is None or c.user == username)
        ]

    async def close_connection(self, name: str, reason: str) -> bool:
        return await self._delete(api_path("connections", name), headers={"X-Reason": reason})

    async def close_user_connections(self, username: str, reason: str) -> None:
        await self._request("DELETE", api_path("connections", "username", username), headers={"X-Reason": reason})

    # -- monitoring -----------------------------------------------------------------------------------------
    async def queue_depths(self, vhost: str) -> list[QueueDepth]:
        rows = await self._get(api_path("queues", vhost), params={"columns": _DEPTH_COLUMNS})
        # A queue created a moment ago has no statistics yet: count it as empty.
        return [
            QueueDepth(
                name=row["name"],
                ready=int(row.get("messages_ready") or 0),
                unacknowledged=int(row.get("messages_unacknowledged") or 0),
                consumers=int(row.get("consumers") or 0),
            )
            for row in rows
        ]

    async def overview(self) -> BrokerOverview:
        data = await self._get(api_path("overview"))
        return BrokerOverview(
            rabbitmq_version=str(data.get("rabbitmq_version", "")),
            cluster_name=str(data.get("cluster_name", "")),
            node=str(data.get("node", "")),
        )

    async def check_health(self) -> BrokerHealth:
        failures: list[str] = []
        for check in ("alarms", "virtual-hosts"):
            # A failed check answers 503 with a reason: that is a finding, not an unreachable broker.
            response = await self._request("GET", api_path("health", "checks", check), accept=(503,))
            if response.status_code == 503:
                failures.append(f"{check}: {_reason(response)}")
        return BrokerHealth(tuple(failures))


def _reason(response: httpx.Response) -> str:
    """The API's ``reason`` as readable text (3.10 sometimes sends Erlang terms: lists of char codes)."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.text.strip()[:500] or response.reason_phrase
    if isinstance(body, dict):
        reason = body.get("reason", body.get("error", ""))
        return _render_term(reason)
    return str(body)[:500]


def _render_term(term: Any) -> str:
    if isinstance(term, str):
        return term
    if isinstance(term, list):
        if term and all(isinstance(c, int) and 0 <= c < 0x110000 for c in term):
            return "".join(chr(c) for c in term)
        return " ".join(_render_term(part) for part in term)
    return str(term)
