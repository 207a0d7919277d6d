"""The operator's Kubernetes client under the API server's flow control: a 429 is sent again after its
Retry-After (as client-go does), a lasting one ends in the typed error, and no other failure is retried."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client as k8s

from hub_operator.clients import kubernetes as kube
from hub_operator.clients.kubernetes import (
    KubernetesClient,
    KubernetesConflict,
    KubernetesThrottled,
    KubernetesUnavailable,
    _error,
)

THROTTLED = b'{"kind": "Status", "reason": "TooManyRequests", "message": "Too many requests, please try again later."}'


class ScriptedSend:
    """Stands in for ``KubernetesClient._send``: raises or answers as scripted, counting the attempts."""

    def __init__(self, *answers: Exception | dict[str, Any]) -> None:
        self.answers = list(answers)
        self.attempts = 0

    def __call__(self, *args: Any) -> dict[str, Any]:
        self.attempts += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> KubernetesClient:
    monkeypatch.setattr(kube, "THROTTLE_DELAY_CAP_SECONDS", 0.0)  # the delays themselves are tested below
    return KubernetesClient(k8s.ApiClient(k8s.Configuration()), threads=1)


def throttled() -> KubernetesThrottled:
    error = _error(429, "Too Many Requests", THROTTLED, "PATCH", "/apis/hubsante.io/v1alpha1/x")
    assert isinstance(error, KubernetesThrottled)
    error.retry_after = 0.0
    return error


async def test_a_throttled_request_is_sent_again_until_it_passes(client: KubernetesClient) -> None:
    send = ScriptedSend(throttled(), throttled(), {"ok": True})
    client._send = send  # type: ignore[method-assign]

    assert await client._request("PATCH", "/apis/hubsante.io/v1alpha1/x", body={}) == {"ok": True}
    assert send.attempts == 3


async def test_lasting_throttling_ends_in_the_typed_error(client: KubernetesClient) -> None:
    send = ScriptedSend(*(throttled() for _ in range(kube.THROTTLE_RETRIES + 1)))
    client._send = send  # type: ignore[method-assign]

    with pytest.raises(KubernetesThrottled, match="HTTP 429 TooManyRequests: Too many requests"):
        await client._request("GET", "/api/v1/namespaces/n/secrets/s")
    assert send.attempts == kube.THROTTLE_RETRIES + 1


@pytest.mark.parametrize("failure", [
    _error(409, "Conflict", b"{}", "POST", "/api/v1/namespaces/n/secrets"),
    _error(503, "Service Unavailable", b"{}", "GET", "/api/v1/namespaces/n/secrets/s"),
])
async def test_other_failures_are_not_retried_here(client: KubernetesClient, failure: Exception) -> None:
    send = ScriptedSend(failure)
    client._send = send  # type: ignore[method-assign]

    with pytest.raises(type(failure)):
        await client._request("GET", "/api/v1/namespaces/n/secrets/s")
    assert send.attempts == 1


@pytest.mark.parametrize(("header", "seconds"), [("1", 1.0), ("3", 3.0), (None, 1.0), ("soon", 1.0), ("600", 5.0)])
def test_retry_after_is_read_defaulted_and_capped(header: str | None, seconds: float) -> None:
    error = _error(429, "Too Many Requests", THROTTLED, "GET", "/x", retry_after=header)
    assert isinstance(error, KubernetesThrottled) and isinstance(error, KubernetesUnavailable)
    assert error.retry_after == seconds
    assert not isinstance(_error(409, "Conflict", b"{}", "GET", "/x"), KubernetesUnavailable)
    assert isinstance(_error(409, "Conflict", b"{}", "GET", "/x"), KubernetesConflict)
