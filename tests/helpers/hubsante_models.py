"""Test data from the real model bundles (never copied into the repo): lookup, and wrapping of the bare
use-case examples of ``sample/examples`` into the RC-DE header and the EDXL-DE envelope."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lxml import etree

from hub_devenv.paths import model_bundle, models_root

MODEL_VERSIONS = ("1.1", "2.2", "3.4.1")
EDXL_NS = "urn:oasis:names:tc:emergency:EDXL:DE:2.0"
XLINK_NS = "http://www.w3.org/1999/xlink"


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
        value = json.loads(self.path.read_text(encoding="utf-8"))
        assert isinstance(value, dict) and len(value) == 1, f"{self.path}: one use-case key expected"
        return value


def _examples(version: str, suffix: str, *, required: bool) -> Iterator[Example]:
    paths = sorted((bundle_dir(version) / "sample" / "examples").glob(f"*/*.{suffix}"))
    if required and not paths:
        raise FileNotFoundError(f"no {suffix} examples in {bundle_dir(version)}/sample/examples")
    for path in paths:
        yield Example(version, path)


def json_examples(version: str) -> Iterator[Example]:
    return _examples(version, "json", required=True)


def xml_examples(version: str) -> Iterator[Example]:
    """XML examples exist from model 2.x on (1.1 ships JSON examples only)."""
    return _examples(version, "xml", required=False)


def header(sender: str, recipient: str, kind: str, message_id: str) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "sender": {"name": sender.rsplit(".", 1)[-1], "URI": f"hubex:{sender}"},
        "sentAt": "2024-05-02T10:00:00+02:00",
        "kind": kind,
        "status": "Actual",
        "recipient": [{"name": recipient.rsplit(".", 1)[-1], "URI": f"hubex:{recipient}"}],
    }


def envelope(
    use_case: dict[str, Any],
    *,
    sender: str = "fr.health.samu050",
    recipient: str = "fr.health.samu076",
    kind: str = "Report",
    with_header: bool = True,
    distribution_id: str | None = None,
    expires: str = "2072-07-25T10:04:34+01:00",
) -> dict[str, Any]:
    """A full JSON EDXL-DE message carrying ``use_case`` (with the RC-DE header unless told otherwise)."""
    distribution_id = distribution_id or f"{sender}_{uuid.uuid4()}"
    message = dict(header(sender, recipient, kind, distribution_id)) if with_header else {}
    message.update(copy.deepcopy(use_case))
    return {
        "distributionID": distribution_id,
        "senderID": sender,
        "dateTimeSent": "2024-05-02T10:00:00+02:00",
        "dateTimeExpires": expires,
        "distributionStatus": "Actual",
        "distributionKind": kind,
        "descriptor": {
            "language": "fr-FR",
            "explicitAddress": {"explicitAddressScheme": "hubex", "explicitAddressValue": recipient},
        },
        "content": [{"jsonContent": {"embeddedJsonContent": {"message": message}}}],
    }


def xml_envelope(
    use_case_xml: bytes,
    message_namespace: str,
    *,
    sender: str = "fr.fire.nexsis.sdis50",
    recipient: str = "fr.health.samu050",
    kind: str = "Report",
    with_header: bool = True,
    distribution_id: str | None = None,
    expires: str = "2072-07-25T10:04:34+01:00",
) -> bytes:
    """A full XML EDXL-DE message around a bare use-case element (``sample/examples/*/*.xml``)."""
    distribution_id = distribution_id or f"{sender}_{uuid.uuid4()}"
    root = etree.Element(f"{{{EDXL_NS}}}edxlDistribution", {f"{{{XLINK_NS}}}type": "extended"},
                         nsmap={None: EDXL_NS, "xlink": XLINK_NS})
    for name, value in (("distributionID", distribution_id), ("senderID", sender),
                        ("dateTimeSent", "2024-05-02T10:00:00+02:00"), ("dateTimeExpires", expires),
                        ("distributionStatus", "Actual"), ("distributionKind", kind)):
        etree.SubElement(root, f"{{{EDXL_NS}}}{name}").text = value
    descriptor = etree.SubElement(root, f"{{{EDXL_NS}}}descriptor", {f"{{{XLINK_NS}}}type": "resource"})
    etree.SubElement(descriptor, f"{{{EDXL_NS}}}language").text = "fr-FR"
    address = etree.SubElement(descriptor, f"{{{EDXL_NS}}}explicitAddress")
    etree.SubElement(address, f"{{{EDXL_NS}}}explicitAddressScheme").text = "hubex"
    etree.SubElement(address, f"{{{EDXL_NS}}}explicitAddressValue").text = recipient
    content = etree.SubElement(root, f"{{{EDXL_NS}}}content", {f"{{{XLINK_NS}}}type": "resource"})
    content_object = etree.SubElement(content, f"{{{EDXL_NS}}}contentObject", {f"{{{XLINK_NS}}}type": "resource"})
    embedded = etree.SubElement(etree.SubElement(content_object, f"{{{EDXL_NS}}}contentXML"),
                                f"{{{EDXL_NS}}}embeddedXMLContent")
    message = etree.SubElement(embedded, f"{{{message_namespace}}}message", nsmap={None: message_namespace})
    if with_header:
        values = header(sender, recipient, kind, distribution_id)
        for name in ("messageId",):
            etree.SubElement(message, f"{{{message_namespace}}}{name}").text = values[name]
        for name in ("sender",):
            sender_element = etree.SubElement(message, f"{{{message_namespace}}}sender")
            etree.SubElement(sender_element, f"{{{message_namespace}}}name").text = values[name]["name"]
            etree.SubElement(sender_element, f"{{{message_namespace}}}URI").text = values[name]["URI"]
        for name in ("sentAt", "kind", "status"):
            etree.SubElement(message, f"{{{message_namespace}}}{name}").text = values[name]
        for value in values["recipient"]:
            recipient_element = etree.SubElement(message, f"{{{message_namespace}}}recipient")
            etree.SubElement(recipient_element, f"{{{message_namespace}}}name").text = value["name"]
            etree.SubElement(recipient_element, f"{{{message_namespace}}}URI").text = value["URI"]
    message.append(etree.fromstring(use_case_xml))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
