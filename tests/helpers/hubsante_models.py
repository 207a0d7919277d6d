"""Test data from the real model bundles (never copied into the repo): lookup, and wrapping of the bare
use-case examples of ``sample/examples`` into the RC-DE header and the EDXL-DE envelope.

The wrapping itself is product code (:mod:`hub_dispatcher.edxl`, used by ``hubctl send``); this module only
gives it the fixed dates and the default parties the tests rely on.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from hub_devenv.paths import model_bundle
from hub_dispatcher import edxl
from hub_dispatcher.xmlcodec import EDXL_NS, XLINK_NS

__all__ = [
    "EDXL_NS",
    "MODEL_VERSIONS",
    "XLINK_NS",
    "Example",
    "bundle_dir",
    "envelope",
    "header",
    "json_examples",
    "message_of",
    "xml_envelope",
    "xml_examples",
]

MODEL_VERSIONS = ("1.1", "2.2", "3.4.1")
#: Fixed so that two runs build the same bytes; far-future expiry so that no test message expires.
SENT_AT = "2024-05-02T10:00:00+02:00"
EXPIRES = "2072-07-25T10:04:34+01:00"


def bundle_dir(version: str) -> Path:
    return model_bundle(version)


@dataclass(frozen=True)
class Example:
    version: str
    path: Path

    @property
    def id(self) -> str:
        return f"{self.version}/{self.path.parent.name}/{self.path.name}"

    def use_case(self) -> dict[str, Any]:
        """The bare use-case object, e.g. ``{"createCase": {...}}``."""
        return edxl.UseCaseExample(self.path).use_case()


def _examples(version: str, suffix: str, *, required: bool) -> Iterator[Example]:
    examples = list(edxl.bundle_examples(bundle_dir(version), suffix))
    if required and not examples:
        raise FileNotFoundError(f"no {suffix} examples in {bundle_dir(version)}/sample/examples")
    for example in examples:
        yield Example(version, example.path)


def json_examples(version: str) -> Iterator[Example]:
    return _examples(version, "json", required=True)


def xml_examples(version: str) -> Iterator[Example]:
    """XML examples exist from model 2.x on (1.1 ships JSON examples only)."""
    return _examples(version, "xml", required=False)


def _addressing(sender: str, recipient: str, kind: str, distribution_id: str | None, expires: str) -> edxl.Addressing:
    # Built directly (not Addressing.create) so that tests may address anyone, even invalid ids.
    return edxl.Addressing(
        sender=sender,
        recipient=recipient,
        kind=edxl.DistributionKind(kind),
        distribution_id=distribution_id or edxl.new_distribution_id(sender),
        sent_at=datetime.fromisoformat(SENT_AT),
        expires_at=datetime.fromisoformat(expires),
    )


def header(sender: str, recipient: str, kind: str, message_id: str) -> dict[str, Any]:
    return edxl.rc_de_header(_addressing(sender, recipient, kind, message_id, EXPIRES))


def envelope(
    use_case: dict[str, Any],
    *,
    sender: str = "fr.health.samu050",
    recipient: str = "fr.health.samu076",
    kind: str = "Report",
    with_header: bool = True,
    distribution_id: str | None = None,
    expires: str = EXPIRES,
) -> dict[str, Any]:
    """A full JSON EDXL-DE message carrying ``use_case`` (with the RC-DE header unless told otherwise)."""
    return edxl.json_message(use_case, _addressing(sender, recipient, kind, distribution_id, expires),
                             with_header=with_header)


def message_of(document: dict[str, Any]) -> dict[str, Any]:
    """The ``message`` object inside a JSON message: the RC-DE header and the use case, side by side."""
    message: dict[str, Any] = document["content"][0]["jsonContent"]["embeddedJsonContent"]["message"]
    return message


def xml_envelope(
    use_case_xml: bytes,
    message_namespace: str,
    *,
    sender: str = "fr.fire.nexsis.sdis50",
    recipient: str = "fr.health.samu050",
    kind: str = "Report",
    with_header: bool = True,
    distribution_id: str | None = None,
    expires: str = EXPIRES,
) -> bytes:
    """A full XML EDXL-DE message around a bare use-case element (``sample/examples/*/*.xml``)."""
    return edxl.xml_message(use_case_xml, message_namespace,
                            _addressing(sender, recipient, kind, distribution_id, expires), with_header=with_header)
