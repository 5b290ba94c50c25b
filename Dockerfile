# One Dockerfile, one build context, stages named for what they do:
#   python-deps -> the locked dependencies in a virtualenv (the only stage with pip)
#   runtime-deps-> the same venv without the packages' static assets (nginx serves them)
#   app-build   -> the source, its bytecode and its collected static files
#   app         -> runtime: no compiler, no pip, no package manager, no setuid bit,
#                  non-root; serves, migrates, runs checks
#   bench       -> app + daphne and granian, for scripts/bench only
#   proxy       -> nginx with its config templates and the collected static files
#   exporters   -> Debian's Prometheus exporters for nginx, Postgres and Redis (the
#                  monitoring profile of docker-compose.yml)
#   tests-core  -> the test toolchain for lint and the app and Kubernetes layers: the dev
#                  lock's tools, the Docker CLI with Compose and buildx, git
#   tests       -> tests-core + Node with the npm lock's tools, chromium, wrk, testssl.sh
#                  (scripts/toolchain runs the suite in it; never deployed)
# Build: `docker compose build` (both), or `docker build --target app .`.

ARG PYTHON_IMAGE=python:3.13-slim
ARG NGINX_IMAGE=nginx:1.30
ARG DEBIAN_IMAGE=debian:trixie-slim

# --- python-deps ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS python-deps
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
# Only the lock file first: editing app code reuses this layer and skips the install.
# binutils: `strip`, used below; gcc and libpq-dev: psycopg's C implementation, built
# against Debian's libpq (docs/design.md: Images); Python's headers where the base image
# lacks them (a Python built by Debian). All left behind in this stage. Not
# version-pinned: Debian's archive serves only the current version, so a pin breaks the
# build at the next point release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install --yes --no-install-recommends binutils gcc libc6-dev libpq-dev \
    && { [ -f "$(python -c 'import sysconfig; print(sysconfig.get_path("include"))')/Python.h" ] \
         || apt-get install --yes --no-install-recommends "python$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')-dev"; } \
    && rm -rf /var/lib/apt/lists/*
COPY requirements.txt /tmp/requirements.txt
# Then, to keep the runtime image small (docs/design.md: Images): no pip in the venv; no
# translation sources (.po; the compiled .mo stay); debug symbols stripped from the
# compiled extensions (most of their size); then bytecode.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-compile -r /tmp/requirements.txt \
    && /opt/venv/bin/pip uninstall --yes pip \
    && find /opt/venv -name '*.po' -delete \
    && find /opt/venv -name '*.so' -path '*/site-packages/*' -exec strip --strip-unneeded {} + \
    && /opt/venv/bin/python -m compileall -q -j 0 /opt/venv/lib

# --- runtime-deps --------------------------------------------------------------------------
# Depends on the lock file only, so an app edit reuses it. The app process never serves a
# static file (nginx does, from the files collected in app-build): drop the packages'
# static/ folders (Swagger UI's is the largest).
FROM python-deps AS runtime-deps
RUN find /opt/venv/lib -type d -name static -path '*/site-packages/*' -prune -exec rm -rf {} +

# --- app-build -----------------------------------------------------------------------------
FROM python-deps AS app-build
WORKDIR /app
COPY app/ /app/
COPY gunicorn.conf.py /app/gunicorn.conf.py
# collectstatic imports the settings, which insist on their variables: give it throwaway,
# build-only values (no secret is baked into the image; the real ones come at run time).
RUN DJANGO_ENV=local \
    DJANGO_SECRET_KEY=build-time-placeholder-not-a-secret-change-me \
    DJANGO_ALLOWED_HOSTS=localhost \
    POSTGRES_HOST=unused POSTGRES_DB=unused POSTGRES_USER=unused POSTGRES_PASSWORD=unused \
    REDIS_URL=redis://unused:6379/0 \
    /opt/venv/bin/python manage.py collectstatic --noinput --verbosity 0 \
    && /opt/venv/bin/python -m compileall -q -j 0 /app \
    && mv /app/staticfiles /collected-static \
    && mkdir /app/staticfiles \
    && cp /collected-static/staticfiles.json /app/staticfiles/
# nginx serves the static files (proxy stage); the app keeps only the manifest that maps
# names to hashed names.

# --- app -----------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS app
# PROMETHEUS_MULTIPROC_DIR: where each process writes its metrics (core/metrics.py), in
# memory (/tmp is a tmpfs); set before Python starts, as prometheus-client requires.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=mainkode_example.settings \
    PROMETHEUS_MULTIPROC_DIR=/tmp/metrics
# Nothing at run time installs software or changes identity: no pip (the base image's
# own), no package manager binaries (dpkg's database stays, for image scanners), no setuid
# or setgid bit. Then the user the app runs as, and the folder the worker writes room
# exports to (EXPORT_ROOT: a volume mounted there starts with its owner).
# libpq5: Debian's libpq for psycopg (updated with the base image, unlike a bundled copy).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install --yes --no-install-recommends libpq5 \
    && rm -rf /var/lib/apt/lists/* \
    && python -m pip uninstall --yes --quiet pip \
    && rm -f /usr/bin/apt* /usr/bin/dpkg* \
    && find / -xdev -perm /6000 -type f -exec chmod a-s {} + \
    && groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin app \
    && install --directory --owner app --group app --mode 755 /srv/exports
COPY --from=runtime-deps /opt/venv /opt/venv
COPY --from=app-build /app /app
WORKDIR /app
USER 10001:10001
# 8000: the app (nginx's upstream); 9101: its metrics (METRICS_PORT, gunicorn.conf.py).
EXPOSE 8000 9101
# Liveness only (the process answers); compose's healthcheck asks /readyz instead.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-m", "core.probe", "/healthz"]
# Settings come from gunicorn.conf.py (the knobs; the classes and hooks: app/server/).
CMD ["gunicorn", "mainkode_example.asgi:application"]

# --- bench (scripts/bench only; never deployed) --------------------------------------------
# The app image plus the contenders that are not in it (daphne, Channels' reference server;
# granian), so the benchmark runs the same code under each server it compares. Their
# versions come from the dev lock file.
FROM python-deps AS bench-deps
COPY requirements-dev.txt /tmp/requirements-dev.txt
# hadolint ignore=DL3013
RUN /opt/venv/bin/python -m ensurepip --default-pip \
    && /opt/venv/bin/pip install --no-compile --constraint /tmp/requirements-dev.txt daphne granian \
    && /opt/venv/bin/pip uninstall --yes pip

FROM app AS bench
COPY --from=bench-deps /opt/venv /opt/venv

# --- proxy ---------------------------------------------------------------------------------
FROM ${NGINX_IMAGE} AS proxy
COPY nginx/nginx.conf /etc/nginx/nginx.conf
COPY nginx/templates/ /etc/nginx/templates/
# The `files` service's own configuration (it runs this image with another command).
COPY nginx/files.conf /etc/nginx/files.conf
# Sourced by the image's entrypoint before it renders the templates: defaults and checks.
COPY --chmod=755 nginx/defaults.envsh /docker-entrypoint.d/10-defaults.envsh
# The image's sample server would also listen on :80. No package manager binaries and no
# setuid or setgid bit at run time (nginx drops privileges by itself, with CAP_SETUID).
RUN rm -f /etc/nginx/conf.d/default.conf /usr/bin/apt* /usr/bin/dpkg* \
    && find / -xdev -perm /6000 -type f -exec chmod a-s {} +
COPY --from=app-build /collected-static /usr/share/nginx/static

# --- exporters (the monitoring profile) ----------------------------------------------------
# nginx's, Postgres's and Redis's Prometheus exporters in one image, each service running
# one of them (docker-compose.yml). Debian's builds of the upstream projects: one base
# image the stack already trusts instead of three more to pull. Not version-pinned, as
# binutils above; `--version` fails the build if one is missing.
FROM ${DEBIAN_IMAGE} AS exporters
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install --yes --no-install-recommends \
        prometheus-nginx-exporter prometheus-postgres-exporter prometheus-redis-exporter \
    && rm -rf /var/lib/apt/lists/* /usr/bin/apt* /usr/bin/dpkg* /etc/default/prometheus-* \
    && find / -xdev -perm /6000 -type f -exec chmod a-s {} + \
    && prometheus-nginx-exporter --version && prometheus-postgres-exporter --version \
    && prometheus-redis-exporter --version
USER 65534:65534

# --- tests-core, tests (scripts/toolchain; never deployed) ---------------------------------
# Everything the test suite drives, so a machine needs only Docker and git to run it
# (docs/design.md: Tests). The container it runs in shares the host's network, process
# table, /tmp and Docker engine, and sees the checkout at its host path
# (tests/toolchain.compose.yml). Debian packages are not version-pinned, as above; the
# Python and npm tools come from their lock files.
FROM ${PYTHON_IMAGE} AS tests-core
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# The Docker CLI with the Compose and buildx plugins talks to the host's engine; git reads
# the checkout, owned by another user than the container's root (safe.directory).
# libpq-dev: the app's libpq, and pg_config for scripts/lock (psycopg's C build);
# iptables: scripts/host-firewall's test.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install --yes --no-install-recommends \
        docker-cli docker-compose docker-buildx git openssl libpq-dev iptables \
    && rm -rf /var/lib/apt/lists/* \
    && git config --system --add safe.directory '*' \
    && docker compose version && docker buildx version
# The app's venv (psycopg compiled there), with pip back for the dev lock's tools.
COPY --from=python-deps /opt/venv /opt/venv
COPY requirements-dev.txt /tmp/
# hadolint ignore=DL3013
RUN /opt/venv/bin/python -m ensurepip --default-pip \
    && /opt/venv/bin/pip install --quiet -r /tmp/requirements-dev.txt \
    && /opt/venv/bin/kubectl version --client=true --output=yaml >/dev/null
# Caches and bytecode stay out of the checkout (the container runs as root).
ENV PATH=/opt/venv/bin:$PATH \
    MAINKODE_TOOLCHAIN=tests-core \
    PYTHONDONTWRITEBYTECODE=1 \
    RUFF_CACHE_DIR=/root/.cache/ruff \
    MYPY_CACHE_DIR=/root/.cache/mypy

FROM tests-core AS tests
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install --yes --no-install-recommends chromium nodejs npm wrk testssl.sh \
    && rm -rf /var/lib/apt/lists/*
# Node resolves the tests' imports from any parent folder's node_modules: /node_modules
# serves every script under the checkout, wherever it is.
COPY tests/package.json tests/package-lock.json /
RUN npm ci --prefix / --no-audit --no-fund --loglevel=error
ENV PATH=/node_modules/.bin:$PATH \
    CHROMIUM=/usr/bin/chromium \
    MAINKODE_TOOLCHAIN=tests
