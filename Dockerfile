# radius-probe serve: scheduled RADIUS checks with Prometheus /metrics, /probe and /health.
#
#   docker build -t radius-probe .
#   docker run --rm -p 127.0.0.1:9812:9812 -v /etc/radius-probe:/etc/radius-probe:ro radius-probe
#
# The probe file and its secret files are mounted at run time (read-only); nothing secret is
# baked into the image.  Inside the container the server must listen on 0.0.0.0 to be
# reachable through the published port: publish it on the host's loopback (as above) or
# behind a firewall.  SIGHUP (docker kill -s HUP) reloads the probe file.
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

HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9812/-/healthy', timeout=4)"]

ENTRYPOINT ["radius-probe", "serve"]
CMD ["--listen", "0.0.0.0:9812", "/etc/radius-probe/probe.yaml"]
