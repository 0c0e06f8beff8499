# syntax=docker/dockerfile:1
# Inkwell service image.
#   docker build -t inkwell .
#   docker run --rm -p 8000:8000 -e JWT_SECRET=... -e DATABASE_URL=postgresql+asyncpg://... inkwell
# The entry point is `inkwell`; the default command is `serve`, so `docker run inkwell migrate`
# runs the migrations with the same image (compose's `migrate` service, the Kubernetes Job).
#
# The base is pinned to a patch release of the slim Debian bookworm image; pin the digest too
# (python:3.11.14-slim-bookworm@sha256:...) in the registry that builds release images, and let a
# dependency bot move tag and digest together.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- build: a virtualenv with the locked dependencies -----------------------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH

WORKDIR /app
RUN python -m venv /opt/venv

# Dependencies first, so that a code change reuses this layer. Wheels only: no compiler is
# needed, and a dependency without a wheel for this platform fails the build loudly instead of
# pulling in a tool chain.
COPY requirements.lock ./
RUN pip install --no-cache-dir --only-binary=:all: -r requirements.lock

# The project itself, installed in editable mode so that `src.cli` finds `alembic.ini` and
# `migrations/` beside `src/` under /app (the same layout as a checkout). setuptools is the build
# backend only: it is pinned like the dev lock pins it and removed again afterwards.
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir setuptools==84.2.1 \
 && pip install --no-cache-dir --no-deps --no-build-isolation -e . \
 && pip uninstall --yes setuptools

# --- runtime: the virtualenv, the code, and nothing else ---------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    APP_ENV=production \
    LOG_FORMAT=json \
    HOST=0.0.0.0 \
    PORT=8000 \
    WEB_CONCURRENCY=1

RUN groupadd --system --gid 10001 inkwell \
 && useradd --system --uid 10001 --gid inkwell --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin inkwell

WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY alembic.ini ./
COPY migrations ./migrations
COPY src ./src

# Files stay owned by root and read-only for the service user; it writes nothing but /tmp.
USER 10001:10001
EXPOSE 8000

# Liveness of the process only (GET /health touches no dependency). The slim image has no curl.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8000'), timeout=2)"]

# `inkwell serve` reads HOST, PORT and WEB_CONCURRENCY (uvicorn workers) from the environment.
ENTRYPOINT ["inkwell"]
CMD ["serve"]
