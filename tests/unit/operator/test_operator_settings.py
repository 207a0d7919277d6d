"""Operator settings from the environment and the command line."""

from __future__ import annotations

import pytest
from hub_operator.settings import LogFormat, OperatorSettings, SettingsError, seconds


def test_defaults_are_safe() -> None:
    settings = OperatorSettings.load([], environ={})
    assert settings.clusterwide
    assert settings.drift_interval <= 10  # repairs land well within 30 s
    assert settings.ca_autogenerate and settings.leader_election
    assert settings.broker_secret_name == "hub-broker"
    assert settings.liveness_endpoint == "http://0.0.0.0:8080/healthz"


def test_environment_then_flags() -> None:
    environ = {
        "HUB_OPERATOR_NAMESPACES": "sandbox, preprod",
        "HUB_OPERATOR_NAMESPACE": "hub-system",
        "HUB_OPERATOR_DRIFT_INTERVAL": "5s",
        "HUB_OPERATOR_DELETION_GIVE_UP_AFTER": "2h",
        "HUB_OPERATOR_LOG_FORMAT": "JSON",
        "HUB_OPERATOR_CA_AUTOGENERATE": "false",
    }
    settings = OperatorSettings.load(["--drift-interval", "3", "--namespace", "prod"], environ=environ)
    assert settings.namespaces == ("prod",)
    assert settings.operator_namespace == "hub-system"
    assert settings.drift_interval == 3.0
    assert settings.deletion_give_up_after == 7200.0
    assert settings.log_format is LogFormat.JSON
    assert not settings.ca_autogenerate
    assert OperatorSettings.load([], environ=environ).namespaces == ("sandbox", "preprod")


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"HUB_OPERATOR_DRIFT_INTERVAL": "soon"}, "HUB_OPERATOR_DRIFT_INTERVAL"),
        ({"HUB_OPERATOR_DRIFT_INTERVAL": "0"}, "HUB_OPERATOR_DRIFT_INTERVAL"),
        ({"HUB_OPERATOR_NAMESPACES": "Not_A_Namespace"}, "HUB_OPERATOR_NAMESPACES"),
        ({"HUB_OPERATOR_METRICS_PORT": "8080"}, "HUB_OPERATOR_METRICS_PORT"),
        ({"HUB_OPERATOR_CA_AUTOGENERATE": "maybe"}, "HUB_OPERATOR_CA_AUTOGENERATE"),
        ({"HUB_OPERATOR_FROBNICATE": "1"}, "HUB_OPERATOR_FROBNICATE"),
        ({"HUB_OPERATOR_DISPATCHER_CERTIFICATE_RENEW_BEFORE": "100d"}, "HUB_OPERATOR_DISPATCHER_CERTIFICATE_RENEW_BEFORE"),
    ],
)
def test_bad_values_name_their_variable(environ: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError) as error:
        OperatorSettings.load([], environ=environ)
    assert named in str(error.value)


def test_durations() -> None:
    assert seconds("10") == 10 and seconds("1.5") == 1.5 and seconds("1h30m") == 5400 and seconds("500ms") == 0.5


def test_deletion_retries_are_capped_and_bounded() -> None:
    import datetime as dt

    from hub_operator.handlers.retry import (
        backoff,
        deletion_message,
        elapsed_since,
        should_give_up,
    )
    from hub_operator.status import Problem

    assert [backoff(r, cap=60) for r in (0, 1, 2, 5, 6, 30)] == [1, 2, 4, 32, 60, 60]
    settings = OperatorSettings.load([], environ={"HUB_OPERATOR_DELETION_GIVE_UP_AFTER": "1h"})
    start = dt.datetime(2030, 1, 1)  # kopf reports naive UTC
    now = dt.datetime(2030, 1, 1, 0, 30, tzinfo=dt.UTC)
    assert not should_give_up(settings, elapsed_since(start, now))
    assert should_give_up(settings, elapsed_since(start, now + dt.timedelta(hours=1)))
    never = OperatorSettings.load([], environ={"HUB_OPERATOR_DELETION_GIVE_UP_AFTER": "0"})
    assert not should_give_up(never, dt.timedelta(days=365))
    message = deletion_message("VHostVersion", "15-15-v1.5", Problem("BrokerUnreachable", "down"), settings,
                               dt.timedelta(seconds=90))
    assert "kubectl annotate vhostversion 15-15-v1.5 hubsante.io/skip-broker-cleanup=true" in message
    assert "down" in message and "3600s" in message
