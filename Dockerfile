# The gateway daemon. Brokers and Conductor are external: point GATEWAY_* at them.
# Runs as uid/gid 10001 (not root); deploy/kubernetes/ runs it with a read-only root filesystem.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN groupadd --system --gid 10001 gateway \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/gateway --create-home gateway
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY config /etc/gateway
USER 10001:10001
WORKDIR /var/lib/gateway
ENV GATEWAY_RULES_FILE=/etc/gateway/rules.yaml \
    GATEWAY_STORE__SQLITE_PATH=/var/lib/gateway/gateway.db \
    GATEWAY_ADMIN__HOST=0.0.0.0 \
    PYTHONDONTWRITEBYTECODE=1
EXPOSE 8088
# Liveness for plain Docker; Kubernetes uses the probes in deploy/kubernetes/deployment.yaml.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8088/healthz', timeout=2)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["gateway"]
CMD ["run", "--config", "/etc/gateway/gateway.yaml"]
