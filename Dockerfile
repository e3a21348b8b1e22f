# The kernal hub: `docker build -t kernal .` then see docs/deploy.md (compose, Kubernetes, TLS).
#
# Two stages: the first builds wheels for kernal and its dependencies (PostgreSQL driver
# included), the second installs them into a clean slim image that runs as an unprivileged user.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[postgres,bus]"

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    KERNAL_DB=/data/hub_data.db
# A fixed uid: volumes and Kubernetes' runAsUser can name it.
RUN groupadd --system --gid 10001 kernal \
    && useradd --system --uid 10001 --gid kernal --home-dir /data --create-home kernal
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl && rm -rf /wheels
COPY deploy/docker-entrypoint.sh /usr/local/bin/kernal-entrypoint
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
# 6000: trainers (TCP, newline-delimited JSON); 5001: dashboard, API, /healthz.
EXPOSE 6000 5001
# /healthz answers from inside the hub process; urllib, because the slim image has no curl.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5001/healthz', timeout=2)"]
ENTRYPOINT ["kernal-entrypoint"]
# Bound to every interface (a container's loopback is unreachable from outside), so the hub
# refuses to start until at least one token is stored: see KERNAL_TOKENS_DIR in the entry point.
CMD ["kernal", "hub", "--host", "0.0.0.0", "--port", "6000", "--dashboard-port", "5001"]
