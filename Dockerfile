# radius-probe serve: scheduled RADIUS checks with Prometheus /metrics, /probe and /health.
#
#   docker build -t radius-probe .
#   docker run --rm -p 9812:9812 -v /etc/radius-probe:/etc/radius-probe:ro radius-probe
#
# The probe file, its secret files and web.yml are mounted at run time (read-only); nothing
# secret is baked into the image.  Inside the container the server must listen on 0.0.0.0 to
# be reachable through the published port, so the image serves with --web-config: web.yml is
# the Prometheus exporter-toolkit web configuration (tls_server_config, basic_auth_users),
# because whoever reaches /probe of an MFA module sends a push to the health account's phone.
# For a lab without TLS, publish on the host's loopback and say so explicitly:
#   docker run --rm -p 127.0.0.1:9812:9812 -v ...:ro radius-probe \
#       --listen 0.0.0.0:9812 --insecure-listen /etc/radius-probe/probe.yaml
# SIGHUP (docker kill -s HUP) reloads the probe file (web.yml is read at start).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY dictionaries ./dictionaries
COPY probe ./probe

# The README's install step (pip install .), then an unprivileged user; the sources go away.
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin radius-probe \
    && rm -rf /src

WORKDIR /etc/radius-probe
USER 10001:10001
EXPOSE 9812

# The health check opens a TCP connection rather than GET /-/healthy: with --web-config the
# endpoint needs TLS, basic auth and maybe a client certificate the container does not have.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import socket; socket.create_connection(('127.0.0.1', 9812), timeout=4).close()"]

ENTRYPOINT ["radius-probe", "serve"]
CMD ["--listen", "0.0.0.0:9812", "--web-config", "/etc/radius-probe/web.yml", "/etc/radius-probe/probe.yaml"]
