"""Client preferences (file, reload, defaults) and dispatcher settings (env, CLI, errors)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hub_dispatcher.message import MessageFormat
from hub_dispatcher.preferences import ClientPreference, Preferences, PreferencesError, PreferencesFile
from hub_dispatcher.protocol import ProtocolProfile
from hub_dispatcher.settings import DispatcherSettings, SettingsError


def test_defaults_json_for_health_xml_for_others() -> None:
    preferences = Preferences.empty()
    assert preferences.for_client("fr.health.samu050") == ClientPreference(MessageFormat.JSON)
    assert preferences.for_client("fr.fire.nexsis.sdis50") == ClientPreference(MessageFormat.XML)


@pytest.mark.parametrize("text", [
    '{"clients": {"fr.health.samu050": {"format": "xml", "editor": "acme"}}}',
    "clients:\n  fr.health.samu050: {format: XML, editor: acme}\n",
    "fr.health.samu050:\n  format: xml\n  editor: acme\n",
])
def test_json_and_yaml_documents(text: str) -> None:
    assert Preferences.parse(text).for_client("fr.health.samu050") == ClientPreference(MessageFormat.XML, "acme")


@pytest.mark.parametrize(("text", "message"), [
    ("[1, 2]", "expected a mapping"),
    ('{"clients": [1]}', "'clients' must be a mapping"),
    ('{"fr.health.samu050": "xml"}', "fr.health.samu050: expected a mapping"),
    ('{"fr.health.samu050": {"format": "csv"}}', "format must be json or xml, got 'csv'"),
    ('{"fr.health.samu050": {"colour": "red"}}', "unknown keys colour"),
    ('{"fr.health.samu050": {"editor": 3}}', "editor must be a string"),
    ("a: [unclosed", "neither JSON nor YAML"),
])
def test_bad_documents_are_explained(text: str, message: str) -> None:
    with pytest.raises(PreferencesError, match=message):
        Preferences.parse(text)


def test_file_is_reloaded_when_it_changes_and_keeps_the_last_good_version(tmp_path: Path) -> None:
    path = tmp_path / "preferences.yaml"
    path.write_text("fr.health.samu050: {format: xml}\n")
    watched = PreferencesFile(path)
    assert watched.for_client("fr.health.samu050").format is MessageFormat.XML
    assert watched.reload_if_changed() is False

    path.write_text("fr.health.samu050: {format: json, editor: acme}\n")
    os.utime(path, ns=(1, 10**18))  # a distinct mtime even on coarse clocks
    assert watched.reload_if_changed() is True
    assert watched.for_client("fr.health.samu050") == ClientPreference(MessageFormat.JSON, "acme")

    path.write_text("fr.health.samu050: {format: csv}\n")
    os.utime(path, ns=(1, 2 * 10**18))
    assert watched.reload_if_changed() is False
    assert "format must be json or xml" in watched.last_error
    assert watched.for_client("fr.health.samu050").editor == "acme"

    path.unlink()
    assert watched.reload_if_changed() is True
    assert watched.for_client("fr.health.samu050") == ClientPreference(MessageFormat.JSON)


def test_missing_file_means_defaults(tmp_path: Path) -> None:
    assert PreferencesFile(tmp_path / "absent.json").for_client("fr.fire.x.y").format is MessageFormat.XML


def test_settings_from_environment_and_command_line() -> None:
    settings = DispatcherSettings.load(
        ["--profile", "legacy", "--allowed-use-cases", "createCase, reference"],
        {"HUB_DISPATCHER_VHOST": "15-15_v1.5", "HUB_DISPATCHER_BUNDLE_DIR": "/models/1.1",
         "HUB_DISPATCHER_DEFAULT_TTL_MS": "60000", "HUB_DISPATCHER_VALIDATE_CONVERTED": "false", "PATH": "/bin"},
    )
    assert settings.vhost == "15-15_v1.5" and settings.bundle_dir == Path("/models/1.1")
    assert settings.profile is ProtocolProfile.LEGACY
    assert settings.allowed_use_cases == frozenset({"createCase", "reference"})
    assert settings.default_ttl_ms == 60000 and settings.validate_converted is False


@pytest.mark.parametrize(("values", "message"), [
    ({"bundle_dir": "/m"}, "vhost is required"),
    ({"vhost": "/15-15_v1.5", "bundle_dir": "/m"}, "without a leading slash"),
    ({"vhost": "v", "bundle_dir": "/m", "profile": "old"}, "profile: 'old' is not valid"),
    ({"vhost": "v", "bundle_dir": "/m", "default_ttl_ms": "soon"}, "default_ttl_ms: 'soon' is not valid"),
    ({"vhost": "v", "bundle_dir": "/m", "default_ttl_ms": "0"}, "default_ttl_ms must be positive"),
    ({"vhost": "v", "bundle_dir": "/m", "allowed_use_cases": "createCase,teleport"}, "unknown use-case keys teleport"),
    ({"vhost": "v", "bundle_dir": "/m", "colour": "red"}, "unknown settings: colour"),
    ({"vhost": "v", "bundle_dir": "/m", "validate_converted": "maybe"}, "expected true or false"),
])
def test_bad_settings_are_explained(values: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        DispatcherSettings.from_strings(values)


def test_star_means_every_use_case() -> None:
    assert DispatcherSettings.from_strings({"vhost": "v", "bundle_dir": "/m", "allowed_use_cases": "*"}).allowed_use_cases is None
