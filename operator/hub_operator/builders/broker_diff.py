"""Desired versus actual definitions: what is missing, what differs, what is extra.

A diff only *describes*.  It never decides to delete anything: extra items are reported, and removing them
(a client's permissions on revocation, a queue with its messages on deletion) is an explicit operation of
:mod:`hub_operator.broker_sync`.  Differences an import cannot fix (a queue's arguments, an exchange's type:
declaring an existing one keeps it as it is) are reported as conflicts rather than as updates.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .broker_definitions import DefinitionItem, Definitions, ItemKind


@dataclass(frozen=True)
class Alteration:
    """An item present on both sides with the same identity but different properties."""

    desired: DefinitionItem
    actual: DefinitionItem

    @property
    def kind(self) -> ItemKind:
        return self.desired.kind

    @property
    def changed_fields(self) -> tuple[str, ...]:
        return tuple(
            spec.name
            for spec in dataclasses.fields(self.desired)
            if getattr(self.desired, spec.name) != getattr(self.actual, spec.name)
        )

    def describe(self) -> str:
        return f"{self.desired.describe()} ({', '.join(self.changed_fields)} differ)"


@dataclass(frozen=True)
class DefinitionsDiff:
    missing: tuple[DefinitionItem, ...] = ()
    altered: tuple[Alteration, ...] = ()
    extra: tuple[DefinitionItem, ...] = ()

    @property
    def updates(self) -> tuple[Alteration, ...]:
        """Alterations an import overwrites (users, permissions, topic permissions, policies)."""
        return tuple(change for change in self.altered if change.kind.updatable_by_import)

    @property
    def conflicts(self) -> tuple[Alteration, ...]:
        """Alterations an import cannot fix: the existing queue or exchange must be deleted first."""
        return tuple(change for change in self.altered if not change.kind.updatable_by_import)

    @property
    def in_sync(self) -> bool:
        """Everything desired is present as desired (extra items do not count)."""
        return not self.missing and not self.altered

    def to_import(self) -> Definitions:
        """The bulk import that brings the broker to the desired state, as far as an import can."""
        return Definitions.of([*self.missing, *(change.desired for change in self.updates)])

    def extra_of(self, kind: ItemKind) -> tuple[DefinitionItem, ...]:
        return tuple(item for item in self.extra if item.kind is kind)


def diff(desired: Definitions, actual: Definitions) -> DefinitionsDiff:
    """Compare item by item; both sides should cover the same scope (see :meth:`Definitions.restricted_to`)."""
    missing: list[DefinitionItem] = []
    altered: list[Alteration] = []
    extra: list[DefinitionItem] = []
    for kind in ItemKind:
        wanted, present = desired.section(kind), actual.section(kind)
        for key, item in wanted.items():
            existing = present.get(key)
            if existing is None:
                missing.append(item)
            elif existing != item:
                altered.append(Alteration(item, existing))
        extra.extend(item for key, item in present.items() if key not in wanted)
    return DefinitionsDiff(tuple(missing), tuple(altered), tuple(extra))
