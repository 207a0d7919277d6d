"""What the message-stream fault tests share: a vhost of their own on a broker, its dispatchers, realistic
messages, and a stream running while a test breaks something.

    vhost = StreamVHost.provision(broker, workdir, "restart")
    dispatchers = [vhost.dispatcher("a"), vhost.dispatcher("b")]
    async with RunningStream.start(vhost, run="restart", count=10_000) as stream:
        await stream.wait_for(lambda: len(stream.publisher.confirmed) >= 3_000, what="3,000 confirmed")
        ...  # the fault
        outcome = await stream.finish()

The vhost is provisioned through the operator's own builders (:mod:`tests.helpers.topology`), without the
operator: these tests are about the data plane (broker, dispatchers, clients), and a vhost of their own keeps
their messages and duplicates apart from every other test's.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from time import monotonic
from typing import Any
from urllib.parse import quote

import orjson
from hub_devenv.rabbitmq import ClientCredentials, LocalBroker
from hub_dispatcher.protocol import DEAD_LETTER_QUEUE, DISPATCH_QUEUE, HUB_EXCHANGE, QueueKind

from tests.helpers.dispatcher_process import DispatcherProcess
from tests.helpers.hubsante_models import bundle_dir, envelope, json_examples
from tests.helpers.message_stream import (
    AmqpEndpoint,
    ConfirmingPublisher,
    RecipientConsumer,
    StreamOutcome,
    index_reader,
    stream_message_id,
)
from tests.helpers.topology import ProvisionedVHost, deprovision_vhost, provision_vhost_blocking

#: The issue's size; HUB_FAULT_MESSAGES makes a quicker local run possible.
STREAM_MESSAGES = int(os.environ.get("HUB_FAULT_MESSAGES", "10000"))
MODEL_VERSION = "3.4.1"
SENDER, RECIPIENT = "fr.health.samu050", "fr.health.samu076"
#: Use cases of the stream: new cases of both kinds of sender, the national load tests' message (4–7 KB).
STREAM_USE_CASES = ("RC-EDA", "RS-EDA")
#: What a wait is for, in a failure message: a text, or a function giving it at the time of the failure.
Description = str | Callable[[], str]
#: A deadline for failure only (the machine is shared and slow at times): never a measured figure.
STREAM_TIMEOUT = 300.0


def realistic_bodies(run: str, count: int) -> tuple[list[bytes], list[str]]:
    """``count`` pretty-printed JSON messages (as clients send them) cycling through every model-3.4.1 example
    of a new case, each with its own distributionID; and those ids."""
    examples = [example.use_case() for example in json_examples(MODEL_VERSION)
                if example.path.parent.name in STREAM_USE_CASES]
    ids = [stream_message_id(SENDER, run, index) for index in range(count)]
    bodies = [orjson.dumps(envelope(use_case, sender=SENDER, recipient=RECIPIENT, distribution_id=message_id),
                           option=orjson.OPT_INDENT_2)
              for message_id, use_case in zip(ids, itertools.cycle(examples), strict=False)]
    return bodies, ids


@dataclass
class StreamVHost:
    """A vhost with one sender, one recipient and a dispatcher identity, on ``broker``."""

    broker: LocalBroker
    provisioned: ProvisionedVHost
    workdir: Path
    sender: ClientCredentials
    recipient: ClientCredentials
    dispatcher_credentials: ClientCredentials
    dispatchers: list[DispatcherProcess] = field(default_factory=list)

    @classmethod
    def provision(cls, broker: LocalBroker, workdir: Path, label: str) -> StreamVHost:
        unique = f"{label}-{os.urandom(3).hex()}"
        provisioned = provision_vhost_blocking(
            broker, f"faults-{unique}_v{MODEL_VERSION}",
            clients=[(f"sender.{unique}", [SENDER]), (f"recipient.{unique}", [RECIPIENT])],
            dispatcher_cn=f"dispatcher.{unique}",
        )
        return cls(broker, provisioned, workdir, broker.mint_client_cert(f"sender.{unique}"),
                   broker.mint_client_cert(f"recipient.{unique}"), broker.mint_client_cert(provisioned.dispatcher_cn))

    @property
    def vhost(self) -> str:
        return self.provisioned.vhost

    @property
    def recipient_queue(self) -> str:
        return self.provisioned.protocol.client_queue(RECIPIENT, QueueKind.MESSAGE)

    @property
    def sender_reports_queue(self) -> str:
        return self.provisioned.protocol.client_queue(SENDER, QueueKind.INFO)

    def dispatcher(self, name: str, **settings: str) -> DispatcherProcess:
        """A started ``hub-dispatcher`` (Ready), stopped with the vhost."""
        process = DispatcherProcess(self.broker, self.vhost, bundle_dir(MODEL_VERSION), self.dispatcher_credentials,
                                    self.workdir, settings=settings, name=f"{name}-{len(self.dispatchers)}")
        self.dispatchers.append(process)
        return process.start()

    def queue_depth(self, queue: str) -> int | None:
        """Messages in ``queue`` as the management API last counted them (None while it does not answer)."""
        found: Any = self.broker.management_get(f"/api/queues/{quote(self.vhost, safe='')}/{quote(queue, safe='')}")
        return None if found is None else int(found.get("messages", -1))

    def connection_states(self, credentials: ClientCredentials) -> list[str]:
        """The broker's view of that client's connections to this vhost (``running``, ``blocked``...)."""
        found: Any = self.broker.management_get("/api/connections") or []
        return [c.get("state", "") for c in found if c.get("user") == credentials.cn and c.get("vhost") == self.vhost]

    def close(self) -> None:
        for process in self.dispatchers:
            if process.alive:
                process.stop(grace=30)
        if self.broker.running:
            asyncio.run(deprovision_vhost(self.broker, self.provisioned))


@contextlib.contextmanager
def stream_vhost(broker: LocalBroker, workdir: Path, label: str) -> Iterator[StreamVHost]:
    vhost = StreamVHost.provision(broker, workdir, label)
    try:
        yield vhost
    finally:
        vhost.close()


@contextlib.contextmanager
def dedicated_broker(base_dir: Path, label: str) -> Iterator[LocalBroker]:
    """A broker of the test's own (loopback, free ports, its own data folder) that it may restart or fill up
    without disturbing the session's shared broker."""
    node = LocalBroker(base_dir, node_name=f"hubfault{label}{os.getpid()}")
    node.start()
    try:
        yield node
    finally:
        node.stop(kill=True)


def disk_limit_above_free_space(broker: LocalBroker) -> int:
    """A disk-free limit the broker's disk cannot meet whatever others write meanwhile: twice its size."""
    return 2 * shutil.disk_usage(broker.base_dir).total


@dataclass
class RunningStream:
    """A publisher and the recipient's consumer running on the current event loop."""

    vhost: StreamVHost
    publisher: ConfirmingPublisher
    consumer: RecipientConsumer
    started_at: float
    _stop_consumer: asyncio.Event
    _tasks: list[asyncio.Task[None]]

    @classmethod
    @contextlib.asynccontextmanager
    async def start(cls, vhost: StreamVHost, *, run: str, count: int = STREAM_MESSAGES, window: int = 256,
                    rate: float | None = None) -> AsyncIterator[RunningStream]:
        bodies, ids = await asyncio.to_thread(realistic_bodies, run, count)
        publisher = ConfirmingPublisher(AmqpEndpoint(vhost.broker, vhost.vhost, vhost.sender), HUB_EXCHANGE,
                                        vhost.provisioned.protocol.publish_routing_key(SENDER), bodies, ids,
                                        window=window, rate=rate)
        consumer = RecipientConsumer(AmqpEndpoint(vhost.broker, vhost.vhost, vhost.recipient),
                                     vhost.recipient_queue, index_reader(run))
        stop = asyncio.Event()
        # The consumer first, as a recipient already connected when the sender starts.
        consuming = asyncio.create_task(consumer.run(stop), name=f"consumer {run}")
        await wait_for(lambda: consumer.connections > 0, what="the recipient's consumer to connect", timeout=60)
        publishing = asyncio.create_task(publisher.run(), name=f"publisher {run}")
        stream = cls(vhost, publisher, consumer, monotonic(), stop, [consuming, publishing])
        try:
            yield stream
        finally:
            stop.set()
            for task in stream._tasks:
                task.cancel()
            await asyncio.gather(*stream._tasks, return_exceptions=True)

    async def wait_for(self, condition: Callable[[], bool], *, what: Description,
                       timeout: float = STREAM_TIMEOUT) -> float:
        """Waits until ``condition`` holds (failing if a stream task died); the monotonic time it held."""
        return await wait_for(condition, what=what, timeout=timeout, tasks=self._tasks)

    async def finish(self, *, timeout: float = STREAM_TIMEOUT) -> StreamOutcome:
        """Waits until every message is confirmed and received, then until the vhost's queues are empty."""
        publisher, consumer = self.publisher, self.consumer
        await self.wait_for(lambda: publisher.finished_at is not None,
                            what=f"the broker to confirm all {publisher.total:,} messages", timeout=timeout)
        await self.wait_for(lambda: consumer.has(publisher.total), timeout=timeout,
                            what=lambda: f"the recipient to receive all {publisher.total:,} messages "
                                         f"(has {consumer.distinct:,})")
        for queue in (DISPATCH_QUEUE, DEAD_LETTER_QUEUE, self.vhost.recipient_queue, self.vhost.sender_reports_queue):
            await self.wait_until_empty(queue)
        return self.outcome()

    async def wait_until_empty(self, queue: str) -> None:
        """The management API counts messages every second: wait for a count of 0 rather than read one."""
        depth: list[int | None] = [None]

        def empty() -> bool:
            depth[0] = self.vhost.queue_depth(queue)
            return depth[0] == 0

        await wait_for(empty, what=lambda: f"queue {queue} to be empty (last count {depth[0]})", timeout=60,
                       in_thread=True)

    def outcome(self) -> StreamOutcome:
        return StreamOutcome(self.publisher.total, frozenset(self.publisher.confirmed), tuple(self.consumer.arrivals))


async def wait_for(condition: Callable[[], bool], *, what: Description, timeout: float,
                   tasks: list[asyncio.Task[None]] | None = None, in_thread: bool = False) -> float:
    """Polls ``condition`` (in a thread when it blocks, e.g. an HTTP call) until it holds; the monotonic time it
    held.  Fails naming ``what`` after ``timeout`` seconds, or at once if one of ``tasks`` failed."""
    deadline = monotonic() + timeout
    while True:
        if await asyncio.to_thread(condition) if in_thread else condition():
            return monotonic()
        for task in tasks or ():
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise AssertionError(f"{task.get_name()} failed while waiting for {_text(what)}") \
                    from task.exception()
        if monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {_text(what)}")
        await asyncio.sleep(0.05)


def _text(what: Description) -> str:
    return what if isinstance(what, str) else what()
