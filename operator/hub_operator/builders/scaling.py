"""How many dispatchers a vhost runs: the fixed count, or a decision from its ``dispatch`` queue depth (pure).

The operator scales dispatchers itself rather than through an HPA: it already reads the queue depth from the
RabbitMQ management API, so no metrics adapter (KEDA, prometheus-adapter) has to be installed.  On every
scaling tick it calls :func:`dispatcher_replicas` and writes the result into the Deployment it renders.

Policy of :func:`desired_replicas`:

* wanted = ceil(depth / targetQueueDepth): one dispatcher per ``targetQueueDepth`` waiting messages;
* scale up at once: waiting messages are late emergency messages;
* scale down by at most half per tick (``ceil(current / 2)`` at least): a queue drained by N dispatchers
  looks empty while they work, and dropping straight to the minimum would make the next burst wait for
  pods to start and bundles to compile.  With a 30-second tick, 20 dispatchers reach 1 in five ticks;
* the bounds win over the damping: the result is always within [minReplicas, maxReplicas], so lowering
  ``maxReplicas`` takes effect on the next tick.
"""

from __future__ import annotations

from hub_operator.api.dispatching import Autoscaling, DispatcherSettings


class InvalidScalingInput(ValueError):
    """A queue depth or replica count that cannot be scaled on (negative, or not an integer)."""


def _check_count(what: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidScalingInput(f"{what} must be a non-negative integer, got {value!r}")
    return value


def desired_replicas(autoscaling: Autoscaling, queue_depth: int, current: int) -> int:
    """Dispatchers to run next given the ``dispatch`` queue depth and the replicas running now."""
    depth = _check_count("queue_depth", queue_depth)
    running = _check_count("current", current)
    wanted = -(-depth // autoscaling.target_queue_depth)
    if wanted < running:
        wanted = max(wanted, -(-running // 2))
    return min(max(wanted, autoscaling.min_replicas), autoscaling.max_replicas)


def dispatcher_replicas(settings: DispatcherSettings, queue_depth: int | None, current: int | None) -> int:
    """Replicas for a vhost's effective dispatcher settings (``EffectiveSettings.dispatcher``).

    ``queue_depth`` None means unknown (broker unreachable): an autoscaled vhost then keeps what runs,
    within its bounds, rather than scaling on a guess.  ``current`` None means no Deployment yet.
    """
    fixed = settings.effective_replicas
    if fixed is not None:
        return fixed
    autoscaling = settings.autoscaling
    assert autoscaling is not None  # effective_replicas is None only when autoscaling decides
    running = 0 if current is None else _check_count("current", current)
    if queue_depth is None:
        return min(max(running, autoscaling.min_replicas), autoscaling.max_replicas)
    return desired_replicas(autoscaling, queue_depth, running)
