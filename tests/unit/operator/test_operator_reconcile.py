"""The reconcilers against in-memory Kubernetes and RabbitMQ: examples, coalescing, drift, suspension, deletion."""

from __future__ import annotations

from hub_dispatcher import protocol
from hub_operator.builders.broker_definitions import Definitions, ItemKind
from hub_operator.clients.kubernetes import CONFIG_MAPS, DEPLOYMENTS, SECRETS

from tests.unit.operator.operator_support import (
    Hub,
    hub_client,
    perimeter,
    vhost_version,
)


async def test_examples_provision_every_vhost_client_and_dispatcher() -> None:
    hub = Hub()
    hub.apply_examples()
    await hub.converge()
    vhosts = {"15-15_v1.5", "15-15_v2.0", "15-nexsis_v1.8"}
    assert vhosts <= set(hub.broker.vhosts)
    for name in ("15-15-v1.5", "15-15-v2.0", "15-nexsis-v1.8"):
        assert hub.condition("VHostVersion", name, "BrokerProvisioned")["status"] == "True", hub.status("VHostVersion", name)
        assert hub.condition("VHostVersion", name, "VhostClaimed")["status"] == "True"
    samu = hub.status("HubClient", "fr.health.samu050")
    assert hub.condition("HubClient", "fr.health.samu050")["status"] == "True", samu
    assert samu["readyVhosts"] == 3
    assert hub.condition("HubClient", "fr.health.samu076", "CertificateReady")["reason"] == "CertManagerNotInstalled"
    assert hub.condition("HubClient", "fr.health.samu033", "CertificateReady")["reason"] == "ExternalCertificate"
    deployments = {d["metadata"]["name"] for d in hub.kube.of_kind(DEPLOYMENTS, hub.namespace)}
    assert deployments == {"dispatcher-15-15-v1-5", "dispatcher-15-15-v2-0", "dispatcher-15-nexsis-v1-8"}


def _simple_hub(clients: int = 2, **settings: object) -> Hub:
    hub = Hub(**settings)
    hub.apply(perimeter("p1", messageTTL="1h"))
    hub.apply(vhost_version("p1", "1.0"))
    for index in range(clients):
        hub.apply(hub_client(f"c{index}", f"fr.health.samu{index:03d}", ["p1-v1.0"]))
    return hub


VHOST = "p1_v1.0"


async def test_a_second_pass_changes_nothing() -> None:
    hub = _simple_hub()
    await hub.converge()
    hub.broker.reset_call_log()
    hub.kube.calls.clear()
    writes = hub.context.publisher.writes
    await hub.converge()
    assert hub.broker.write_calls == []
    assert hub.context.publisher.writes == writes
    assert not [c for c in hub.kube.calls if c.startswith(("apply_deployment", "create_", "replace_"))]


async def test_many_client_triggers_collapse_into_few_applies() -> None:
    import asyncio

    hub = _simple_hub(clients=0)
    await hub.converge()
    records = [hub.apply(hub_client(f"c{i}", f"fr.health.samu{i:03d}", ["p1-v1.0"])) for i in range(200)]
    hub.broker.reset_call_log()
    runs = hub.context.vhosts.coalescer.runs
    results = await asyncio.gather(*(hub.context.clients.reconcile(r) for r in records))
    assert all(not r.problems for r in results)
    # 200 triggers, a handful of applies (certificates finish at different moments, so a few runs, not one).
    assert hub.context.vhosts.coalescer.runs - runs <= 5
    assert hub.broker.calls.count("import_definitions") <= 5
    queues = {name for (vhost, name) in hub.broker.queues if vhost == VHOST}
    assert {f"fr.health.samu{i:03d}.{kind.value}" for i in range(200) for kind in protocol.QueueKind} <= queues
    assert all(hub.condition("HubClient", f"c{i}")["status"] == "True" for i in range(200))


async def test_drift_is_repaired_and_reported_on_the_client() -> None:
    hub = _simple_hub()
    await hub.converge()
    await hub.broker.delete_queue(VHOST, "fr.health.samu000.message")
    await hub.broker.delete_permission(VHOST, "fr.health.samu000")
    hub.clock.advance(seconds=10)
    await hub.drift_tick()
    assert (VHOST, "fr.health.samu000.message") in hub.broker.queues
    assert (VHOST, "fr.health.samu000") in hub.broker.permissions
    events = await hub.events_for("c0", "DriftRepaired")
    assert events and "queue fr.health.samu000.message" in events[0].message and "permission" in events[0].message
    access = hub.condition("HubClient", "c0", "AccessProvisioned")
    assert access["status"] == "True" and access["reason"] == "DriftRepaired"
    assert hub.condition("HubClient", "c1", "AccessProvisioned")["reason"] == "Provisioned"
    samples = {s.labels["kind"]: s.value for m in hub.context.metrics.drift_repairs.collect() for s in m.samples
               if s.name.endswith("_total")}
    assert samples["queue"] >= 1 and samples["permission"] >= 1
    # Past the report window the condition goes back to Provisioned.
    hub.clock.advance(seconds=hub.settings.drift_report_window + 1)
    await hub.drift_tick()
    assert hub.condition("HubClient", "c0", "AccessProvisioned")["reason"] == "Provisioned"


async def test_suspension_revokes_and_closes_connections_then_unsuspension_restores() -> None:
    hub = _simple_hub()
    await hub.converge()
    connection = hub.broker.open_connection("fr.health.samu000", VHOST)
    record = hub.apply(hub_client("c0", "fr.health.samu000", ["p1-v1.0"], suspended=True))
    await hub.context.clients.reconcile(record)
    assert (VHOST, "fr.health.samu000") not in hub.broker.permissions
    assert connection not in hub.broker.connections
    assert [c.name for c, _ in hub.broker.closed] == [connection]
    assert hub.condition("HubClient", "c0", "Suspended")["status"] == "True"
    ready = hub.condition("HubClient", "c0")
    assert ready["status"] == "True" and ready["reason"] == "Suspended"
    assert await hub.events_for("c0", "ConnectionsClosed")
    assert (VHOST, "fr.health.samu000.message") in hub.broker.queues  # queues and messages stay
    record = hub.apply(hub_client("c0", "fr.health.samu000", ["p1-v1.0"], suspended=False))
    await hub.context.clients.reconcile(record)
    assert (VHOST, "fr.health.samu000") in hub.broker.permissions
    assert hub.condition("HubClient", "c0")["reason"] == "Ready"


async def test_leaving_a_vhost_revokes_access_there() -> None:
    hub = _simple_hub()
    hub.apply(vhost_version("p1", "2.0"))
    record = hub.apply(hub_client("c0", "fr.health.samu000", ["p1-v1.0", "p1-v2.0"]))
    await hub.converge()
    assert ("p1_v2.0", "fr.health.samu000") in hub.broker.permissions
    record = hub.apply(hub_client("c0", "fr.health.samu000", ["p1-v1.0"]))
    await hub.context.clients.reconcile(record, previous_vhosts=["p1-v1.0", "p1-v2.0"])
    assert ("p1_v2.0", "fr.health.samu000") not in hub.broker.permissions
    assert (VHOST, "fr.health.samu000") in hub.broker.permissions
    assert [v["vhostVersion"] for v in hub.status("HubClient", "c0")["vhosts"]] == ["p1-v1.0"]


async def test_client_deletion_with_retain_keeps_queues_unbound() -> None:
    hub = _simple_hub()
    await hub.converge()
    connection = hub.broker.open_connection("fr.health.samu000", VHOST)
    record = hub.mark_deleted("HubClient", "c0")
    result = await hub.context.clients.delete(record)
    assert result.done
    assert "fr.health.samu000" not in hub.broker.users
    assert connection not in hub.broker.connections
    assert (VHOST, "fr.health.samu000.message") in hub.broker.queues
    bound = {key[3] for key in hub.broker.bindings if key[0] == VHOST}
    assert "fr.health.samu000.message" not in bound and "fr.health.samu001.message" in bound
    assert await hub.events_for("c0", "ClientRemoved")
    hub.remove("HubClient", "c0")
    await hub.drift_tick()  # nothing comes back
    assert "fr.health.samu000" not in hub.broker.users


async def test_client_deletion_with_delete_removes_queues() -> None:
    hub = _simple_hub()
    hub.apply(hub_client("c0", "fr.health.samu000", ["p1-v1.0"], deletionPolicy="delete"))
    await hub.converge()
    result = await hub.context.clients.delete(hub.mark_deleted("HubClient", "c0"))
    assert result.done
    assert not [q for (v, q) in hub.broker.queues if v == VHOST and q.startswith("fr.health.samu000.")]
    assert (VHOST, "fr.health.samu001.message") in hub.broker.queues


async def test_broker_unreachable_is_reported_and_retried() -> None:
    hub = _simple_hub()
    await hub.converge()
    hub.broker.reachable = False
    outcome = await hub.context.vhosts.reconcile(("sandbox", "p1-v1.0"))
    assert outcome.problem is not None and outcome.problem.transient and outcome.problem.reason == "BrokerUnreachable"
    broker = hub.condition("VHostVersion", "p1-v1.0", "BrokerProvisioned")
    assert broker["status"] == "False" and broker["reason"] == "BrokerUnreachable"
    assert "unreachable" in broker["message"] and "hub-broker" in broker["message"]
    result = await hub.context.clients.reconcile(hub.refresh("HubClient", "c0"))
    assert result.transient is not None and result.transient.reason == "BrokerUnreachable"
    assert hub.condition("HubClient", "c0")["reason"] == "BrokerUnreachable"
    hub.broker.reachable = True
    await hub.converge()
    assert hub.condition("HubClient", "c0")["status"] == "True"


async def test_vhost_deletion_waits_for_the_broker_then_retains_or_deletes() -> None:
    hub = _simple_hub()
    hub.apply(perimeter("p2"))
    hub.apply(vhost_version("p2", "1.0", deletionPolicy="delete"))
    await hub.converge()
    hub.broker.reachable = False
    retained = hub.mark_deleted("VHostVersion", "p1-v1.0")
    outcome = await hub.context.vhosts.reconcile(retained.key)
    assert not outcome.deleted and outcome.problem is not None and outcome.problem.reason == "BrokerUnreachable"
    hub.broker.reachable = True
    outcome = await hub.context.vhosts.reconcile(retained.key)
    assert outcome.deleted
    assert VHOST in hub.broker.vhosts and (VHOST, "fr.health.samu000.message") in hub.broker.queues
    assert (VHOST, "fr.health.samu000") not in hub.broker.permissions  # access ends with the vhost's life
    assert "dispatcher.p1_v1.0" not in hub.broker.users
    deleted = hub.mark_deleted("VHostVersion", "p2-v1.0")
    assert (await hub.context.vhosts.reconcile(deleted.key)).deleted
    assert "p2_v1.0" not in hub.broker.vhosts
    hub.remove("VHostVersion", "p1-v1.0")
    await hub.context.clients.publish("sandbox", "c0")
    assert hub.condition("HubClient", "c0", "AccessProvisioned")["reason"] == "VHostVersionNotFound"


async def test_skip_annotation_completes_deletion_without_the_broker() -> None:
    hub = _simple_hub()
    await hub.converge()
    hub.broker.reachable = False
    record = hub.mark_deleted("VHostVersion", "p1-v1.0", **{"hubsante.io/skip-broker-cleanup": "true"})
    hub.broker.reset_call_log()
    assert (await hub.context.vhosts.reconcile(record.key)).deleted
    assert hub.broker.calls == []
    client = hub.mark_deleted("HubClient", "c0", **{"hubsante.io/skip-broker-cleanup": "true"})
    assert (await hub.context.clients.delete(client)).done
    assert await hub.events_for("c0", "BrokerCleanupSkipped")


async def test_perimeter_changes_roll_out_to_the_vhost() -> None:
    hub = _simple_hub()
    await hub.converge()
    hub.apply(perimeter("p1", messageTTL="2h", allowedUseCases=["createCase", "reference"],
                        dispatcher={"replicas": 3}))
    await hub.context.perimeters.reconcile(hub.refresh("Perimeter", "p1"))
    await hub.drift_tick()
    policy = hub.broker.policies[(VHOST, protocol.CLIENT_QUEUE_POLICY)]
    assert policy["definition"]["message-ttl"] == 2 * 3600 * 1000
    deployment = hub.kube.get(DEPLOYMENTS, "sandbox", "dispatcher-p1-v1-0")
    assert deployment is not None and deployment["spec"]["replicas"] == 3
    env = {e["name"]: e["value"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["HUB_DISPATCHER_ALLOWED_USE_CASES"] == "createCase,reference"
    assert env["HUB_DISPATCHER_DEFAULT_TTL_MS"] == str(2 * 3600 * 1000)
    assert hub.status("VHostVersion", "p1-v1.0")["messageTTL"] == "2h"


async def test_missing_perimeter_then_created() -> None:
    hub = Hub()
    hub.apply(vhost_version("p1", "1.0"))
    hub.apply(hub_client("c0", "fr.health.samu000", ["p1-v1.0"]))
    await hub.converge()
    assert hub.condition("VHostVersion", "p1-v1.0", "BrokerProvisioned")["reason"] == "PerimeterNotFound"
    assert hub.condition("HubClient", "c0")["reason"] == "PerimeterNotFound"
    hub.apply(perimeter("p1"))
    await hub.converge()
    assert hub.condition("HubClient", "c0")["status"] == "True"


async def test_missing_vhost_version_and_deprecated_vhost() -> None:
    hub = _simple_hub(clients=0)
    hub.apply(vhost_version("p1", "0.9", state="deprecated"))
    hub.apply(hub_client("c0", "fr.health.samu000", ["p1-v1.0", "p1-v0.9"]))
    hub.apply(hub_client("c1", "fr.health.samu001", ["p1-v1.0", "p1-v3.0"]))
    await hub.converge()
    assert hub.condition("HubClient", "c0")["status"] == "True"
    assert hub.condition("HubClient", "c0", "VHostDeprecated")["status"] == "True"
    missing = hub.condition("HubClient", "c1", "AccessProvisioned")
    assert missing["status"] == "False" and missing["reason"] == "VHostVersionNotFound" and "p1-v3.0" in missing["message"]


async def test_conflicting_clients_are_rejected_with_a_reason() -> None:
    hub = _simple_hub(clients=0)
    hub.apply(hub_client("first", "fr.health.samu000", ["p1-v1.0"]))
    hub.apply(hub_client("same-cn", "fr.health.samu001", ["p1-v1.0"], certificate={"commonName": "fr.health.samu000"}))
    hub.apply(hub_client("same-id", "fr.health.samu002", ["p1-v1.0"], additionalClientIds=["fr.health.samu000"]))
    await hub.converge()
    assert hub.condition("HubClient", "first")["status"] == "True"
    assert hub.condition("HubClient", "same-cn", "AccessProvisioned")["reason"] == "UsernameConflict"
    assert hub.condition("HubClient", "same-id", "AccessProvisioned")["reason"] == "ClientIdConflict"
    assert (VHOST, "fr.health.samu002") not in hub.broker.permissions


async def test_two_namespaces_cannot_share_a_vhost_on_one_broker() -> None:
    hub = _simple_hub()
    await hub.converge()
    hub.put_broker_secret("other")
    hub.apply(perimeter("p1"), namespace="other")
    hub.apply(vhost_version("p1", "1.0"), namespace="other")
    hub.apply(hub_client("intruder", "fr.health.samu999", ["p1-v1.0"]), namespace="other")
    await hub.converge()
    claimed = hub.condition("VHostVersion", "p1-v1.0", "VhostClaimed", namespace="other")
    assert claimed["status"] == "False" and claimed["reason"] == "ClaimedByOtherNamespace"
    assert "sandbox" in claimed["message"]
    assert (VHOST, "fr.health.samu999") not in hub.broker.permissions
    assert (VHOST, "fr.health.samu000") in hub.broker.permissions  # the owner's clients keep their access
    assert hub.condition("VHostVersion", "p1-v1.0", "VhostClaimed")["status"] == "True"


async def test_queue_conflict_is_reported_not_forced() -> None:
    hub = _simple_hub()
    await hub.converge()
    await hub.broker.delete_queue(VHOST, "fr.health.samu000.ack")
    await hub.broker.import_definitions({"queues": [{"vhost": VHOST, "name": "fr.health.samu000.ack", "durable": True,
                                                     "auto_delete": False, "arguments": {"x-max-length": 5}}]})
    await hub.drift_tick()
    access = hub.condition("HubClient", "c0", "AccessProvisioned")
    assert access["status"] == "False" and access["reason"] == "QueueConflict"
    assert await hub.events_for("c0", "ProvisioningConflict")


async def test_dispatcher_readiness_and_autoscaling() -> None:
    hub = Hub()
    hub.apply(perimeter("p1", dispatcher={"autoscaling": {"minReplicas": 1, "maxReplicas": 4, "targetQueueDepth": 10}}))
    hub.apply(vhost_version("p1", "1.0"))
    await hub.converge()
    key = ("sandbox", "p1-v1.0")
    assert hub.condition("VHostVersion", "p1-v1.0", "DispatcherAvailable")["reason"] == "DispatcherNotReady"
    hub.kube.set_status(DEPLOYMENTS, "sandbox", "dispatcher-p1-v1-0", {"readyReplicas": 1, "replicas": 1})
    await hub.context.vhosts.dispatcher_changed(key, hub.kube.get(DEPLOYMENTS, "sandbox", "dispatcher-p1-v1-0"))
    assert hub.condition("VHostVersion", "p1-v1.0")["status"] == "True"
    assert hub.condition("VHostVersion", "p1-v1.0", "ModelsAvailable")["reason"] == "LoadedByDispatcher"
    assert hub.condition("Perimeter", "p1")["status"] == "True"
    hub.broker.set_queue_depth(VHOST, protocol.DISPATCH_QUEUE, ready=35)
    await hub.drift_tick()
    deployment = hub.kube.get(DEPLOYMENTS, "sandbox", "dispatcher-p1-v1-0")
    assert deployment is not None and deployment["spec"]["replicas"] == 4
    assert hub.status("VHostVersion", "p1-v1.0")["dispatcher"]["replicas"] == 4


async def test_scaled_to_zero_is_ready_and_says_so() -> None:
    hub = Hub()
    hub.apply(perimeter("p1", dispatcher={"replicas": 0}))
    hub.apply(vhost_version("p1", "1.0"))
    await hub.converge()
    ready = hub.condition("VHostVersion", "p1-v1.0")
    assert ready["status"] == "True" and ready["reason"] == "ScaledToZero"


async def test_preferences_reach_the_dispatchers() -> None:
    import yaml

    hub = _simple_hub(clients=0)
    hub.apply(hub_client("c0", "fr.health.samu000", ["p1-v1.0"], preferences={"format": "xml", "editor": "Acme"}))
    hub.apply(hub_client("fire", "fr.fire.nexsis.sdis50", ["p1-v1.0"], preferences={"format": "json"}))
    await hub.converge()
    config_map = hub.kube.get(CONFIG_MAPS, "sandbox", "dispatcher-p1-v1-0-preferences")
    assert config_map is not None
    document = yaml.safe_load(config_map["data"]["preferences.yaml"])
    assert document["clients"]["fr.health.samu000"] == {"format": "xml", "editor": "Acme"}
    assert document["clients"]["fr.fire.nexsis.sdis50"] == {"format": "xml"}


async def test_bundle_config_maps_must_exist() -> None:
    hub = Hub()
    hub.apply(perimeter("p1"))
    hub.apply(vhost_version("p1", "1.0", models={"version": "1.1", "configMaps": [{"name": "bundle-a"}]}))
    await hub.converge()
    models = hub.condition("VHostVersion", "p1-v1.0", "ModelsAvailable")
    assert models["status"] == "False" and models["reason"] == "ModelConfigMapNotFound"
    assert hub.kube.get(DEPLOYMENTS, "sandbox", "dispatcher-p1-v1-0") is None


async def test_missing_broker_secret() -> None:
    hub = _simple_hub()
    hub.kube.objects.pop(("secrets", "sandbox", "hub-broker"))
    await hub.converge()
    assert hub.condition("VHostVersion", "p1-v1.0", "BrokerProvisioned")["reason"] == "BrokerSecretNotFound"


async def test_dispatcher_identity_has_its_certificate_and_least_privilege() -> None:
    hub = _simple_hub()
    await hub.converge()
    secret = hub.kube.get(SECRETS, "sandbox", "dispatcher-p1-v1-0-tls")
    assert secret is not None and set(secret["data"]) >= {"tls.crt", "tls.key", "ca.crt", "keystore.p12"}
    assert secret["metadata"]["ownerReferences"][0]["kind"] == "VHostVersion"
    permission = hub.broker.permissions[(VHOST, "dispatcher.p1_v1.0")]
    assert (permission["configure"], permission["write"], permission["read"]) == (
        "^$", "^distribution$", r"^dispatch(\.dlq)?$")


async def test_exported_definitions_match_the_desired_state_exactly() -> None:
    hub = _simple_hub()
    await hub.converge()
    export = Definitions.from_api(await hub.broker.export_definitions()).restricted_to({VHOST})
    users = {item.user for item in export.items(ItemKind.PERMISSION)}
    assert users == {"hub-admin", "dispatcher.p1_v1.0", "fr.health.samu000", "fr.health.samu001"}
    assert len(export.items(ItemKind.QUEUE)) == 2 + 2 * 3
    assert len(export.items(ItemKind.TOPIC_PERMISSION)) == 2


async def test_a_changed_common_name_retires_the_old_user() -> None:
    hub = _simple_hub()
    await hub.converge()
    record = hub.apply(hub_client("c0", "fr.health.samu000", ["p1-v1.0"],
                                  certificate={"commonName": "lrm.editor.example.fr"}))
    await hub.context.clients.reconcile(hub.refresh("HubClient", "c0"))
    assert record.spec is not None
    assert "fr.health.samu000" not in hub.broker.users
    assert (VHOST, "lrm.editor.example.fr") in hub.broker.permissions
    assert hub.status("HubClient", "c0")["username"] == "lrm.editor.example.fr"
    assert await hub.events_for("c0", "UserRetired")
