# syntax=docker/dockerfile:1
#
# One image for every process of the auction platform (built from the repository root):
#   python -m services migrate <service>     create + migrate one service's database, then exit
#   python -m services serve <service>       uvicorn on 0.0.0.0:$PORT (users, listings, bidding, chat, gateway)
#   python -m services.bidding.worker        the dramatiq worker
#   python -m services run                   the whole product in one process (embedded default, SQLite in /data)
#
# Runs as an unprivileged user with a read-only root filesystem: only /data (DATA_DIR: media, and the
# dev JWT key when JWT_PRIVATE_KEY is unset) and /tmp (upload spooling) need to be writable.
# Nothing is downloaded at run time.

ARG PYTHON_IMAGE=python:3.11-slim

# ---- build: resolve and install the pinned dependencies into a virtual environment -------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# Requirements first, so the dependency layer is cached until requirements.txt changes.
COPY requirements.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt

# ---- runtime ------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DATA_DIR=/data \
    PORT=8000
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin app \
    && mkdir -p /data \
    && chown app:app /data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# The code belongs to root and is read-only for the app user; see .dockerignore for what is left out.
COPY . /app
# Byte-compile once at build time: the root filesystem is read-only at run time.
RUN python -m compileall -q /app

USER 10001:10001
EXPOSE 8000
# No HEALTHCHECK here: the same image also runs the worker and one-shot migrations, which have no HTTP
# port. docker-compose.yml and the Kubernetes manifests define the checks per process.
CMD ["python", "-m", "services", "run"]
