"""Replica decisions: ceil(depth / target) within [min, max], scaling up at once and down by half at most."""

from __future__ import annotations

import pytest
from hub_operator.api.dispatching import Autoscaling, DispatcherSettings
from hub_operator.builders.scaling import (
    InvalidScalingInput,
    desired_replicas,
    dispatcher_replicas,
)

BOUNDS_1_10 = Autoscaling(min_replicas=1, max_replicas=10, target_queue_depth=10)
BOUNDS_2_6 = Autoscaling(min_replicas=2, max_replicas=6, target_queue_depth=100)


@pytest.mark.parametrize(("autoscaling", "depth", "current", "expected"), [
    # idle: the minimum
    (BOUNDS_1_10, 0, 1, 1),
    (BOUNDS_2_6, 0, 2, 2),
    # one dispatcher per target messages, rounded up
    (BOUNDS_1_10, 1, 1, 1),
    (BOUNDS_1_10, 10, 1, 1),
    (BOUNDS_1_10, 11, 1, 2),
    (BOUNDS_1_10, 35, 2, 4),
    # scale up at once, capped by the maximum
    (BOUNDS_1_10, 95, 1, 10),
    (BOUNDS_1_10, 100_000, 3, 10),
    (BOUNDS_2_6, 250, 2, 3),
    # scale down by half at most per step
    (BOUNDS_1_10, 0, 10, 5),
    (BOUNDS_1_10, 0, 5, 3),
    (BOUNDS_1_10, 0, 3, 2),
    (BOUNDS_1_10, 0, 2, 1),
    (BOUNDS_1_10, 30, 10, 5),
    (BOUNDS_1_10, 70, 10, 7),
    # the damping never goes below the minimum ...
    (BOUNDS_2_6, 0, 3, 2),
    # ... and the bounds beat it: replicas above a lowered maximum go straight to it
    (BOUNDS_2_6, 0, 20, 6),
    (BOUNDS_2_6, 1000, 20, 6),
    # nothing running (new Deployment, or paused before autoscaling): at least the minimum
    (BOUNDS_2_6, 0, 0, 2),
    (BOUNDS_1_10, 42, 0, 5),
])
def test_desired_replicas(autoscaling: Autoscaling, depth: int, current: int, expected: int) -> None:
    assert desired_replicas(autoscaling, depth, current) == expected


def test_an_idle_vhost_reaches_its_minimum_in_logarithmic_steps() -> None:
    autoscaling = Autoscaling(min_replicas=1, max_replicas=20)
    steps, replicas = [], 20
    while replicas > 1:
        replicas = desired_replicas(autoscaling, 0, replicas)
        steps.append(replicas)
    assert steps == [10, 5, 3, 2, 1]


@pytest.mark.parametrize(("depth", "current", "message"), [
    (-1, 1, "queue_depth must be a non-negative integer, got -1"),
    (1, -2, "current must be a non-negative integer, got -2"),
    (2.5, 1, "queue_depth must be a non-negative integer, got 2.5"),
    (True, 1, "queue_depth must be a non-negative integer, got True"),
])
def test_bad_input(depth: object, current: object, message: str) -> None:
    with pytest.raises(InvalidScalingInput, match=message):
        desired_replicas(BOUNDS_1_10, depth, current)  # type: ignore[arg-type]


@pytest.mark.parametrize(("settings", "depth", "current", "expected"), [
    (DispatcherSettings(), 500, 1, 1),  # neither replicas nor autoscaling: the default
    (DispatcherSettings(replicas=0), 500, 3, 0),  # paused: depth is ignored
    (DispatcherSettings(replicas=4), None, None, 4),
    (DispatcherSettings(autoscaling=BOUNDS_2_6), 450, 2, 5),
    (DispatcherSettings(autoscaling=BOUNDS_2_6), None, 4, 4),  # depth unknown: keep what runs
    (DispatcherSettings(autoscaling=BOUNDS_2_6), None, 9, 6),  # ... within the bounds
    (DispatcherSettings(autoscaling=BOUNDS_2_6), None, None, 2),  # nothing yet, nothing known: the minimum
    (DispatcherSettings(autoscaling=BOUNDS_2_6), 0, None, 2),
])
def test_dispatcher_replicas(settings: DispatcherSettings, depth: int | None, current: int | None, expected: int) -> None:
    assert dispatcher_replicas(settings, depth, current) == expected


def test_dispatcher_replicas_refuses_a_negative_current() -> None:
    with pytest.raises(InvalidScalingInput, match="current must be a non-negative integer"):
        dispatcher_replicas(DispatcherSettings(autoscaling=BOUNDS_2_6), None, -1)
