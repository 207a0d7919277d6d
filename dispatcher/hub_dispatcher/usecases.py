"""The catalogue of Hub Santé use cases: the key a message carries beside its header, and its model.

One list, used by the dispatcher to recognise a message, by the API to validate a Perimeter's allow-list,
and by the tests.  Which of them a given model bundle actually defines is read from the bundle itself.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class UseCase:
    key: str
    """The property of ``message`` that holds the use-case object, e.g. ``createCase``."""
    model: str
    """The model (schema file stem, sample folder) name, e.g. ``RC-EDA``."""
    has_header: bool = True
    """False for the few use cases that travel without the RC-DE header (validated with no-header XSD)."""
    description: str = ""


USE_CASES: tuple[UseCase, ...] = (
    UseCase("createCase", "RC-EDA", description="case shared between forces (CISU)"),
    UseCase("createCaseHealth", "RS-EDA", description="case shared between health actors"),
    UseCase("createCaseHealthUpdate", "RS-EDA-MAJ", description="update of a health case"),
    UseCase("reference", "RC-REF", description="functional acknowledgement"),
    UseCase("emsi", "EMSI", description="EMSI operational situation"),
    UseCase("resourcesInfo", "RS-RI", description="resources engaged (health)"),
    UseCase("resourcesInfoCisu", "RC-RI", description="resources engaged (between forces)"),
    UseCase("resourcesEngagement", "RS-ER", description="resource engagement"),
    UseCase("resourcesStatus", "RS-SR", description="resource status"),
    UseCase("resourcesRequest", "RS-DR", description="resource request"),
    UseCase("resourcesResponse", "RS-RR", description="response to a resource request"),
    UseCase("rpis", "RS-RPIS", description="RPIS intervention data (SMUR)"),
    UseCase("interventionReport", "RS-BPV", description="intervention report"),
    UseCase("documentLink", "RS-URL", description="link to a document"),
    UseCase("geoPositionsUpdate", "GEO-POS", description="resource positions"),
    UseCase("geoResourcesRequest", "GEO-REQ", description="request for resource positions"),
    UseCase("geoResourcesDetails", "GEO-RES", description="resource details for positions"),
    UseCase("appointment", "RS-SAS-RDV", description="SAS appointment"),
    UseCase("technical", "TECHNICAL", description="technical test message"),
    UseCase("technicalNoreq", "TECHNICAL_NOREQ", has_header=False, description="technical, no header"),
    UseCase("distributionElement", "RC-DE", has_header=False, description="header only"),
    UseCase("customContent", "customContent", has_header=False, description="free content (sandbox)"),
    UseCase("info", "RS-INFO", has_header=False, description="information report"),
    UseCase("error", "RS-ERROR", has_header=False, description="error report (RS-ERROR)"),
)

BY_KEY: dict[str, UseCase] = {use_case.key: use_case for use_case in USE_CASES}
KEYS: tuple[str, ...] = tuple(BY_KEY)

#: The key of an error report: the dispatcher never reports on it (no loops).
ERROR_KEY = "error"
