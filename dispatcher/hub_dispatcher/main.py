"""``hub-dispatcher``: the dispatcher of one vhost.

Exit codes: 0 after a stop (SIGTERM/SIGINT) once in-flight work is drained; 2 when it cannot start (bad
settings, a model bundle that does not load, TLS files that do not load, the HTTP port taken), with one line
on stderr saying what to fix.  A broker that is down is not a start-up error: the worker retries with
backoff and ``/readyz`` says why it is not ready.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Sequence
from typing import Final

from hub_dispatcher.amqp import BrokerEndpoint, broker_endpoint
from hub_dispatcher.bundle import BundleError
from hub_dispatcher.health import HealthServer
from hub_dispatcher.logs import configure_logging, skip_unused_record_fields
from hub_dispatcher.metrics import DispatcherMetrics
from hub_dispatcher.pipeline import Pipeline
from hub_dispatcher.settings import DispatcherSettings, SettingsError
from hub_dispatcher.stages import STAGES
from hub_dispatcher.worker import Worker

log = logging.getLogger("hub_dispatcher")

EXIT_STOPPED = 0
EXIT_CANNOT_START = 2
#: Net allocations of container objects between two young-generation collections (CPython's default: 700).
#: A message allocates a few hundred dicts and lists (its parsed body) and the window of deliveries in flight
#: keeps thousands of frames, futures and tasks alive: at 700 the young generation was collected every dozen
#: messages, the window survived into the older generations, and their collections walked it along with the
#: compiled bundle: 8 % of the dispatcher's CPU (measured with gc.callbacks, 8,000 messages).  Messages free
#: their objects by reference counting; only cycles need the collector, and it still runs once this many
#: objects pile up.
GC_YOUNG_THRESHOLD: Final = 50_000


class StartupError(Exception):
    """Something to fix before the dispatcher can run; the message says what."""


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = DispatcherSettings.load(sys.argv[1:] if argv is None else argv)
        configure_logging(settings.log_level)
        endpoint = broker_endpoint(settings)
        metrics, pipeline = _build(settings)
        _settle_the_heap()
        skip_unused_record_fields()
        return asyncio.run(serve(settings, pipeline, metrics, endpoint))
    except (SettingsError, StartupError) as error:
        print(f"hub-dispatcher: cannot start: {error}", file=sys.stderr)
        return EXIT_CANNOT_START


def _build(settings: DispatcherSettings) -> tuple[DispatcherMetrics, Pipeline]:
    """Loads and compiles the model bundle once for the life of the process."""
    metrics = DispatcherMetrics(settings.vhost, model_version=settings.bundle_dir.name)
    try:
        pipeline = Pipeline.from_settings(settings, stages=metrics.timed_stages(STAGES))
    except BundleError as error:
        raise StartupError(f"model bundle {settings.bundle_dir}: {error}") from None
    return metrics, pipeline


def _settle_the_heap() -> None:
    """What start-up built (the compiled bundle, the XML model, the imported modules) lives as long as the
    process: frozen, the collector never walks it again; and it runs far less often (GC_YOUNG_THRESHOLD)."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


async def serve(settings: DispatcherSettings, pipeline: Pipeline, metrics: DispatcherMetrics,
                endpoint: BrokerEndpoint) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    worker = Worker(settings=settings, pipeline=pipeline, metrics=metrics, endpoint=endpoint)
    health = None
    if settings.metrics_port:
        health = HealthServer(settings.metrics_host, settings.metrics_port, readiness=worker.status.readiness,
                              registry=metrics.registry)
        try:
            await health.start()
        except OSError as error:
            raise StartupError(f"cannot serve /metrics, /healthz and /readyz on "
                               f"{settings.metrics_host}:{settings.metrics_port}: {error}") from None
    log.info("dispatcher of vhost %s starting: model %s, broker %s, http port %s", settings.vhost,
             pipeline.config.bundle.version, endpoint.display, settings.metrics_port or "none")
    try:
        await worker.run(stop)
    finally:
        if health is not None:
            await health.close()
    return EXIT_STOPPED


if __name__ == "__main__":
    sys.exit(main())
