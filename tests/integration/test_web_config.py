"""`serve --web-config`: TLS, client certificates and basic auth in the exporter-toolkit format.

A real Prometheus scrapes serve over TLS with basic auth; curl shows what a client without
credentials, with a wrong password, or with a wrong client certificate gets.  Certificates are
made at test time (probe.pki.issue_certificate).  Prometheus, serve and curl use 127.0.0.1 only
(curl's --resolve maps the certificate's name, localhost, to 127.0.0.1); every process is
stopped by its PID and every wait is bounded.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import textwrap
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import bcrypt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from probe.pki import Issued, issue_certificate, save_private_key
from probe.webconfig import WebConfigError, load_web_config
from tests.helpers import cli, free_udp_port, wait_until
from tests.servers.serve import Served, probe_file, start_serve, stop, write_secrets

USER, PASSWORD = "prometheus", "scrape-Pa55word-never-logged"
WRONG_PASSWORD = "wrong-Pa55word-never-logged"
CHECKS = "- {name: quiet, target: lab, module: alice, interval: 60}\n"


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


@dataclass(frozen=True)
class WebPki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_cert: Path  # a client certificate from a CA serve does not trust
    rogue_key: Path


def _write(directory: Path, stem: str, issued: Issued) -> tuple[Path, Path]:
    cert, key = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert.write_bytes(issued.cert.public_bytes(serialization.Encoding.PEM))
    save_private_key(key, issued.key)
    return cert, key


@pytest.fixture(scope="module")
def web_pki(tmp_path_factory: pytest.TempPathFactory) -> WebPki:
    d = tmp_path_factory.mktemp("web-pki")
    now = datetime.now(timezone.utc)
    window = {"not_before": now - timedelta(hours=1), "not_after": now + timedelta(days=2)}
    ca = issue_certificate("radius-probe web test CA", is_ca=True, **window)
    other = issue_certificate("somebody else's CA", is_ca=True, **window)
    server = issue_certificate("localhost", issuer_cert=ca.cert, issuer_key=ca.key, dns_names=["localhost"],
                               ekus=[ExtendedKeyUsageOID.SERVER_AUTH], **window)
    client = issue_certificate("prometheus", issuer_cert=ca.cert, issuer_key=ca.key,
                               ekus=[ExtendedKeyUsageOID.CLIENT_AUTH], **window)
    rogue = issue_certificate("prometheus", issuer_cert=other.cert, issuer_key=other.key,
                              ekus=[ExtendedKeyUsageOID.CLIENT_AUTH], **window)
    ca_path, _ = _write(d, "ca", ca)
    server_cert, server_key = _write(d, "server", server)
    client_cert, client_key = _write(d, "client", client)
    rogue_cert, rogue_key = _write(d, "rogue", rogue)
    return WebPki(ca_path, server_cert, server_key, client_cert, client_key, rogue_cert, rogue_key)


def _hash(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=6)).decode()


def _serve(directory: Path, web: str) -> Served:
    secrets = write_secrets(directory)
    config = directory / "web.yml"
    config.write_text(textwrap.dedent(web))
    probe = probe_file(directory / "probe.yaml", free_udp_port(), secrets, CHECKS)
    return start_serve(directory, [probe], "--web-config", str(config))


@pytest.fixture(scope="module")
def tls_auth(tmp_path_factory: pytest.TempPathFactory, web_pki: WebPki) -> Iterator[Served]:
    """serve over TLS with one basic-auth user (the Prometheus scrape's)."""
    s = _serve(tmp_path_factory.mktemp("tls-auth"), f"""\
        tls_server_config:
          cert_file: {web_pki.server_cert}
          key_file: {web_pki.server_key}
        http_server_config:
          headers: {{X-Content-Type-Options: nosniff, Strict-Transport-Security: max-age=31536000}}
        basic_auth_users:
          {USER}: {_hash(PASSWORD)}
        """)
    try:
        yield s
    finally:
        assert stop(s.proc) == 0


@pytest.fixture(scope="module")
def mtls(tmp_path_factory: pytest.TempPathFactory, web_pki: WebPki) -> Iterator[Served]:
    """serve over TLS that requires a client certificate from its CA (no passwords)."""
    s = _serve(tmp_path_factory.mktemp("mtls"), f"""\
        tls_server_config:
          cert_file: {web_pki.server_cert}
          key_file: {web_pki.server_key}
          client_auth_type: RequireAndVerifyClientCert
          client_ca_file: {web_pki.ca}
          min_version: TLS12
        """)
    try:
        yield s
    finally:
        assert stop(s.proc) == 0


@dataclass
class Answer:
    rc: int  # curl's exit code: 0, or why the transfer failed (35: TLS handshake, 56: receive)
    status: int  # HTTP status; 0 when there was no HTTP answer
    body: str
    headers: str


def curl(served: Served, pki: WebPki, path: str, *extra: str, user: str | None = None) -> Answer:
    headers = served.log.parent / f"headers-{time.monotonic_ns()}.txt"
    args = [tool("curl"), "-sS", "--max-time", "20", "--cacert", str(pki.ca),
            "--resolve", f"localhost:{served.port}:127.0.0.1", "-D", str(headers), "-w", "\n%{http_code}",
            *extra, f"https://localhost:{served.port}{path}"]
    if user is not None:
        args[1:1] = ["--user", user]
    done = subprocess.run(args, capture_output=True, text=True, timeout=30)
    body, _, code = done.stdout.rpartition("\n")
    return Answer(done.returncode, int(code or 0), body, headers.read_text() if headers.exists() else "")


def events(served: Served, name: str) -> list[dict[str, Any]]:
    return [e for e in served.events() if e.get("event") == name]


# ---------------------------------------------------------------------------
# TLS and basic auth


def test_listening_line_says_https_and_basic_auth(tls_auth: Served) -> None:
    listening = events(tls_auth, "listening")[0]
    assert listening["scheme"] == "https" and listening["basic_auth"] is True
    assert listening["client_auth"] == "NoClientCert"


def test_without_credentials_gets_401_and_probe_sends_nothing(tls_auth: Served, web_pki: WebPki) -> None:
    for path in ("/metrics", "/probe?target=lab&module=alice&timeout=0.2", "/-/ready", "/"):
        answer = curl(tls_auth, web_pki, path)
        assert answer.rc == 0 and answer.status == 401, (path, answer)
        assert 'www-authenticate: basic realm="radius-probe"' in answer.headers.lower()
    metrics = curl(tls_auth, web_pki, "/metrics", user=f"{USER}:{PASSWORD}")
    assert metrics.status == 200, metrics
    assert 'radius_probe_probe_requests_total{outcome="probed"} 0.0' in metrics.body
    assert "x-content-type-options: nosniff" in metrics.headers.lower()
    assert "strict-transport-security: max-age=31536000" in metrics.headers.lower()


def test_plain_http_to_the_tls_port_gets_no_metrics(tls_auth: Served) -> None:
    with socket.create_connection(("127.0.0.1", tls_auth.port), timeout=10) as conn:
        conn.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        conn.settimeout(10)
        try:
            answer = conn.recv(4096)
        except (ConnectionResetError, TimeoutError):
            answer = b""
    assert b"radius_probe" not in answer
    wait_until(lambda: tls_auth.log.read_text(), "the log")
    for line in tls_auth.log.read_text().splitlines():
        assert "Traceback" not in line
        json.loads(line)


def test_parallel_scrapes_from_one_clean_address_all_get_in(tls_auth: Served, web_pki: WebPki) -> None:
    """One Prometheus scrapes /metrics and many /probe targets at the same second, from one address."""
    assert curl(tls_auth, web_pki, "/metrics", user=f"{USER}:{PASSWORD}").status == 200
    answers: list[Answer] = []
    threads = [threading.Thread(target=lambda: answers.append(curl(tls_auth, web_pki, "/-/healthy",
                                                                   user=f"{USER}:{PASSWORD}")))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert [a.status for a in answers] == [200] * 8, answers


def test_wrong_passwords_are_logged_without_the_password_and_slowed(tls_auth: Served, web_pki: WebPki) -> None:
    before = len(events(tls_auth, "login_failed"))
    for attempt in range(3):
        answer = curl(tls_auth, web_pki, "/metrics", user=f"{USER}:{WRONG_PASSWORD}")
        assert answer.status == 401, answer
    unknown = curl(tls_auth, web_pki, "/metrics", user=f"nobody:{WRONG_PASSWORD}")
    assert unknown.status == 401
    failed = events(tls_auth, "login_failed")[before:]
    assert [(e["user"], e["failures"], e["delay_s"]) for e in failed] == [
        (USER, 1, 0.25), (USER, 2, 0.5), (USER, 3, 1.0), ("nobody", 4, 2.0)]
    assert all(e["remote"] == "127.0.0.1" and e["level"] == "warning" for e in failed)

    # one login at a time per address: while the 5th failure is held (4 s), a second attempt gets 429
    held = threading.Thread(target=curl, args=(tls_auth, web_pki, "/metrics"),
                            kwargs={"user": f"{USER}:{WRONG_PASSWORD}"})
    held.start()
    try:
        wait_until(lambda: len(events(tls_auth, "login_failed")) > before + 4, "the 5th failure", timeout=20)
        parallel = curl(tls_auth, web_pki, "/metrics", user=f"{USER}:{PASSWORD}")
        assert parallel.status == 429, parallel
    finally:
        held.join(timeout=30)
    right = curl(tls_auth, web_pki, "/metrics", user=f"{USER}:{PASSWORD}")
    assert right.status == 200  # the right password still gets in, and clears the address's count
    log = tls_auth.log.read_text()
    assert WRONG_PASSWORD not in log and PASSWORD not in log
    for line in log.splitlines():
        json.loads(line)


def test_real_prometheus_scrapes_over_tls_with_basic_auth(tls_auth: Served, web_pki: WebPki,
                                                          tmp_path: Path) -> None:
    prometheus = tool("prometheus")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "password").write_text(PASSWORD)
    (tmp_path / "wrong").write_text(WRONG_PASSWORD)
    config = tmp_path / "prometheus.yml"
    config.write_text(textwrap.dedent(f"""\
        global: {{scrape_interval: 1s, scrape_timeout: 1s}}
        scrape_configs:
          - job_name: radius-probe
            scheme: https
            tls_config: {{ca_file: {web_pki.ca}, server_name: localhost}}
            basic_auth: {{username: {USER}, password_file: {tmp_path / 'password'}}}
            static_configs: [{{targets: ["127.0.0.1:{tls_auth.port}"]}}]
          - job_name: intruder
            scheme: https
            tls_config: {{ca_file: {web_pki.ca}, server_name: localhost}}
            basic_auth: {{username: intruder, password_file: {tmp_path / 'wrong'}}}
            static_configs: [{{targets: ["127.0.0.1:{tls_auth.port}"]}}]
        """))
    log = (tmp_path / "prometheus.log").open("w")
    proc = subprocess.Popen([prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=log)

    def query(expr: str) -> list[dict[str, Any]] | None:
        url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:
                return json.load(answer)["data"]["result"] or None  # type: ignore[no-any-return]
        except OSError:
            return None  # not up yet

    try:
        wait_until(lambda: query('up{job="radius-probe"} == 1'), "Prometheus to scrape serve over TLS", timeout=60)
        reload_ok = wait_until(lambda: query('radius_probe_config_reload_success{job="radius-probe"}'),
                               "serve's metrics in Prometheus", timeout=30)
        assert reload_ok[0]["value"][1] == "1"
        wait_until(lambda: query('up{job="intruder"} == 0'), "the intruder's failed scrape", timeout=30)
        assert query('up{job="intruder"} == 1') is None
        assert query('radius_probe_config_reload_success{job="intruder"}') is None
    finally:
        stop(proc)
        log.close()
    intruder = [e for e in events(tls_auth, "login_failed") if e["user"] == "intruder"]
    assert intruder and WRONG_PASSWORD not in tls_auth.log.read_text()


# ---------------------------------------------------------------------------
# Client certificates


def test_client_certificate_required_and_verified(mtls: Served, web_pki: WebPki) -> None:
    none = curl(mtls, web_pki, "/metrics")
    assert none.rc != 0 and none.status == 0, none
    rogue = curl(mtls, web_pki, "/metrics", "--cert", str(web_pki.rogue_cert), "--key", str(web_pki.rogue_key))
    assert rogue.rc != 0 and rogue.status == 0, rogue
    right = curl(mtls, web_pki, "/metrics", "--cert", str(web_pki.client_cert), "--key", str(web_pki.client_key))
    assert right.rc == 0 and right.status == 200 and "radius_probe_config_reload_success 1.0" in right.body
    old = curl(mtls, web_pki, "/metrics", "--tls-max", "1.1", "--cert", str(web_pki.client_cert),
               "--key", str(web_pki.client_key))
    assert old.rc != 0 and old.status == 0  # min_version TLS12
    for line in mtls.log.read_text().splitlines():  # refused handshakes leave no traceback either
        assert "Traceback" not in line
        json.loads(line)


# ---------------------------------------------------------------------------
# Bad web configurations: one line naming file, key and value; exit 3


BAD = [
    ("tls_config: {{}}\n", "tls_config: unknown key"),
    ("tls_server_config: {{cert_file: {cert}, key_file: {key}, client_auth_type: Sometimes}}\n",
     "tls_server_config.client_auth_type: 'Sometimes' is not one of NoClientCert"),
    ("tls_server_config: {{cert_file: {cert}, key_file: {key}, client_auth_type: RequestClientCert, "
     "client_ca_file: {ca}}}\n", "tls_server_config.client_auth_type: 'RequestClientCert' is not supported"),
    ("tls_server_config: {{cert_file: {cert}, key_file: {key}, client_auth_type: RequireAndVerifyClientCert}}\n",
     "tls_server_config.client_ca_file: None is missing"),
    ("tls_server_config: {{cert_file: {cert}, key_file: {key}, client_ca_file: {ca}}}\n",
     "tls_server_config.client_auth_type: 'NoClientCert' with client_ca_file set"),
    ("tls_server_config: {{cert_file: {cert}, key_file: {key}, min_version: TLS14}}\n",
     "tls_server_config.min_version: 'TLS14' is not one of TLS10, TLS11, TLS12, TLS13"),
    ("tls_server_config: {{cert_file: {cert}, key_file: {key}, min_version: TLS13, max_version: TLS12}}\n",
     "tls_server_config.min_version: 'TLS13' is above max_version TLS12"),
    ("tls_server_config: {{cert_file: {cert}, key_file: {key}, cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]}}\n",
     "tls_server_config.cipher_suites: 'TLS_RSA_WITH_RC4_128_SHA' is not a supported TLS 1.2 cipher suite"),
    ("tls_server_config: {{cert_file: {cert}, key_file: {key}, curve_preferences: [X25519]}}\n",
     "tls_server_config.curve_preferences: list is not supported"),
    ("tls_server_config: {{cert_file: {cert}}}\n", "tls_server_config.key_file: None is missing"),
    ("tls_server_config: {{cert_file: /nonexistent/server.pem, key_file: {key}}}\n",
     "tls_server_config.cert_file: '/nonexistent/server.pem' cannot be read (No such file or directory)"),
    ("tls_server_config: {{cert_file: {ca}, key_file: {key}}}\n",
     "key_file: '{key}' does not belong to cert_file '{ca}'"),
    ("tls_server_config: {{cert_file: {key}, key_file: {key}}}\n", "cert_file: '{key}' holds no PEM certificate"),
    ("tls_server_config: {{cert_file: {cert}, key_file: {cert}}}\n",
     "key_file: '{cert}' holds no unencrypted PEM private key"),
    ("tls_server_config: {{cert_file: {cert}, key_file: {key}, bogus: 1}}\n",
     "tls_server_config.bogus: unknown key"),
    ("basic_auth_users: {{prometheus: plaintext-password-here}}\n",
     "basic_auth_users.prometheus: the value is not a bcrypt hash"),
    ("basic_auth_users: [prometheus]\n", "basic_auth_users: list must be a mapping"),
    ("http_server_config: {{headers: {{X-Powered-By: me}}}}\n",
     "http_server_config.headers.X-Powered-By: this header can not be configured"),
    ("http_server_config: {{headers: {{X-Frame-Options: allow}}}}\n",
     "http_server_config.headers.X-Frame-Options: 'allow' is not one of deny, sameorigin"),
    ("tls_server_config: [\n", "not valid YAML at line"),
]


@pytest.mark.parametrize("text, expected", BAD, ids=[e.split(":")[0].strip() + str(i) for i, (_, e) in
                                                      enumerate(BAD)])
def test_bad_web_config_is_one_line_naming_file_key_and_value(tmp_path: Path, web_pki: WebPki, text: str,
                                                              expected: str) -> None:
    web = tmp_path / "web.yml"
    paths = {"cert": web_pki.server_cert, "key": web_pki.server_key, "ca": web_pki.ca}
    web.write_text(text.format(**paths))
    expected = expected.format(**paths)
    broken = tmp_path / "broken.yaml"  # were the web config accepted, serve would stop here, never bind
    broken.write_text("modules: {}\ntargets: {}\nchecks: [{name: x}]\n")
    done = cli("serve", str(broken), "--web-config", str(web), timeout=30)
    assert done.returncode == 3
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"radius-probe: {web}: ") and expected in lines[0], lines[0]
    assert "plaintext-password-here" not in done.stderr and "Traceback" not in done.stderr


def test_missing_web_config_file(tmp_path: Path) -> None:
    with pytest.raises(WebConfigError, match=r"--web-config .*nope.yml: cannot read it"):
        load_web_config(str(tmp_path / "nope.yml"))


def test_relative_paths_are_relative_to_the_web_config(tmp_path: Path, web_pki: WebPki) -> None:
    for source in (web_pki.server_cert, web_pki.server_key):
        shutil.copy(source, tmp_path / source.name)
    (tmp_path / "web.yml").write_text("tls_server_config: {cert_file: server.pem, key_file: server.key}\n")
    config = load_web_config(str(tmp_path / "web.yml"))
    assert config.tls is not None and config.tls.cert_file == tmp_path / "server.pem" and config.context
    assert config.secured


def test_cipher_suites_reach_the_tls_context(tmp_path: Path, web_pki: WebPki) -> None:
    (tmp_path / "web.yml").write_text(
        f"tls_server_config: {{cert_file: {web_pki.server_cert}, key_file: {web_pki.server_key}, "
        "max_version: TLS12, cipher_suites: [TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384]}\n")
    config = load_web_config(str(tmp_path / "web.yml"))
    assert config.context is not None
    tls12 = [c["name"] for c in config.context.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert tls12 == ["ECDHE-RSA-AES256-GCM-SHA384"]
