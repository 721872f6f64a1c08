# syntax=docker/dockerfile:1
# One image for every Driftscope process: `driftscope api`, `driftscope worker`, `driftscope dashboard`,
# `driftscope db upgrade`, ... — the command is the container's arguments (see docker-compose.yml).
#
#   docker build -t driftscope .
#   docker run --rm driftscope --help
#
# Stage 1 builds a virtualenv; stage 2 copies only that virtualenv onto a clean slim base, so pip's
# caches, the sources and any build tooling never reach the final image.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/driftscope
WORKDIR /src
# Dependencies first, from pyproject.toml alone: this layer is reused until the dependency list changes.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > requirements.txt \
    && /opt/driftscope/bin/pip install --only-binary=:all: -r requirements.txt
# Then Driftscope itself (a wheel: the migrations travel inside it as monitor/_alembic).
COPY README.md ./
COPY alembic ./alembic
COPY monitor ./monitor
COPY collectors ./collectors
COPY detectors ./detectors
COPY alerts ./alerts
COPY dashboard ./dashboard
RUN /opt/driftscope/bin/pip install --no-deps . \
    && /opt/driftscope/bin/driftscope --help >/dev/null

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="driftscope" \
      org.opencontainers.image.description="ML drift monitoring: api, worker and dashboard in one image" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/driftscope/driftscope"
# curl-free healthchecks use Python (see docker-compose.yml); nothing else is installed.
RUN groupadd --system --gid 10001 driftscope \
    && useradd --system --uid 10001 --gid driftscope --home-dir /home/driftscope --create-home \
       --shell /usr/sbin/nologin driftscope
COPY --from=build /opt/driftscope /opt/driftscope
ENV PATH=/opt/driftscope/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DRIFTSCOPE_LOG_FORMAT=json
WORKDIR /home/driftscope
USER 10001:10001
# api, dashboard, worker /metrics
EXPOSE 8000 8050 9108
ENTRYPOINT ["driftscope"]
CMD ["--help"]
