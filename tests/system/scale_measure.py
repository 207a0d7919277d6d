"""What the scale tests measure, and how: readiness through a watch, the broker's objects through the management API,
the operator's memory from ``/proc``, the API server's request counters and the operator's log.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from hub_devenv.controlplane import LocalControlPlane
from hub_operator.builders.broker_definitions import ItemKind
from kubernetes import client as k8s
from kubernetes import watch

from tests.helpers.hub_env import HubEnv
from tests.system.scale_hub import BrokerKey, broker_key

#: How often a long wait prints its progress.
PROGRESS_INTERVAL = 30.0

# -- readiness --------------------------------------------------------------------------------------------------


def is_ready(body: dict[str, Any]) -> bool:
    """Ready=True for the object's current generation (not a status left from an earlier spec)."""
    status = body.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    return ready and status.get("observedGeneration") == body["metadata"].get("generation")


class ReadyWatch:
    """Records the moment each HubClient of a namespace is first seen Ready, from a watch (no polling delay).

    The API server closes a watch whose reader falls behind a burst of writes (a thousand status updates): the
    watch then resumes from the last resourceVersion seen, or from a new listing when that one is too old (410).
    """

    def __init__(self, cluster: LocalControlPlane, namespace: str) -> None:
        self._api = k8s.CustomObjectsApi(cluster.api_client())
        self._namespace = namespace
        self.ready_at: dict[str, float] = {}
        self.events = 0
        self.restarts = 0
        self._changed = threading.Condition()
        self._watch: watch.Watch | None = None
        self._stopped = False
        self._failure: BaseException | None = None
        resource_version = self._list()
        self._thread = threading.Thread(target=self._run, args=(resource_version,), name=f"ready-watch-{namespace}",
                                        daemon=True)
        self._thread.start()

    def _list(self) -> str:
        """Record what is Ready now; the listing's resourceVersion, to watch from without missing anything."""
        listing: dict[str, Any] = self._api.list_namespaced_custom_object(  # type: ignore[assignment]
            "hubsante.io", "v1alpha1", self._namespace, "hubclients")
        with self._changed:
            for item in listing["items"]:
                self._seen(item)
            self._changed.notify_all()
        return listing["metadata"]["resourceVersion"]

    def _seen(self, body: dict[str, Any]) -> None:
        if is_ready(body):
            self.ready_at.setdefault(body["metadata"]["name"], time.monotonic())

    def _run(self, resource_version: str) -> None:
        try:
            while not self._stopped:
                resource_version = self._follow(resource_version)
                self.restarts += 1
        except BaseException as error:  # noqa: BLE001 - handed to the waiting test
            with self._changed:
                self._failure = error
                self._changed.notify_all()

    def _follow(self, resource_version: str) -> str:
        """Watch until the server ends the stream; the resourceVersion to resume from."""
        self._watch = watch.Watch()
        try:
            for event in self._watch.stream(self._api.list_namespaced_custom_object, "hubsante.io", "v1alpha1",
                                            self._namespace, "hubclients", resource_version=resource_version,
                                            timeout_seconds=300):
                body: dict[str, Any] = event["object"]
                resource_version = body["metadata"]["resourceVersion"]
                with self._changed:
                    self.events += 1
                    if event["type"] != "DELETED":
                        self._seen(body)
                    self._changed.notify_all()
        except k8s.ApiException as error:
            if error.status != 410:
                raise
            return self._list()  # too old to resume from: start again from a listing
        return resource_version

    def wait(self, names: Collection[str], timeout: float) -> float:
        """The moment the last of ``names`` became Ready."""
        wanted = set(names)
        started = time.monotonic()
        deadline = started + timeout
        next_report = started + PROGRESS_INTERVAL
        with self._changed:
            while not wanted <= self.ready_at.keys():
                if time.monotonic() >= next_report:  # a long wait says how far it got (``-s``)
                    print(f"[progress] {len(wanted & self.ready_at.keys())}/{len(wanted)} Ready after "
                          f"{time.monotonic() - started:.0f} s", flush=True)
                    next_report += PROGRESS_INTERVAL
                if self._failure is not None:
                    raise AssertionError(f"the HubClient watch failed: {self._failure!r}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    missing = sorted(wanted - self.ready_at.keys())
                    raise AssertionError(f"{len(missing)} of {len(wanted)} HubClient(s) not Ready after {timeout:.0f} s, "
                                         f"e.g. {missing[:5]}")
                self._changed.wait(min(remaining, 5))
            return max(self.ready_at[name] for name in wanted)

    def stop(self) -> None:
        self._stopped = True
        if self._watch is not None:
            self._watch.stop()


# -- the broker -------------------------------------------------------------------------------------------------

def is_builtin_exchange(name: str) -> bool:
    """An exchange every vhost has from birth (the default one and ``amq.*``): RabbitMQ's, counted apart, like the
    implicit binding of every queue to the default exchange."""
    return name == "" or name.startswith("amq.")


@dataclass(frozen=True)
class BrokerCensus:
    """The hub's objects found on the broker, per kind, plus the built-ins RabbitMQ adds on its own."""

    objects: dict[ItemKind, set[BrokerKey]]
    builtin_exchanges: int
    default_bindings: int

    def counts(self) -> dict[ItemKind, int]:
        return {kind: len(keys) for kind, keys in self.objects.items()}

    @property
    def total(self) -> int:
        return sum(self.counts().values())


def _listing(env: HubEnv, *segments: str, columns: str) -> list[dict[str, Any]]:
    return env.rabbit("GET", *segments, params={"columns": columns}) or []


def broker_census(env: HubEnv, vhosts: Collection[str], usernames_before: Collection[str]) -> BrokerCensus:
    """Every object of these vhosts, and every user created since ``usernames_before`` was taken."""
    objects: dict[ItemKind, set[BrokerKey]] = {kind: set() for kind in ItemKind}
    known = set(usernames_before)
    for user in _listing(env, "users", columns="name"):
        if user["name"] not in known:
            objects[ItemKind.USER].add(broker_key(ItemKind.USER, user))
    existing = {v["name"] for v in _listing(env, "vhosts", columns="name")}
    builtin_exchanges = default_bindings = 0
    for vhost in sorted(set(vhosts) & existing):
        objects[ItemKind.VHOST].add((vhost,))
        for queue in _listing(env, "queues", vhost, columns="vhost,name"):
            objects[ItemKind.QUEUE].add(broker_key(ItemKind.QUEUE, queue))
        for exchange in _listing(env, "exchanges", vhost, columns="vhost,name"):
            if is_builtin_exchange(exchange["name"]):
                builtin_exchanges += 1
            else:
                objects[ItemKind.EXCHANGE].add(broker_key(ItemKind.EXCHANGE, exchange))
        for binding in _listing(env, "bindings", vhost, columns="vhost,source,destination,routing_key"):
            if binding["source"] == "":
                default_bindings += 1
            else:
                objects[ItemKind.BINDING].add(broker_key(ItemKind.BINDING, binding))
        for policy in env.rabbit("GET", "policies", vhost) or []:
            objects[ItemKind.POLICY].add(broker_key(ItemKind.POLICY, policy))
        for permission in env.rabbit("GET", "vhosts", vhost, "permissions") or []:
            objects[ItemKind.PERMISSION].add(broker_key(ItemKind.PERMISSION, permission))
        for permission in env.rabbit("GET", "vhosts", vhost, "topic-permissions") or []:
            objects[ItemKind.TOPIC_PERMISSION].add(broker_key(ItemKind.TOPIC_PERMISSION, permission))
    return BrokerCensus(objects, builtin_exchanges, default_bindings)


def usernames(env: HubEnv) -> set[str]:
    return {user["name"] for user in _listing(env, "users", columns="name")}


def describe_counts(counts: dict[ItemKind, int]) -> str:
    return ", ".join(f"{counts[kind]} {kind.value.replace('_', ' ')}" for kind in ItemKind)


def census_difference(found: dict[ItemKind, set[BrokerKey]], wanted: dict[ItemKind, set[BrokerKey]]) -> str:
    """Empty when equal; otherwise a few missing and unexpected objects per kind."""
    lines = []
    for kind in ItemKind:
        missing, extra = wanted[kind] - found[kind], found[kind] - wanted[kind]
        if missing or extra:
            lines.append(f"{kind.value}: {len(missing)} missing (e.g. {sorted(missing)[:3]}), "
                         f"{len(extra)} unexpected (e.g. {sorted(extra)[:3]})")
    return "; ".join(lines)


# -- the operator process ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessMemory:
    peak_mib: float
    """VmHWM: the resident set's high-water mark since the process started."""
    current_mib: float
    """VmRSS now."""


def process_memory(pid: int) -> ProcessMemory:
    fields: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmHWM", "VmRSS"):
                fields[name] = int(value.split()[0]) / 1024  # kB
    return ProcessMemory(peak_mib=fields["VmHWM"], current_mib=fields["VmRSS"])


def operator_pid(env: HubEnv) -> int:
    assert env.operator.process is not None, "the operator is not running"
    return env.operator.process.pid


def operator_metric(env: HubEnv, name: str) -> float:
    """Sum of a metric's samples on the operator's ``/metrics``."""
    return _labelled_total(env, name, "")


def operator_histogram(env: HubEnv, name: str, label: str = "") -> tuple[int, float]:
    """(count, sum) of a histogram on the operator's ``/metrics``, over the samples carrying ``label``."""
    return int(_labelled_total(env, f"{name}_count", label)), _labelled_total(env, f"{name}_sum", label)


def _labelled_total(env: HubEnv, name: str, label: str) -> float:
    import urllib.request

    with urllib.request.urlopen(env.operator.metrics_url, timeout=10) as response:
        lines = response.read().decode().splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines
               if line.split("{")[0].split(" ")[0] == name and label in line)


_ADDRESS = re.compile(r"https?://\S+")
_LOG_LEVEL = re.compile(r"^\S+ \S+ (?P<level>WARNING|ERROR|CRITICAL)\s")


@dataclass(frozen=True)
class LogFindings:
    warnings: int
    errors: int
    tracebacks: int
    retries: int
    """Handlers kopf will run again (TemporaryError), e.g. a broker or API call that failed."""
    samples: tuple[str, ...]

    def describe(self) -> str:
        return (f"{self.errors} error(s), {self.warnings} warning(s), {self.retries} handler retr(ies), "
                f"{self.tracebacks} traceback(s)")


def scan_operator_log(text: str, *, since: int = 0) -> LogFindings:
    """Warnings, errors, tracebacks and handler retries in the operator's log from byte ``since`` on."""
    levels: Counter[str] = Counter()
    samples: list[str] = []
    tracebacks = retries = 0
    for line in text[since:].splitlines():
        if line.startswith("Traceback"):
            tracebacks += 1
        if "will retry" in line or "TemporaryError" in line:
            retries += 1
        match = _LOG_LEVEL.match(line)
        if match:
            levels[match["level"]] += 1
            # Without the timestamp and addresses, so that a repeated problem shows once.
            message = _ADDRESS.sub("<url>", line[match.end():]).strip()[:160]
            if len(samples) < 3 and message not in samples:
                samples.append(message)
    return LogFindings(levels["WARNING"], levels["ERROR"] + levels["CRITICAL"], tracebacks, retries, tuple(samples))


# -- the API server ---------------------------------------------------------------------------------------------

_REQUEST_SAMPLE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def apiserver_requests(cluster: LocalControlPlane) -> Counter[tuple[str, str]]:
    """Requests the API server served so far, by (verb, resource[/subresource]), from its ``/metrics``."""
    text = cluster.kubectl("get", "--raw", "/metrics", timeout=60).stdout
    counts: Counter[tuple[str, str]] = Counter()
    for line in text.splitlines():
        match = _REQUEST_SAMPLE.match(line)
        if not match:
            continue
        labels = dict(_LABEL.findall(match["labels"]))
        resource = labels.get("resource", "") + (f"/{labels['subresource']}" if labels.get("subresource") else "")
        counts[(labels.get("verb", ""), resource)] += int(float(match["value"]))
    return counts


def describe_requests(delta: Counter[tuple[str, str]], top: int = 8) -> str:
    busiest = ", ".join(f"{verb} {resource} {count}" for (verb, resource), count in delta.most_common(top))
    return f"{sum(delta.values())} requests ({busiest})"


def requests_since(cluster: LocalControlPlane, before: Counter[tuple[str, str]]) -> Counter[tuple[str, str]]:
    after = apiserver_requests(cluster)
    after.subtract(before)
    return Counter({key: count for key, count in after.items() if count > 0})


def wait_until_gone(env: HubEnv, kind: str, timeout: float) -> None:
    env.wait_for(lambda: not env.items(kind), timeout=timeout, interval=1, what=f"every {kind} deleted")
