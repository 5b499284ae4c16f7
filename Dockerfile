# The gateway daemon. Brokers and Conductor are external: point GATEWAY_* at them.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/gateway --create-home gateway
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY config /etc/gateway
USER gateway
WORKDIR /var/lib/gateway
ENV GATEWAY_RULES_FILE=/etc/gateway/rules.yaml \
    GATEWAY_STORE__SQLITE_PATH=/var/lib/gateway/gateway.db \
    GATEWAY_ADMIN__HOST=0.0.0.0
EXPOSE 8088
STOPSIGNAL SIGTERM
ENTRYPOINT ["gateway"]
CMD ["run", "--config", "/etc/gateway/gateway.yaml"]
