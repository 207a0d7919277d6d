"""The client-preferences ConfigMap: the dispatcher's file format, deterministic, owned by the VHostVersion."""

from __future__ import annotations

from typing import Any

import pytest
from hub_dispatcher.message import MessageFormat
from hub_dispatcher.preferences import ClientPreference, Preferences
from hub_operator.builders.workloads import (
    InvalidWorkload,
    OwnerReference,
    manifests_yaml,
    preferences_config_map_name,
    render_preferences_config_map,
)

from tests.unit.workloads.workloads_support import OWNER, assert_valid_object

NAME = preferences_config_map_name(OWNER.name)
PREFERENCES = {
    "fr.health.samu76A": ClientPreference(MessageFormat.XML, "Éditeur Régional"),
    "fr.fire.nexsis.sdis50": ClientPreference(MessageFormat.XML),
    "fr.health.samu050": ClientPreference(MessageFormat.JSON, "acme"),
}


def _render(preferences: Any = PREFERENCES, **overrides: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {"name": NAME, "namespace": "hub-integration", "owner": OWNER,
                                 "preferences": preferences}
    arguments.update(overrides)
    return render_preferences_config_map(**arguments)


def test_round_trips_through_the_dispatcher_parser() -> None:
    config_map = _render()
    assert list(config_map["data"]) == ["preferences.yaml"]
    parsed = Preferences.parse(config_map["data"]["preferences.yaml"])
    assert dict(parsed.clients) == PREFERENCES


def test_sorted_and_without_empty_editors() -> None:
    document = _render()["data"]["preferences.yaml"]
    assert document == (
        "clients:\n"
        "  fr.fire.nexsis.sdis50:\n"
        "    format: xml\n"
        "  fr.health.samu050:\n"
        "    editor: acme\n"
        "    format: json\n"
        "  fr.health.samu76A:\n"
        "    editor: Éditeur Régional\n"
        "    format: xml\n"
    )


def test_same_preferences_in_any_order_give_the_same_bytes() -> None:
    reversed_order = dict(reversed(list(PREFERENCES.items())))
    assert manifests_yaml([_render()]) == manifests_yaml([_render(reversed_order)])


def test_no_client_yet_gives_an_empty_document_the_dispatcher_accepts() -> None:
    document = _render({})["data"]["preferences.yaml"]
    assert Preferences.parse(document).clients == {}


def test_metadata_and_schema() -> None:
    config_map = _render()
    assert_valid_object(config_map)
    metadata = config_map["metadata"]
    assert (metadata["name"], metadata["namespace"]) == ("dispatcher-15-15-v2-0-preferences", "hub-integration")
    assert metadata["ownerReferences"] == [OWNER.to_manifest()]
    assert metadata["labels"]["app.kubernetes.io/component"] == "client-preferences"
    assert metadata["labels"]["hubsante.io/vhost-version"] == "15-15-v2.0"


@pytest.mark.parametrize(("overrides", "message"), [
    ({"preferences": {"samu050": ClientPreference(MessageFormat.JSON)}}, "'samu050' is not a client id"),
    ({"preferences": {"fr.health.samu050": {"format": "json"}}}, "fr.health.samu050: expected a ClientPreference"),
    ({"preferences": [("fr.health.samu050", ClientPreference(MessageFormat.JSON))]}, "must be a mapping"),
    ({"name": "Preferences"}, "'Preferences' is not a ConfigMap name"),
    ({"namespace": "hub.integration"}, "namespace 'hub.integration' is not a namespace name"),
    ({"owner": {"name": OWNER.name, "uid": OWNER.uid}}, "owner must be an OwnerReference"),
])
def test_bad_input_is_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidWorkload, match=message):
        _render(**overrides)


def test_owner_is_rendered_as_given() -> None:
    owner = OwnerReference(name="15-smur-v1.4", uid="u-2")
    assert _render(owner=owner)["metadata"]["ownerReferences"][0]["name"] == "15-smur-v1.4"


def test_a_thousand_clients_give_the_bytes_of_the_reference_dumper() -> None:
    # Rendered at every vhost run: libyaml's dumper is used when present, and must not change a byte.
    import yaml

    preferences = {f"fr.health.samu{i:03d}.smur{j}": ClientPreference(MessageFormat.JSON, "Éditeur Régional")
                   for i in range(200) for j in range(1, 6)}
    expected = yaml.safe_dump(
        {"clients": {client_id: {"editor": "Éditeur Régional", "format": "json"} for client_id in preferences}},
        sort_keys=True, allow_unicode=True, default_flow_style=False,
    )
    assert _render(preferences)["data"]["preferences.yaml"] == expected
