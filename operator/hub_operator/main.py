"""``hub-operator``: parse the settings, take the leader Lease, run kopf embedded, stop cleanly.

Exit codes: 0 stopped (SIGTERM/SIGINT), 1 unexpected failure, 2 invalid settings, 3 leadership lost (another
operator may be acting: restarting is the safe answer), 4 the Kubernetes API cannot be configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence

import kopf

from hub_operator import logs
from hub_operator.clients.kubernetes import KubernetesClient, load_api_client
from hub_operator.context import OperatorContext
from hub_operator.handlers import register
from hub_operator.leadership import LeaseElector
from hub_operator.metrics import Metrics
from hub_operator.settings import OperatorSettings, SettingsError

log = logging.getLogger("hub_operator")

EXIT_STOPPED = 0
EXIT_FAILED = 1
EXIT_BAD_SETTINGS = 2
EXIT_LEADERSHIP_LOST = 3
EXIT_NO_KUBERNETES = 4
#: How long kopf may take to finish the handlers in progress once asked to stop.
STOP_GRACE_SECONDS = 20.0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = OperatorSettings.load(sys.argv[1:] if argv is None else argv)
    except SettingsError as error:
        print(f"hub-operator: invalid settings: {error}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    logs.configure(settings.log_format, settings.log_level)
    try:
        return asyncio.run(run(settings))
    except KeyboardInterrupt:
        return EXIT_STOPPED


async def run(settings: OperatorSettings) -> int:
    log.info("starting hub-operator", extra={"settings": settings.describe()})
    try:
        api_client = load_api_client(settings.kubeconfig)
    except Exception as error:  # noqa: BLE001 - any configuration problem is reported the same way
        log.error("cannot configure the Kubernetes API client: %s", error)
        return EXIT_NO_KUBERNETES
    kube = KubernetesClient(api_client)
    metrics = Metrics()
    if settings.metrics_port:
        metrics.serve(settings.metrics_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    elector = None
    if settings.leader_election:
        elector = LeaseElector(kube, namespace=settings.operator_namespace, name=settings.lease_name,
                               identity=settings.identity, duration=settings.lease_duration)
        if not await elector.acquire(stop):
            kube.close()
            return EXIT_STOPPED
        metrics.leader.set(1)

    context = OperatorContext(settings, kube, metrics=metrics)
    registry = kopf.OperatorRegistry()
    register(registry, context)
    lost = asyncio.Event()
    operator = asyncio.create_task(
        kopf.operator(
            registry=registry,
            clusterwide=settings.clusterwide,
            namespaces=list(settings.namespaces),
            standalone=True,
            liveness_endpoint=settings.liveness_endpoint,
        ),
        name="kopf",
    )
    holding = asyncio.create_task(elector.hold(lost), name="lease") if elector else None
    waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(lost.wait()), operator]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters[:2]:
            waiter.cancel()
        if holding is not None:
            holding.cancel()
        # kopf stops itself on SIGTERM/SIGINT (it installs its own signal handlers once started); otherwise
        # (leadership lost, or a signal before kopf started) it is cancelled, which stops its handlers at once.
        # No stop_flag is given to kopf: its waiter task for the flag would hold the shutdown for 5 s.
        if not operator.done():
            operator.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(operator, timeout=STOP_GRACE_SECONDS)
        await context.close()
        if elector is not None and not lost.is_set():
            await elector.release()
        metrics.leader.set(0)
        kube.close()
    if lost.is_set():
        log.error("stopped: leadership lost")
        return EXIT_LEADERSHIP_LOST
    failure = operator.exception() if operator.done() and not operator.cancelled() else None
    if failure is not None:
        log.error("kopf stopped with an error", exc_info=failure)
        return EXIT_FAILED
    log.info("stopped")
    return EXIT_STOPPED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
