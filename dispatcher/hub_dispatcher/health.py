"""A tiny HTTP server on the worker's own event loop: ``/healthz``, ``/readyz`` and ``/metrics`` on one port.

On the event loop on purpose: if the loop is stuck, liveness stops answering and Kubernetes restarts the
pod.  ``/healthz`` = the process serves; ``/readyz`` = connected and consuming every input queue (not while
reconnecting or draining); ``/metrics`` = Prometheus text format.  Only GET and HEAD; one request per
connection (probes and scrapers do not need keep-alive).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Final

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)

#: (ready, why not): the worker's readiness.
Readiness = Callable[[], tuple[bool, str]]

_REQUEST_TIMEOUT: Final = 5.0
_MAX_HEADER_LINES: Final = 100
_MAX_LINE: Final = 8192
_TEXT: Final = "text/plain; charset=utf-8"


class HealthServer:
    def __init__(self, host: str, port: int, *, readiness: Readiness, registry: CollectorRegistry) -> None:
        self.host = host
        self.requested_port = port
        self.readiness = readiness
        self.registry = registry
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Raises OSError (e.g. port in use): a start-up error."""
        self._server = await asyncio.start_server(self._serve, self.host, self.requested_port, limit=_MAX_LINE)

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("health server not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            method, path = await asyncio.wait_for(_read_request(reader), _REQUEST_TIMEOUT)
            status, content_type, body = self.respond(method, path)
            head = (f"HTTP/1.1 {status.value} {status.phrase}\r\nContent-Type: {content_type}\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
            writer.write(head if method == "HEAD" else head + body)
            await writer.drain()
        except (TimeoutError, BadRequest, asyncio.LimitOverrunError, ValueError, ConnectionError) as error:
            log.debug("health request refused: %s", error)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def respond(self, method: str, path: str) -> tuple[HTTPStatus, str, bytes]:
        if method not in ("GET", "HEAD"):
            return HTTPStatus.METHOD_NOT_ALLOWED, _TEXT, b"only GET and HEAD\n"
        route = path.partition("?")[0]
        if route == "/healthz":
            return HTTPStatus.OK, _TEXT, b"ok\n"
        if route == "/readyz":
            ready, why_not = self.readiness()
            if ready:
                return HTTPStatus.OK, _TEXT, b"ready\n"
            return HTTPStatus.SERVICE_UNAVAILABLE, _TEXT, f"not ready: {why_not}\n".encode()
        if route == "/metrics":
            return HTTPStatus.OK, CONTENT_TYPE_LATEST, generate_latest(self.registry)
        return HTTPStatus.NOT_FOUND, _TEXT, b"try /healthz, /readyz or /metrics\n"


class BadRequest(ValueError):
    pass


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str]:
    request_line = (await reader.readline()).decode("latin-1").strip()
    parts = request_line.split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise BadRequest(f"malformed request line {request_line[:80]!r}")
    for _ in range(_MAX_HEADER_LINES):
        if (await reader.readline()) in (b"\r\n", b"\n", b""):
            return parts[0], parts[1]
    raise BadRequest("too many header lines")
