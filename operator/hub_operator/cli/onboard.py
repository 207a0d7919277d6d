"""``hubctl onboard``: a ready-to-commit HubClient manifest, built from the API model so it is valid by
construction, for VHostVersions that exist (checked against the cluster unless offline)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import yaml
from pydantic import ValidationError

from hub_dispatcher import protocol
from hub_operator.api.fieldtypes import OBJECT_NAME_MAX, OBJECT_NAME_PATTERN
from hub_operator.api.hubclient import CertificateMode, IssuerKind, MessageFormat
from hub_operator.api.resources import HubClient, VHostVersion
from hub_operator.api.vhostversion import LifecycleState, expected_object_name
from hub_operator.cli.errors import HubctlError

_VERSION_RE = re.compile(protocol.SPEC_VERSION_PATTERN)
_OBJECT_NAME_RE = re.compile(OBJECT_NAME_PATTERN)


@dataclass(frozen=True)
class OnboardRequest:
    client_id: str
    perimeter: str | None = None
    vhosts: Sequence[str] = ()
    """Each a version (``2.0``, with ``perimeter``), a vhost (``15-15_v2.0``) or a VHostVersion name (``15-15-v2.0``)."""
    name: str | None = None
    additional_client_ids: Sequence[str] = ()
    common_name: str | None = None
    certificate_mode: CertificateMode = CertificateMode.OPERATOR
    issuer: str | None = None
    issuer_kind: IssuerKind = IssuerKind.ISSUER
    message_format: MessageFormat = MessageFormat.JSON
    editor: str | None = None
    namespace: str | None = None
    warnings: list[str] = field(default_factory=list)


def check_client_id(client_id: str, what: str = "client id") -> None:
    if not protocol.is_valid_client_id(client_id):
        raise HubctlError(f"{what} {client_id!r} is not a Hub Santé client id",
                          hint="fr.<domain>.<organisation>[.<unit>], e.g. fr.health.samu050 or fr.fire.nexsis.sdis50")
    if client_id == protocol.HUB_SENDER_ID:
        raise HubctlError(f"{client_id} is the hub's own sender id, not a client")


def object_name_for(client_id: str) -> str:
    """The HubClient name hubctl suggests: the client id in lower case (``fr.health.samu76a``), a valid
    Kubernetes name that keeps ``kubectl get hc`` readable."""
    name = re.sub(r"[^a-z0-9.-]+", "-", client_id.lower()).strip("-.")[:OBJECT_NAME_MAX]
    if not _OBJECT_NAME_RE.match(name):
        raise HubctlError(f"cannot derive an object name from {client_id!r}: pass --name")
    return name


def _vhost_version_name(value: str, perimeter: str | None) -> str:
    """``15-15-v2.0`` from ``2.0`` (+ perimeter), ``15-15_v2.0`` or ``15-15-v2.0``."""
    if _VERSION_RE.match(value):
        if perimeter is None:
            raise HubctlError(f"--vhost {value} is a version: also pass --perimeter (or give the vhost, e.g. 15-15_v{value})")
        return expected_object_name(perimeter, value)
    vhost_perimeter, separator, version = value.rpartition("_v")
    if separator and _VERSION_RE.match(version):
        return expected_object_name(vhost_perimeter, version)
    object_perimeter, separator, version = value.rpartition("-v")
    if separator and _VERSION_RE.match(version):
        return value
    raise HubctlError(f"--vhost {value!r} is neither a version (2.0), a vhost (15-15_v2.0) "
                      "nor a VHostVersion name (15-15-v2.0)")


def choose_vhost_versions(request: OnboardRequest, available: Sequence[VHostVersion] | None) -> list[str]:
    """The VHostVersion names the client gets; ``available`` (None = offline) checks that they exist."""
    if request.perimeter is not None and not re.match(protocol.PERIMETER_NAME_PATTERN, request.perimeter):
        raise HubctlError(f"--perimeter {request.perimeter!r} is not a perimeter name (e.g. 15-15, 15-nexsis)")
    if request.vhosts:
        names = list(dict.fromkeys(_vhost_version_name(value, request.perimeter) for value in request.vhosts))
    elif available is None:
        raise HubctlError("offline: name the vhosts with --vhost (nothing to list them from)")
    elif request.perimeter is None:
        raise HubctlError("pass --perimeter (every active vhost of it) or --vhost")
    else:
        names = [v.metadata.name for v in available
                 if v.spec.perimeter == request.perimeter and v.spec.state is LifecycleState.ACTIVE]
        if not names:
            offered = sorted({v.spec.perimeter for v in available}) or ["none"]
            raise HubctlError(f"perimeter {request.perimeter} has no active VHostVersion; "
                              f"perimeters with vhosts: {', '.join(offered)}")
    if available is None:
        return names
    by_name = {v.metadata.name: v for v in available}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        listing = ", ".join(f"{v.metadata.name} ({v.spec.vhost_name}, {v.spec.state.value})" for v in available)
        raise HubctlError(f"no VHostVersion {', '.join(unknown)} in the namespace",
                          hint=f"available: {listing or 'none'}")
    for name in names:
        if by_name[name].spec.state is LifecycleState.DEPRECATED:
            request.warnings.append(f"{name} is deprecated: prefer a newer version of {by_name[name].spec.perimeter}")
    if request.perimeter is not None:
        foreign = [name for name in names if by_name[name].spec.perimeter != request.perimeter]
        if foreign:
            raise HubctlError(f"{', '.join(foreign)} do(es) not belong to perimeter {request.perimeter}")
    return names


def build_manifest(request: OnboardRequest, vhost_versions: Sequence[str]) -> HubClient:
    """The HubClient, validated by the same model as the CRD (client id grammar, CN, certificate rules...)."""
    check_client_id(request.client_id)
    for additional in request.additional_client_ids:
        check_client_id(additional, "additional client id")
    name = request.name or object_name_for(request.client_id)
    if not _OBJECT_NAME_RE.match(name) or len(name) > OBJECT_NAME_MAX:
        raise HubctlError(f"--name {name!r} is not a Kubernetes object name (lower case, digits, '-', '.')")
    certificate: dict[str, object] = {}
    if request.certificate_mode is not CertificateMode.OPERATOR:
        certificate["mode"] = request.certificate_mode.value
    if request.common_name:
        certificate["commonName"] = request.common_name
    if request.issuer:
        certificate["issuerRef"] = {"name": request.issuer, "kind": request.issuer_kind.value}
    preferences: dict[str, object] = {"format": request.message_format.value}
    if request.editor:
        preferences["editor"] = request.editor
    spec: dict[str, object] = {"clientId": request.client_id}
    if request.additional_client_ids:
        spec["additionalClientIds"] = list(request.additional_client_ids)
    if certificate:
        spec["certificate"] = certificate
    spec["vhostVersions"] = list(vhost_versions)
    spec["preferences"] = preferences
    metadata: dict[str, object] = {"name": name}
    if request.namespace:
        metadata["namespace"] = request.namespace
    try:
        return HubClient.model_validate({"apiVersion": "hubsante.io/v1alpha1", "kind": "HubClient",
                                         "metadata": metadata, "spec": spec})
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())
        raise HubctlError(f"the HubClient would be invalid: {problems}") from None


def render_yaml(client: HubClient, vhost_descriptions: Sequence[str] = ()) -> str:
    """The manifest as a commented YAML document (only what was chosen: defaults stay implicit)."""
    body = client.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_unset=True)
    lines = [f"# HubClient for {client.spec.client_id}, generated by `hubctl onboard`: review, commit, let GitOps apply."]
    if client.spec.certificate.mode is CertificateMode.OPERATOR:
        lines.append("# The operator issues its certificate; hand it over with `hubctl credentials "
                     f"{client.spec.client_id}`.")
    elif client.spec.certificate.mode is CertificateMode.EXTERNAL:
        lines.append("# External certificate: the client presents a certificate from the national PKI with this CN.")
    lines += [f"# {description}" for description in vhost_descriptions]
    return "\n".join(lines) + "\n" + yaml.safe_dump(body, sort_keys=False, allow_unicode=True, width=120)
