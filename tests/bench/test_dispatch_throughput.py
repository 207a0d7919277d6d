"""End-to-end throughput and latency of the dispatcher against the broker's own ceiling, in one run (``make bench``).

One client publishes N realistic messages (the largest RC-EDA and RS-EDA examples of model 3.4.1, pretty-printed
JSON as clients send them, ~6.5 KB) persistent, ``mandatory``, with publisher confirms (a window of 256); a
second client consumes them at the recipient.  Twice per round:

* direct: the same publishes straight into ``distribution`` with the recipient's queue as routing key (the
  path the dispatcher's own output takes: the broker's ceiling for this message on this machine);
* through the dispatcher: into ``hubsante`` as the sender; a real ``hub-dispatcher`` process validates each
  message against the full schema and forwards it.

Then both paths again at a fixed rate of half the dispatcher's throughput, for latency (publish to receipt).
Environment: HUB_BENCH_MESSAGES (default 20000), HUB_BENCH_ROUNDS (2), HUB_BENCH_PREFETCH (the dispatcher's
default), HUB_BENCH_LOG_LEVEL (INFO, as in production), HUB_BENCH_TARGET_RATIO (0.5, the issue's target).
The table also gives the CPU every process spends per message: on a machine whose cores are all busy the
ratio cannot exceed direct CPU / dispatched CPU (docs/dispatcher.md).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from hub_devenv.rabbitmq import ClientCredentials, LocalBroker
from hub_dispatcher.protocol import DISTRIBUTION_EXCHANGE, HUB_EXCHANGE, ORIGINAL_ROUTING_KEY_HEADER, QueueKind
from tests.bench.loadgen import bench_id, write_bodies
from tests.helpers.dispatcher_process import DispatcherProcess
from tests.helpers.hubsante_models import bundle_dir, envelope, json_examples
from tests.helpers.topology import ProvisionedVHost, deprovision_vhost, provision_vhost_blocking

pytestmark = [pytest.mark.broker, pytest.mark.slow]

VERSION = "3.4.1"
SENDER, RECIPIENT = "fr.health.samu050", "fr.health.samu076"
MESSAGES = int(os.environ.get("HUB_BENCH_MESSAGES", "20000"))
ROUNDS = int(os.environ.get("HUB_BENCH_ROUNDS", "2"))
PREFETCH = os.environ.get("HUB_BENCH_PREFETCH", "")
LOG_LEVEL = os.environ.get("HUB_BENCH_LOG_LEVEL", "INFO")
WINDOW = 256
TARGET_RATIO = float(os.environ.get("HUB_BENCH_TARGET_RATIO", "0.5"))
LATENCY_SECONDS = 10.0


@dataclass
class Bench:
    broker: LocalBroker
    provisioned: ProvisionedVHost
    workdir: Path
    sender: ClientCredentials
    recipient: ClientCredentials
    dispatcher: ClientCredentials

    @property
    def recipient_queue(self) -> str:
        return self.provisioned.protocol.client_queue(RECIPIENT, QueueKind.MESSAGE)

    def bodies(self, run: str, count: int) -> Path:
        """``count`` bodies alternating the largest RC-EDA and RS-EDA examples, each with its own id."""
        use_cases = [largest_example(model) for model in ("RC-EDA", "RS-EDA")]
        bodies = [orjson.dumps(envelope(use_cases[index % 2], sender=SENDER, recipient=RECIPIENT,
                                        distribution_id=bench_id(SENDER, run, index)), option=orjson.OPT_INDENT_2)
                  for index in range(count)]
        path = self.workdir / f"{run}.bodies"
        write_bodies(path, bodies)
        return path


def largest_example(model: str) -> dict[str, Any]:
    examples = [example.use_case() for example in json_examples(VERSION) if example.path.parent.name == model]
    return max(examples, key=lambda use_case: len(orjson.dumps(use_case)))


@pytest.fixture(scope="module")
def bench(broker: LocalBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    unique = os.urandom(3).hex()
    provisioned = provision_vhost_blocking(
        broker, f"bench-{unique}_v{VERSION}",
        clients=[(f"sender.b{unique}", [SENDER]), (f"recipient.b{unique}", [RECIPIENT])],
        dispatcher_cn=f"dispatcher.b{unique}",
    )
    yield Bench(broker, provisioned, tmp_path_factory.mktemp("bench"), broker.mint_client_cert(f"sender.b{unique}"),
                broker.mint_client_cert(f"recipient.b{unique}"), broker.mint_client_cert(provisioned.dispatcher_cn))
    import asyncio

    asyncio.run(deprovision_vhost(broker, provisioned))


@dataclass(frozen=True)
class Run:
    messages: int
    seconds: float
    latencies_ms: list[float]
    cpu_ms: dict[str, float]
    """CPU milliseconds per message of each process taking part (publisher, consumer, broker, dispatcher)."""

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def loadgen(bench: Bench, credentials: ClientCredentials, role: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.bench.loadgen", role, "--url", bench.broker.amqps_url(bench.provisioned.vhost),
         "--ca", str(credentials.ca_path), "--cert", str(credentials.cert_path), "--key", str(credentials.key_path),
         *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def finish(process: subprocess.Popen[str], what: str, timeout: float = 600) -> None:
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
        raise AssertionError(f"{what} did not finish within {timeout:.0f}s: {stderr[-2000:]}") from None
    assert process.returncode == 0, f"{what} failed ({process.returncode}): {stderr[-2000:]}"


def measure(bench: Bench, run: str, *, count: int, dispatcher: DispatcherProcess | None = None,
            rate: float = 0.0) -> Run:
    """Publishes ``count`` messages (at ``rate`` msg/s, 0 = flat out) through ``dispatcher`` (or straight into
    ``distribution`` without one) and waits until the recipient has them all."""
    through_dispatcher = dispatcher is not None
    bodies = bench.bodies(run, count)
    watched = {"broker": broker_pid(bench.broker)}
    if dispatcher is not None and dispatcher.process is not None:
        watched["dispatcher"] = dispatcher.process.pid
    cpu_before = {name: cpu_seconds(pid) for name, pid in watched.items()}
    received, sent = bench.workdir / f"{run}.received.json", bench.workdir / f"{run}.sent.json"
    consumer = loadgen(bench, bench.recipient, "consume", "--queue", bench.recipient_queue, "--count", str(count),
                       "--run", run, "--out", str(received))
    assert consumer.stdout is not None and consumer.stdout.readline().strip() == "consuming", consumer.stderr
    if through_dispatcher:
        route = ["--exchange", HUB_EXCHANGE, "--routing-key", SENDER]
        publisher_credentials = bench.sender
    else:  # what the dispatcher itself publishes, with the same properties
        route = ["--exchange", DISTRIBUTION_EXCHANGE, "--routing-key", bench.recipient_queue,
                 "--header", f"{ORIGINAL_ROUTING_KEY_HEADER}={SENDER}", "--expiration", str(24 * 3600 * 1000)]
        publisher_credentials = bench.dispatcher
    publisher = loadgen(bench, publisher_credentials, "publish", *route, "--bodies", str(bodies),
                        "--window", str(WINDOW), "--rate", str(rate), "--out", str(sent))
    finish(publisher, f"publisher of {run}")
    finish(consumer, f"consumer of {run}")
    cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in watched.items()}
    published, consumed = json.loads(sent.read_text()), json.loads(received.read_text())
    cpu.update(publisher=published["cpu_seconds"], consumer=consumed["cpu_seconds"])
    send_times, receive_times = published["send_times"], consumed["receive_times"]
    latencies = [(received_at - sent_at) * 1000 for sent_at, received_at in zip(send_times, receive_times, strict=True)]
    return Run(count, max(receive_times) - min(send_times), latencies,
               {name: seconds * 1000 / count for name, seconds in cpu.items()})


def start_dispatcher(bench: Bench, name: str) -> DispatcherProcess:
    settings = {"log_level": LOG_LEVEL}
    if PREFETCH:
        settings["prefetch"] = PREFETCH
    return DispatcherProcess(bench.broker, bench.provisioned.vhost, bundle_dir(VERSION), bench.dispatcher,
                             bench.workdir, settings=settings, name=name).start()


def broker_pid(broker: LocalBroker) -> int:
    """The Erlang VM of the test broker (the launcher script's child)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"beam.smp" in command and str(broker.base_dir).encode() in command:
                return int(entry.name)
    raise AssertionError(f"no beam.smp process for the broker in {broker.base_dir}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_dispatcher_throughput_is_at_least_half_the_brokers_ceiling(bench: Bench) -> None:
    direct, dispatched = [], []
    for round_number in range(ROUNDS):
        direct.append(measure(bench, f"direct{round_number}", count=MESSAGES))
        dispatcher = start_dispatcher(bench, f"dispatcher{round_number}")
        dispatched.append(measure(bench, f"dispatched{round_number}", count=MESSAGES, dispatcher=dispatcher))
        assert dispatcher.stop() == 0
    direct_rate = statistics.median(run.rate for run in direct)
    dispatched_rate = statistics.median(run.rate for run in dispatched)
    ratio = dispatched_rate / direct_rate

    half_load = dispatched_rate / 2
    latency_count = max(500, int(half_load * LATENCY_SECONDS))
    direct_latency = measure(bench, "direct-latency", count=latency_count, rate=half_load)
    dispatcher = start_dispatcher(bench, "dispatcher-latency")
    dispatched_latency = measure(bench, "dispatched-latency", count=latency_count, rate=half_load,
                                 dispatcher=dispatcher)
    assert dispatcher.stop() == 0

    print(f"\n\ndispatch throughput: model {VERSION}, {MESSAGES} messages (largest RC-EDA / RS-EDA examples, "
          f"pretty JSON -> JSON recipient, {average_size(bench)} bytes on average), persistent, mandatory, "
          f"confirms (window {WINDOW}), full schema validation, dispatcher prefetch {PREFETCH or 'default'}, "
          f"log level {LOG_LEVEL}, {os.cpu_count()} cores shared by every process\n")
    print(f"{'path':22} {'msg/s (median)':>15}   rounds")
    print(f"{'direct (broker only)':22} {direct_rate:>15.0f}   {', '.join(f'{run.rate:.0f}' for run in direct)}")
    print(f"{'through dispatcher':22} {dispatched_rate:>15.0f}   {', '.join(f'{run.rate:.0f}' for run in dispatched)}")
    print(f"{'ratio':22} {ratio:>15.2f}   target >= {TARGET_RATIO}")
    print("\nCPU ms per message (median of rounds):")
    roles = ("publisher", "consumer", "broker", "dispatcher")
    print(f"{'path':22} " + " ".join(f"{role:>10}" for role in roles) + f" {'total':>8}")
    for name, runs in (("direct (broker only)", direct), ("through dispatcher", dispatched)):
        cells = {role: statistics.median(run.cpu_ms.get(role, 0.0) for run in runs) for role in roles}
        print(f"{name:22} " + " ".join(f"{cells[role]:>10.3f}" for role in roles) + f" {sum(cells.values()):>8.3f}")
    print(f"\nlatency, publish to receipt, at {half_load:.0f} msg/s (half the dispatcher's throughput), "
          f"{latency_count} messages:")
    print(f"{'path':22} {'p50 ms':>8} {'p99 ms':>8}")
    for name, run in (("direct (broker only)", direct_latency), ("through dispatcher", dispatched_latency)):
        print(f"{name:22} {run.percentile(0.5):>8.2f} {run.percentile(0.99):>8.2f}")
    print()
    direct_cpu = statistics.median(sum(run.cpu_ms.values()) for run in direct)
    dispatched_cpu = statistics.median(sum(run.cpu_ms.values()) for run in dispatched)
    print(f"when every core is busy the ratio is bounded by CPU: {direct_cpu:.3f} / {dispatched_cpu:.3f} ms "
          f"per message = {direct_cpu / dispatched_cpu:.2f}\n")
    assert ratio >= TARGET_RATIO, (
        f"the dispatcher reaches {ratio:.2f} of the broker's ceiling, below {TARGET_RATIO}; the CPU the whole "
        f"machine spends per message is {direct_cpu:.3f} ms direct and {dispatched_cpu:.3f} ms through the "
        f"dispatcher (see the table)")


def average_size(bench: Bench) -> int:
    bodies = [orjson.dumps(envelope(largest_example(model), sender=SENDER, recipient=RECIPIENT),
                           option=orjson.OPT_INDENT_2) for model in ("RC-EDA", "RS-EDA")]
    return sum(map(len, bodies)) // len(bodies)
