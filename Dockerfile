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

# --- build: a virtualenv with the locked dependencies and the built wheel ---------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH

WORKDIR /build
RUN python -m venv /opt/venv

# Dependencies first, so that a code change reuses this layer. Every pin carries its hashes and
# pip refuses anything that does not match. Wheels only: no compiler is needed, and a
# dependency without a wheel for this platform fails the build loudly instead of pulling in a
# tool chain.
COPY requirements.lock requirements-build.lock ./
RUN pip install --no-cache-dir --require-hashes --only-binary=:all: -r requirements.lock

# The project is built into a wheel by the locked build backend (setuptools, in a virtualenv of
# its own that never reaches the image) and installed like any package: not editable, so the
# migrations and everything else it needs come from inside the package, as for any user.
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m venv /opt/build-tools \
 && /opt/build-tools/bin/pip install --no-cache-dir --require-hashes --only-binary=:all: \
      -r requirements-build.lock \
 && /opt/build-tools/bin/pip wheel --no-cache-dir --no-deps --no-build-isolation -w /build/dist . \
 && pip install --no-cache-dir --no-deps /build/dist/inkwell-*.whl

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

# The virtualenv holds the service (the installed wheel, migrations included) and its
# dependencies; no source tree is copied.
WORKDIR /app
COPY --from=build /opt/venv /opt/venv

# Files stay owned by root and read-only for the service user; it writes nothing but /tmp.
USER 10001:10001
EXPOSE 8000

# Liveness of the process only (GET /health touches no dependency). The slim image has no curl.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8000'), timeout=2)"]

# `inkwell serve` reads HOST, PORT and WEB_CONCURRENCY (uvicorn workers) from the environment.
ENTRYPOINT ["inkwell"]
CMD ["serve"]
