# syntax=docker/dockerfile:1.7
# One image for both programs of hub-operator; the command selects which one runs:
#   hub-operator     (default)  the Kubernetes operator
#   hub-dispatcher              a vhost's dispatcher (the operator's Deployments set this command)
#   hubctl                      the command-line tool, handy in a debug pod
#
#   docker build -t registry.example.org/hub/hub-operator:0.1.0 .
#   docker build --build-arg HUBSANTE_MODEL_TAGS="2.2 3.4.1" -t ... .      # choose the bundled model versions
#
# The runtime runs as uid 10001, needs no writable path but /tmp (mount an emptyDir there), and so works
# with readOnlyRootFilesystem: true. The message-model bundles are baked in at /opt/hubsante-models/<tag>.
# See docs/image.md.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- builder: wheels of the project and of every dependency --------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
COPY dispatcher/ dispatcher/
COPY devenv/ devenv/
RUN pip wheel --wheel-dir /wheels .

# ---- models: the public Hub Santé message models (ansforge/SAMU-Hub-Modeles), one folder per git tag ---------
FROM ${PYTHON_IMAGE} AS models
# Space-separated tags of https://github.com/ansforge/SAMU-Hub-Modeles; each becomes /opt/hubsante-models/<tag>
# (a VHostVersion's spec.models.version names one of them).
ARG HUBSANTE_MODEL_TAGS="1.1 2.2 3.4.1"
ARG HUBSANTE_MODELS_REPOSITORY=https://codeload.github.com/ansforge/SAMU-Hub-Modeles/tar.gz/refs/tags
# Optional pins, space-separated <tag>=<sha256 of the tarball>: a tag listed here must match its digest.
ARG HUBSANTE_MODELS_SHA256=""
RUN <<EOF
python - "${HUBSANTE_MODELS_REPOSITORY}" "${HUBSANTE_MODEL_TAGS}" "${HUBSANTE_MODELS_SHA256}"
import hashlib, io, sys, tarfile, urllib.request
from pathlib import Path

repository, tags, pins = sys.argv[1], sys.argv[2].split(), dict(p.split("=", 1) for p in sys.argv[3].split())
wanted = ("json-schema", "xsd", "sample")  # sample/examples feed `hubctl send`
for tag in tags:
    with urllib.request.urlopen(f"{repository}/{tag}", timeout=120) as response:
        data = response.read()
    digest = hashlib.sha256(data).hexdigest()
    if tag in pins and pins[tag] != digest:
        sys.exit(f"models {tag}: sha256 {digest} does not match the pinned {pins[tag]}")
    target = Path("/opt/hubsante-models") / tag
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        for member in archive.getmembers():
            _, _, inside = member.name.partition("/src/main/resources/")
            if inside.split("/", 1)[0] in wanted and (member.isfile() or member.isdir()):
                member.name = inside
                archive.extract(member, target, filter="data")
    if not (target / "json-schema" / "EDXL-DE-full.schema.json").is_file() or not (target / "xsd").is_dir():
        sys.exit(f"models {tag}: no src/main/resources/json-schema and xsd in the {tag} tarball")
    print(f"models {tag}: sha256 {digest}")
EOF

# ---- runtime -------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="hub-operator" \
      org.opencontainers.image.description="Hub Santé operator and dispatcher (command: hub-operator or hub-dispatcher)" \
      org.opencontainers.image.licenses="Apache-2.0"
# Nothing is written at run time outside /tmp: no bytecode (compiled at install), HOME and caches in /tmp.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    HUBSANTE_MODELS_DIR=/opt/hubsante-models
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels hub-operator \
 && groupadd --system --gid 10001 hub \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin hub
COPY --from=models /opt/hubsante-models /opt/hubsante-models
WORKDIR /tmp
# Operator metrics and liveness, dispatcher metrics.
EXPOSE 9090 8080 9102
# Numeric, so that Kubernetes can verify runAsNonRoot without reading /etc/passwd.
USER 10001:10001
CMD ["hub-operator"]
