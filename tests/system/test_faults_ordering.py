"""Order of delivery of one publisher's stream to one recipient queue, with one dispatcher and with two.

One dispatcher forwards the messages of ``dispatch`` in the order it receives them (processing is synchronous
on its event loop, publishes leave in order on one channel), and the broker keeps one channel's publishes in
order in a queue: the recipient gets one publisher's messages in publish order.  With several dispatchers
consuming ``dispatch`` (competing consumers, each with its prefetch window) the order across the queue is not
kept; the test measures how much it is not.  Faults reorder too (redeliveries come after newer messages): the
other ``test_faults_*`` modules report the out-of-order arrivals of their streams.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from hub_devenv.rabbitmq import LocalBroker

from tests.system.fault_streams import STREAM_MESSAGES, RunningStream, StreamVHost, stream_vhost

pytestmark = [pytest.mark.broker, pytest.mark.slow]

#: Half the fault streams' size: order shows in the first thousand messages, and this runs twice.
ORDERING_MESSAGES = max(1, STREAM_MESSAGES // 2)


@pytest.fixture
def vhost(broker: LocalBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StreamVHost]:
    with stream_vhost(broker, tmp_path_factory.mktemp("ordering"), "ordering") as provisioned:
        yield provisioned


@pytest.mark.parametrize("replicas", [1, 2])
async def test_one_dispatcher_keeps_the_publish_order_and_two_do_not_promise_it(
    vhost: StreamVHost, replicas: int, measure: Callable[[str], None]
) -> None:
    for replica in range(replicas):
        vhost.dispatcher(f"replica{replica}")
    async with RunningStream.start(vhost, run=f"order{replicas}", count=ORDERING_MESSAGES) as stream:
        outcome = await stream.finish()

    assert outcome.missing == [] and outcome.duplicates == 0, outcome.describe()  # no fault: exactly once
    if replicas == 1:
        assert outcome.out_of_order == 0, outcome.describe()
    measure(f"{replicas} dispatcher{'s' if replicas > 1 else ''}, no fault: {outcome.describe()} "
            f"({outcome.out_of_order / outcome.total:.0%})")
