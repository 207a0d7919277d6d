"""Where a vhost's dispatchers find their message-model bundle (``VHostVersion.spec.models``)."""

from __future__ import annotations

import enum
from pathlib import PurePosixPath

from pydantic import Field, field_validator, model_validator

from .base import ApiModel, CelReason, CelRule, cel, list_map
from .fieldtypes import ObjectName, Version

#: Directory inside the dispatcher image where bundles live as ``<root>/<models.version>``.
DEFAULT_MODELS_ROOT = "/opt/hubsante-models"
#: Directory inside a bundle image holding the bundle (``json-schema/``, ``xsd/``).
DEFAULT_IMAGE_MODELS_PATH = "/models"

ABSOLUTE_PATH_PATTERN = r"^/[^\x00]*$"
# Segments start with a letter or digit, so neither ".." nor "." can escape the bundle directory.
RELATIVE_DIRECTORY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$"


class ImagePullPolicy(str, enum.Enum):
    ALWAYS = "Always"
    IF_NOT_PRESENT = "IfNotPresent"
    NEVER = "Never"


class ModelImage(ApiModel):
    """An OCI image holding the bundle; its directory is copied into the dispatcher pod's volume."""

    reference: str = Field(
        min_length=1,
        max_length=512,
        pattern=r"^[^\s]+$",
        description="Image reference, e.g. registry.example.org/hubsante-models:2.2 (pin a digest in production).",
    )
    path: str = Field(
        DEFAULT_IMAGE_MODELS_PATH,
        pattern=ABSOLUTE_PATH_PATTERN,
        max_length=1024,
        description="Absolute directory inside the image holding the bundle (json-schema/, xsd/).",
    )
    pull_policy: ImagePullPolicy = Field(ImagePullPolicy.IF_NOT_PRESENT, description="Kubernetes image pull policy.")


class ModelConfigMap(ApiModel):
    """One ConfigMap of a bundle split across several (one ConfigMap holds at most 1 MiB)."""

    name: ObjectName = Field(description="ConfigMap name (same namespace).")
    directory: str | None = Field(
        None,
        pattern=RELATIVE_DIRECTORY_PATTERN,
        max_length=256,
        description="Sub-directory of the bundle receiving every key of this ConfigMap, e.g. json-schema or xsd; unset = the bundle root.",
    )


class ModelSourceKind(str, enum.Enum):
    BUILTIN = "builtin"
    PATH = "path"
    IMAGE = "image"
    CONFIG_MAPS = "configMaps"


_SOURCE_FIELDS = ("path", "image", "configMaps")


class ModelBundle(ApiModel):
    """The message-model bundle (JSON Schemas and XSDs) the vhost's dispatchers validate against.

    Bundles exceed 1 MiB (the size limit of one ConfigMap), so they are read from a directory: the
    bundle shipped in the dispatcher image (default, <root>/<version>), an explicit path (an image or
    volume directory, and the local development layout), an OCI image copied at pod start, or several
    ConfigMaps projected into one directory. At most one of path, image and configMaps may be set.
    """

    model_config = {
        "json_schema_extra": cel(
            CelRule(
                rule="(has(self.path) ? 1 : 0) + (has(self.image) ? 1 : 0) + (has(self.configMaps) ? 1 : 0) <= 1",
                message="set at most one bundle source: path, image or configMaps (none = the bundle shipped in the dispatcher image)",
                reason=CelReason.FORBIDDEN,
            )
        )
    }

    version: Version = Field(
        description="Version of the Hub Santé message models, e.g. 1.1, 2.2 or 3.4.1 (models 1.x for v1.x vhosts, 2.2 for 15-15_v2.0)."
    )
    path: str | None = Field(
        None,
        pattern=ABSOLUTE_PATH_PATTERN,
        max_length=1024,
        description="Absolute directory holding the bundle (json-schema/, xsd/) as seen by the dispatcher.",
    )
    image: ModelImage | None = Field(None, description="OCI image holding the bundle.")
    config_maps: list[ModelConfigMap] | None = Field(
        None,
        min_length=1,
        max_length=16,
        description="ConfigMaps projected together into the bundle directory.",
        json_schema_extra=list_map("name"),
    )

    @model_validator(mode="after")
    def _one_source(self) -> ModelBundle:
        chosen = [name for name, value in zip(_SOURCE_FIELDS, (self.path, self.image, self.config_maps)) if value]
        if len(chosen) > 1:
            raise ValueError(f"set at most one bundle source: path, image or configMaps (got {', '.join(chosen)})")
        return self

    @field_validator("config_maps")
    @classmethod
    def _unique_config_maps(cls, config_maps: list[ModelConfigMap] | None) -> list[ModelConfigMap] | None:
        names = [config_map.name for config_map in config_maps or ()]
        if len(names) != len(set(names)):
            raise ValueError("configMaps must name each ConfigMap once")
        return config_maps

    @property
    def source_kind(self) -> ModelSourceKind:
        if self.path is not None:
            return ModelSourceKind.PATH
        if self.image is not None:
            return ModelSourceKind.IMAGE
        if self.config_maps is not None:
            return ModelSourceKind.CONFIG_MAPS
        return ModelSourceKind.BUILTIN

    def directory(self, models_root: str = DEFAULT_MODELS_ROOT) -> PurePosixPath | None:
        """Where a dispatcher reads the bundle when it is a plain directory (builtin or path), else None.

        ``models_root`` is where bundles live by version (the image default, or the local development
        checkout of hubsante-models when dispatchers run as processes).
        """
        if self.source_kind is ModelSourceKind.PATH:
            return PurePosixPath(self.path or "")
        if self.source_kind is ModelSourceKind.BUILTIN:
            return PurePosixPath(models_root) / self.version
        return None
