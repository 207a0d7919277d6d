"""Markdown reference of the CRDs, rendered from the generated CRDs themselves (hence from the models)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from .base import API_VERSION, CATEGORY, KindInfo

Schema = dict[str, Any]

_NOTES = """\
## Design notes

**Namespaces are environments.** All three kinds are namespaced: a namespace is one hub environment
(sandbox, pre-production, production...) and may point at its own broker. References between the kinds
(`VHostVersion.spec.perimeterRef`, `HubClient.spec.vhostVersions`) stay inside the namespace.

**One VHostVersion per vhost.** A VHostVersion's `metadata.name` must be `<perimeterRef.name>-v<version>`
(the API server enforces it), so two objects of one namespace can never claim the same vhost
`<perimeter>_v<version>`; `perimeterRef`, `version`, `profile` and `queueType` are immutable. Two
*namespaces* sharing one broker could still both claim a vhost: the operator records the owning namespace in
the vhost's description on the broker (`managed by hub-operator for namespace <ns>`) and reports
`VhostClaimed=False` (and `Ready=False`) on a VHostVersion of any other namespace instead of touching the vhost.

**Message-model bundles.** Bundles (JSON Schemas + XSDs) exceed 1 MiB, the size limit of one ConfigMap,
so dispatchers always read a directory. `spec.models` sets at most one source:
- none: the bundle shipped in the dispatcher image under `<models root>/<models.version>` (the operator
  setting for the root defaults to `/opt/hubsante-models`; local development points it at a checkout of
  the models, e.g. `hubsante-models/<version>`);
- `path`: an absolute directory the dispatcher already sees (a volume, or a local directory when
  dispatchers run as processes);
- `image`: an OCI image whose `path` directory is copied by an init container into an `emptyDir`
  (works on every cluster, unlike image volumes);
- `configMaps`: several ConfigMaps projected into one directory, each into its `directory`
  (e.g. `json-schema`, `xsd`), to stay under the per-object limit.

**Broker connection.** `VHostVersion.spec.brokerRef.secretName` names a Secret in the namespace (default
`hub-broker`) with the keys `managementUrl`, `username`, `password` (management API administrator),
`amqpsHost`, `amqpsPort` (listener used by clients and dispatchers) and `ca.crt` (PEM CA of the broker's
server certificate).

**Certificates.** `HubClient.spec.certificate.mode` is `operator` (issued by the operator's CA, Secret
`<name>-tls`), `certManager` (a cert-manager Certificate from `issuerRef`) or `external` (issued elsewhere,
e.g. by the national PKI: only `commonName` is configured and the broker must trust that CA). The CN is the
RabbitMQ username; it defaults to `clientId` and may differ from it. One identity may serve several client
ids (`additionalClientIds`). Client ids must be unique within a namespace: the operator reports a conflict
on the newer HubClient.

**Deletion.** `deletionPolicy: retain` (default) never destroys queued messages: deleting a HubClient
removes its user and permissions but keeps its queues; deleting a VHostVersion stops its dispatchers but
keeps the vhost. `delete` removes the queues (HubClient) or the whole vhost (VHostVersion).

**Durations** are Go-style strings of whole hours, minutes, seconds and milliseconds: `24h`, `90m`,
`1h30m`, `45s`, `500ms`.
"""


def _type_of(schema: Schema) -> str:
    if schema.get("x-kubernetes-int-or-string"):
        return "int or string"
    kind = schema.get("type", "")
    if kind == "array":
        return f"[]{_type_of(schema['items'])}"
    if schema.get("format"):
        return f"{kind} ({schema['format']})"
    return kind


def _constraints(schema: Schema) -> list[str]:
    notes = []
    if "enum" in schema:
        notes.append("one of " + ", ".join(f"`{value}`" for value in schema["enum"]))
    if "items" in schema and "enum" in schema["items"]:
        notes.append("items: one of " + ", ".join(f"`{value}`" for value in schema["items"]["enum"]))
    if "items" in schema and "pattern" in schema["items"]:
        notes.append(f"items match `{schema['items']['pattern']}`")
    if "pattern" in schema:
        notes.append(f"matches `{schema['pattern']}`")
    for low, high, what in (("minimum", "maximum", "value"), ("minItems", "maxItems", "items"),
                            ("minLength", "maxLength", "length")):
        if low in schema or high in schema:
            notes.append(f"{what} {schema.get(low, '')}..{schema.get(high, '')}")
    if schema.get("x-kubernetes-list-type") == "set":
        notes.append("unique items")
    if schema.get("x-kubernetes-list-type") == "map":
        notes.append("keyed by " + ", ".join(schema["x-kubernetes-list-map-keys"]))
    for rule in schema.get("x-kubernetes-validations", []):
        notes.append("rule: " + rule.get("message", f"`{rule['rule']}`"))
    return notes


def _rows(schema: Schema, path: str) -> Iterator[tuple[str, str, str, str, str]]:
    required = set(schema.get("required", []))
    for name, child in schema.get("properties", {}).items():
        child_path = f"{path}.{name}"
        default = json.dumps(child["default"]) if "default" in child else ""
        description = " ".join([child.get("description", "")] + [f"<br>{note}" for note in _constraints(child)])
        yield (child_path, _type_of(child), "yes" if name in required else "", default, description)
        yield from _rows(child, child_path)
        if child.get("type") == "array" and child["items"].get("type") == "object":
            yield from _rows(child["items"], f"{child_path}[]")


def _html_safe(text: str) -> str:
    """Escape ``<`` and ``>`` outside code spans, or Markdown renderers take ``<domain>`` for a tag."""
    parts = text.split("`")
    for index in range(0, len(parts), 2):
        parts[index] = parts[index].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


def _escape(cell: str) -> str:
    return _html_safe(cell.replace("|", "\\|").replace("\n", " "))


def _kind_section(info: KindInfo, crd: Mapping[str, Any]) -> str:
    version = crd["spec"]["versions"][0]
    root = version["schema"]["openAPIV3Schema"]
    lines = [
        f"## {info.kind}",
        "",
        _html_safe(root["description"]),
        "",
        f"`apiVersion: {API_VERSION}`, namespaced; plural `{info.plural}`, short names "
        + ", ".join(f"`{name}`" for name in info.short_names)
        + f", category `{CATEGORY}`.",
        "",
    ]
    if info.rules:
        lines += ["Object rules:", ""] + [
            f"- {_html_safe(rule.message or rule.message_expression or '')} (`{rule.rule}`)" for rule in info.rules
        ] + [""]
    lines += ["Columns of `kubectl get`:", "", "| column | from | description |", "|---|---|---|"]
    lines += [f"| {c['name']} | `{_escape(c['jsonPath'])}` | {c.get('description', '')} |"
              for c in version["additionalPrinterColumns"]]
    for part in ("spec", "status"):
        part_schema = root["properties"][part]
        lines += ["", f"### {info.kind}.{part}", "", _html_safe(part_schema["description"]), "",
                  "| field | type | required | default | description |", "|---|---|---|---|---|"]
        lines += ["| " + " | ".join(_escape(cell) for cell in row) + " |" for row in _rows(part_schema, part)]
    return "\n".join(lines) + "\n"


def render_reference(crds: Mapping[KindInfo, Mapping[str, Any]]) -> str:
    header = (
        "<!-- Generated by `python -m hub_operator.api.crdgen` from hub_operator.api models. "
        "Do not edit: run `make crds`. -->\n\n"
        f"# Custom resources reference ({API_VERSION})\n\n"
        + "".join(f"- [{info.kind}](#{info.kind.lower()})\n" for info in crds)
        + "\n"
    )
    return header + _NOTES + "\n" + "\n".join(_kind_section(info, crd) for info, crd in crds.items())
