"""``hub-dispatcher`` refuses to start, with exit code 2 and one line saying what to fix, when it cannot work."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub_dispatcher.main import EXIT_CANNOT_START, main
from tests.helpers.hubsante_models import bundle_dir


@pytest.fixture(autouse=True)
def no_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Settings come from the arguments only (a developer's HUB_DISPATCHER_* must not leak in)."""
    for name in list(os.environ):
        if name.startswith("HUB_DISPATCHER_"):
            monkeypatch.delenv(name)
    yield
    logging.getLogger().handlers.clear()  # main() configured JSON logging on the root logger


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def test_a_missing_vhost_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(capsys, "--bundle-dir", "/models/1.1")
    assert code == EXIT_CANNOT_START
    assert err == "hub-dispatcher: cannot start: vhost is required (HUB_DISPATCHER_VHOST or --vhost)\n"


def test_a_missing_bundle_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, err = run(capsys, "--vhost", "15-15_v1.5", "--bundle-dir", str(tmp_path / "nothing"), "--amqp-url",
                    "amqp://localhost")
    assert code == EXIT_CANNOT_START
    assert f"model bundle {tmp_path / 'nothing'}" in err and "is not a directory" in err


def test_an_unreadable_certificate_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, err = run(capsys, "--vhost", "15-15_v1.5", "--bundle-dir", "/m", "--tls-ca-file", str(tmp_path / "ca.crt"))
    assert code == EXIT_CANNOT_START and "tls_ca_file" in err and "cannot load the CA certificate" in err


def test_a_taken_http_port_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    if not bundle_dir("1.1").is_dir():
        pytest.skip("model bundle 1.1 not available")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, err = run(capsys, "--vhost", "15-15_v1.5", "--bundle-dir", str(bundle_dir("1.1")), "--amqp-url",
                        "amqp://127.0.0.1:1", "--metrics-host", "127.0.0.1", "--metrics-port", str(port))
    assert code == EXIT_CANNOT_START
    assert f"cannot serve /metrics, /healthz and /readyz on 127.0.0.1:{port}" in err
