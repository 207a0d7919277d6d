"""Per-client preferences: the format a client wants to receive (JSON or XML) and its editor (a metrics
label).  The operator writes them to a file (a mounted ConfigMap key), JSON or YAML::

    clients:
      fr.health.samu050: {format: json, editor: acme-lrm}
      fr.fire.nexsis.sdis50: {format: xml, editor: nexsis}

(a bare mapping of client id -> preference is accepted too).  A client without an entry gets JSON if it is a
health actor, XML otherwise (NexSIS and the other forces speak XML).

The pipeline only reads the current snapshot (no I/O on the hot path); the worker calls
:meth:`PreferencesFile.reload_if_changed` on a timer.  A file that stops parsing keeps the last good
snapshot and records the error, so a bad ConfigMap edit never stops routing.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from hub_dispatcher.message import MessageFormat
from hub_dispatcher.protocol import is_health_actor

log = logging.getLogger(__name__)


class PreferencesError(ValueError):
    """A preferences document that is not a mapping of client id -> {format, editor}."""


@dataclass(frozen=True, slots=True)
class ClientPreference:
    format: MessageFormat
    editor: str = ""


@functools.lru_cache(maxsize=4096)
def default_preference(client_id: str) -> ClientPreference:
    """Cached: looked up twice per message (the recipient's format, the sender's editor label) and the same
    few clients come back; a preference is immutable, so sharing one is safe."""
    return ClientPreference(MessageFormat.JSON if is_health_actor(client_id) else MessageFormat.XML)


class PreferenceLookup(Protocol):
    def for_client(self, client_id: str) -> ClientPreference: ...


@dataclass(frozen=True)
class Preferences:
    """An immutable snapshot."""

    clients: Mapping[str, ClientPreference]

    def for_client(self, client_id: str) -> ClientPreference:
        found = self.clients.get(client_id)
        return found if found is not None else default_preference(client_id)

    @classmethod
    def empty(cls) -> Preferences:
        return cls({})

    @classmethod
    def parse(cls, text: str | bytes) -> Preferences:
        """Parses a JSON or YAML document (JSON is YAML, but a JSON parse gives better errors for JSON)."""
        raw = text.decode("utf-8") if isinstance(text, bytes) else text
        document: Any
        try:
            document = json.loads(raw)
        except ValueError:
            try:
                document = yaml.safe_load(raw)
            except yaml.YAMLError as error:
                raise PreferencesError(f"neither JSON nor YAML: {error}") from None
        return cls.from_mapping(document)

    @classmethod
    def from_mapping(cls, document: Any) -> Preferences:
        if document is None:
            return cls.empty()
        if not isinstance(document, Mapping):
            raise PreferencesError(f"expected a mapping, got {type(document).__name__}")
        clients = document["clients"] if "clients" in document else document
        if clients is None:
            return cls.empty()
        if not isinstance(clients, Mapping):
            raise PreferencesError("'clients' must be a mapping of client id -> preference")
        return cls({str(client_id): _preference(str(client_id), value) for client_id, value in clients.items()})


def _preference(client_id: str, value: Any) -> ClientPreference:
    if not isinstance(value, Mapping):
        raise PreferencesError(f"{client_id}: expected a mapping with 'format' and/or 'editor'")
    unknown = set(value) - {"format", "editor"}
    if unknown:
        raise PreferencesError(f"{client_id}: unknown keys {', '.join(sorted(map(str, unknown)))}")
    default = default_preference(client_id)
    raw_format = value.get("format")
    if raw_format is None:
        message_format = default.format
    else:
        try:
            message_format = MessageFormat(str(raw_format).lower())
        except ValueError:
            raise PreferencesError(f"{client_id}: format must be json or xml, got {raw_format!r}") from None
    editor = value.get("editor") or ""
    if not isinstance(editor, str):
        raise PreferencesError(f"{client_id}: editor must be a string")
    return ClientPreference(message_format, editor)


class PreferencesFile:
    """Preferences read from a file, reloaded when the file changes (ConfigMap updates swap a symlink,
    which changes the stat of the path)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._snapshot = Preferences.empty()
        self._signature: tuple[int, int, int] | None = None
        self.last_error: str = ""
        self.reload_if_changed()

    @property
    def current(self) -> Preferences:
        return self._snapshot

    def for_client(self, client_id: str) -> ClientPreference:
        return self._snapshot.for_client(client_id)

    def reload_if_changed(self) -> bool:
        """Re-reads the file if its stat changed; True if a new snapshot is in force."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            # No file (yet): every client gets its default.  Not an error: the ConfigMap may be empty.
            changed = self._signature is not None
            self._signature = None
            if changed:
                self._snapshot = Preferences.empty()
            return changed
        signature = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if signature == self._signature:
            return False
        self._signature = signature
        try:
            snapshot = Preferences.parse(self.path.read_bytes())
        except (OSError, UnicodeDecodeError, PreferencesError) as error:
            self.last_error = f"{self.path}: {error}"
            log.error("client preferences not reloaded, keeping the previous ones: %s", self.last_error)
            return False
        self._snapshot = snapshot
        self.last_error = ""
        return True
