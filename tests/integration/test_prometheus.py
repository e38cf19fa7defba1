"""A real Prometheus (Debian package prometheus) scrapes `radius-probe serve`; promtool checks the
exposition, the alert rules (and fires them on synthetic series) and the dashboard's queries;
hadolint lints the Dockerfile; systemd-analyze verifies the unit.

Prometheus, serve and the emulator all listen on 127.0.0.1 and are stopped by their PIDs.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import textwrap
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from probe import metrics
from tests.helpers import wait_until
from tests.servers.serve import (EMULATOR_USERS, LAB_CHECKS, Served, probe_file, start_emulator, start_serve, stop,
                                 write_secrets)

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "contrib" / "prometheus-alerts.yml"
DASHBOARD = ROOT / "contrib" / "grafana-dashboard.json"


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (.ci/run installs it: Debian package or PyPI, see there)")
    return path


def run_tool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), input=stdin, capture_output=True, text=True, timeout=120)


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    d = tmp_path_factory.mktemp("prom-lab")
    secrets = write_secrets(d)
    config = d / "emulator.yaml"
    config.write_text(EMULATOR_USERS % "approve")
    em, port = start_emulator(config, d / "emulator.log")
    try:
        s = start_serve(d, [probe_file(d / "probe.yaml", port, secrets, LAB_CHECKS)])
        try:
            yield s
        finally:
            assert stop(s.proc) == 0
    finally:
        stop(em)


# ---------------------------------------------------------------------------
# promtool


def test_alert_rules_pass_promtool_check() -> None:
    done = run_tool(tool("promtool"), "check", "rules", str(ALERTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 11 rules found" in done.stdout
    for rule in yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]:
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical")


# What must fire (and what must not) on synthetic series; annotations are stripped so the
# test is about expressions, durations and labels.
ALERT_TESTS = """\
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'radius_probe_checks_total{check="push",target="nps1",module="push",result="discard"}'
        values: '0+1x40'
      - series: 'radius_probe_checks_total{check="push",target="nps1",module="push",result="accept"}'
        values: '0x40'
      - series: 'radius_probe_check_info{check="push",target="nps1",module="push",method="pap",address="a",
                  expected="accept"}'
        values: '1x40'
      - series: 'radius_probe_checks_total{check="canary",target="nps1",module="canary",result="discard"}'
        values: '0+1x40'
      - series: 'radius_probe_check_info{check="canary",target="nps1",module="canary",method="pap",address="a",
                  expected="discard"}'
        values: '1x40'
      - series: 'radius_probe_checks_total{check="push",target="nps2",module="push",result="accept"}'
        values: '0+1x40'
      - series: 'radius_probe_checks_total{check="push",target="nps2",module="push",result="discard"}'
        values: '0x40'
      - series: 'radius_probe_window_breaches_total{check="push",target="nps2",module="push"}'
        values: '0 0 0 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1'
      - series: 'radius_probe_expectation_met{check="push",target="nps1",module="push"}'
        values: '1 1 0x40'
      - series: 'radius_probe_server_cert_not_after_timestamp_seconds{check="eap",target="nps1",module="eap"}'
        values: '864000x40'
      - series: 'radius_probe_server_cert_not_after_timestamp_seconds{check="eap",target="nps2",module="eap"}'
        values: '8640000x40'
      - series: 'radius_probe_client_cert_not_after_timestamp_seconds{check="eap",target="nps1",module="eap"}'
        values: '1728000x40'
      - series: 'radius_probe_message_authenticator_present{check="push",target="nps1",module="push"}'
        values: '0x80'
      - series: 'radius_probe_message_authenticator_present{check="eap",target="nps1",module="eap"}'
        values: '1x80'
      - series: 'radius_probe_config_reload_success{instance="probe:9812",job="radius-probe"}'
        values: '1 1 1 0x40'
      - series: 'radius_probe_last_check_timestamp_seconds{check="stuck",target="nps1",module="m"}'
        values: '0x40'
      - series: 'radius_probe_check_interval_seconds{check="stuck",target="nps1",module="m"}'
        values: '60x40'
      - series: 'radius_probe_mfa_window_seconds{check="stuck",target="nps1",module="m"}'
        values: '60x40'
      - series: 'radius_probe_mfa_window_margin_seconds{check="stuck",target="nps1",module="m"}'
        values: '5x40'
      - series: 'up{instance="probe:9812",job="radius-probe"}'
        values: '1 1 0x40'
    alert_rule_test:
      - eval_time: 10m
        alertname: RadiusSilentDiscard
        exp_alerts:
          - exp_labels: {severity: critical, check: push, target: nps1, module: push}
      - eval_time: 30m
        alertname: RadiusDiscardRateHigh
        exp_alerts:
          - exp_labels: {severity: critical, target: nps1}
      - eval_time: 10m
        alertname: RadiusMfaWindowBreach
        exp_alerts:
          - exp_labels: {severity: warning, check: push, target: nps2, module: push}
      - eval_time: 30m
        alertname: RadiusMfaWindowBreach
        exp_alerts: []
      - eval_time: 20m
        alertname: RadiusMfaWindowMarginLow
        exp_alerts:
          - exp_labels: {severity: warning, check: stuck, target: nps1, module: m}
      - eval_time: 5m
        alertname: RadiusCheckFailing
        exp_alerts:
          - exp_labels: {severity: critical, check: push, target: nps1, module: push}
      - eval_time: 1m
        alertname: RadiusServerCertificateExpiring
        exp_alerts:
          - exp_labels: {severity: warning, check: eap, target: nps1, module: eap}
      - eval_time: 1m
        alertname: RadiusClientCertificateExpiring
        exp_alerts:
          - exp_labels: {severity: warning, check: eap, target: nps1, module: eap}
      - eval_time: 30m
        alertname: RadiusMessageAuthenticatorAbsent
        exp_alerts: []
      - eval_time: 70m
        alertname: RadiusMessageAuthenticatorAbsent
        exp_alerts:
          - exp_labels: {severity: warning, check: push, target: nps1, module: push}
      - eval_time: 10m
        alertname: RadiusProbeConfigReloadFailed
        exp_alerts:
          - exp_labels: {severity: warning, instance: "probe:9812", job: radius-probe}
      - eval_time: 15m
        alertname: RadiusProbeChecksStale
        exp_alerts:
          - exp_labels: {severity: warning, check: stuck, target: nps1, module: m}
      - eval_time: 10m
        alertname: RadiusProbeDown
        exp_alerts:
          - exp_labels: {severity: critical, instance: "probe:9812", job: radius-probe}
"""


def test_alert_rules_fire_on_the_series_they_watch(tmp_path: Path) -> None:
    rules = yaml.safe_load(ALERTS.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    tests = yaml.safe_load(ALERT_TESTS)
    tests["rule_files"] = [str(tmp_path / "rules.yml")]
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests))
    done = run_tool(tool("promtool"), "test", "rules", str(tmp_path / "tests.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    tested = {t["alertname"] for t in tests["tests"][0]["alert_rule_test"]}
    assert tested == {r["alert"] for r in rules["groups"][0]["rules"]}  # every alert has a test


def dashboard_queries() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in board["panels"] for t in p.get("targets", [])]


def test_dashboard_queries_parse_and_name_only_our_metrics(tmp_path: Path) -> None:
    board = json.loads(DASHBOARD.read_text())
    titles = {p["title"] for p in board["panels"]}
    assert {"Checks by result", "Final answer time vs the MFA window", "Unexpected discards (per minute)",
            "Certificate days left", "Message-Authenticator in replies"} <= titles
    queries = dashboard_queries()
    names = {value for key, value in vars(metrics).items() if key.isupper() and isinstance(value, str)
             and value.startswith("radius_probe_")}
    for expr in queries:
        for used in re.findall(r"\bradius_probe_[a-z_]+", expr):
            assert used.removesuffix("_bucket") in names, (used, expr)
    concrete = [re.sub(r"\$\w+", lambda m: "5m" if m.group(0) == "$__rate_interval" else ".*", q) for q in queries]
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:query{i}", "expr": q}
                                                        for i, q in enumerate(concrete)]}]}
    (tmp_path / "dashboard.yml").write_text(yaml.safe_dump(rules))
    done = run_tool(tool("promtool"), "check", "rules", str(tmp_path / "dashboard.yml"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_accepts_our_expositions(served: Served) -> None:
    promtool = tool("promtool")
    wait_until(lambda: served.value("radius_probe_checks_total", check="alice", target="lab", module="alice",
                                    result="accept"), "a first result")
    for path in ("/metrics", "/probe?target=lab&module=alice", "/probe?target=lab&module=carol"):
        status, body = served.get(path)
        assert status == 200
        done = run_tool(promtool, "check", "metrics", stdin=body)
        assert done.returncode == 0 and not done.stdout.strip(), (path, done.stdout + done.stderr)


# ---------------------------------------------------------------------------
# A real Prometheus


def query(port: int, expr: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as answer:
        data = json.load(answer)
    assert data["status"] == "success", data
    return data["data"]["result"]


def test_real_prometheus_scrapes_serve(served: Served, tmp_path: Path) -> None:
    prometheus = tool("prometheus")
    port = free_tcp_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(textwrap.dedent(f"""\
        global: {{scrape_interval: 1s, evaluation_interval: 1s}}
        rule_files: [{ALERTS}]
        scrape_configs:
          - job_name: radius-probe
            static_configs: [{{targets: ["127.0.0.1:{served.port}"]}}]
          - job_name: radius-probe-blackbox
            metrics_path: /probe
            params: {{module: [alice]}}
            scrape_timeout: 1s
            static_configs: [{{targets: [lab]}}]
            relabel_configs:
              - {{source_labels: [__address__], target_label: __param_target}}
              - {{source_labels: [__param_target], target_label: instance}}
              - {{target_label: __address__, replacement: "127.0.0.1:{served.port}"}}
        """))
    log = (tmp_path / "prometheus.log").open("w")
    proc = subprocess.Popen([prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=log)
    try:
        def has(expr: str) -> list[dict[str, Any]] | None:
            try:
                return query(port, expr) or None
            except OSError:
                return None  # not up yet

        up = wait_until(lambda: has('up{job="radius-probe"} == 1'), "Prometheus to scrape serve", timeout=60)
        assert up[0]["metric"]["instance"] == f"127.0.0.1:{served.port}"
        accept = wait_until(lambda: has('radius_probe_checks_total{check="alice",result="accept"} > 0'),
                            "alice's accepts in Prometheus", timeout=60)
        assert accept[0]["metric"]["target"] == "lab" and accept[0]["metric"]["module"] == "alice"
        discard = wait_until(lambda: has('radius_probe_checks_total{check="carol",result="discard"} > 0'),
                             "carol's discards in Prometheus", timeout=60)
        assert float(discard[0]["value"][1]) >= 1
        failing = wait_until(lambda: has('radius_probe_expectation_met{check="bob-accept"} == 0'),
                             "bob-accept failing in Prometheus", timeout=60)
        assert failing[0]["metric"]["target"] == "lab"
        margin = query(port, 'radius_probe_mfa_window_margin_seconds{check="alice"}')
        assert 59 < float(margin[0]["value"][1]) <= 60
        quantile = wait_until(lambda: has('histogram_quantile(0.95, sum by (le) '
                                          '(rate(radius_probe_response_seconds_bucket{check="alice"}[10s]))) < 60'),
                              "alice's p95 under the window", timeout=60)
        assert float(quantile[0]["value"][1]) < 60
        blackbox = wait_until(lambda: has('probe_success{job="radius-probe-blackbox",instance="lab"} == 1'),
                              "the blackbox job's probe_success", timeout=60)
        assert blackbox[0]["metric"]["instance"] == "lab"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/rules", timeout=10) as answer:
            groups = json.load(answer)["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        assert len(rules) == 11 and all(r["health"] != "err" for r in rules), rules
    finally:
        stop(proc)
        log.close()
    body = served.get("/metrics")[1]
    assert 'radius_probe_probe_requests_total{outcome="probed"}' in body


# ---------------------------------------------------------------------------
# Packaging


def test_dockerfile_lints_clean_and_follows_the_readme() -> None:
    done = run_tool(tool("hadolint"), str(ROOT / "Dockerfile"))
    assert done.returncode == 0, done.stdout + done.stderr
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    assert "pip install --no-cache-dir ." in text and "pip install ." in (ROOT / "README.md").read_text()
    user = re.findall(r"^USER (\S+)$", text, re.M)
    assert user and not user[-1].startswith(("root", "0"))
    health = re.search(r"^HEALTHCHECK .*\\\n\s+CMD (.+)$", text, re.M)
    assert health and "9812" in health.group(1)  # the check reaches the served port
    cmd = re.search(r"^CMD (.+)$", text, re.M)  # served beyond loopback only behind --web-config
    assert cmd and "0.0.0.0:9812" in cmd.group(1) and "--web-config" in cmd.group(1)
    assert "--insecure-listen" not in cmd.group(1)
    assert re.search(r"^EXPOSE 9812$", text, re.M)
    assert '["radius-probe", "serve"]' in text
    assert not re.search(r"secret|password", text.split("FROM", 1)[1], re.I)  # nothing baked in


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = tool("systemd-analyze")
    unit = (ROOT / "contrib" / "radius-probe.service").read_text()
    assert "DynamicUser=yes" in unit and "ExecReload=/bin/kill -HUP $MAINPID" in unit
    # verify wants the binary to exist; this machine's radius-probe may live elsewhere
    local = tmp_path / "radius-probe.service"
    local.write_text(unit.replace("/usr/local/bin/radius-probe", shutil.which("true") or "/bin/true"))
    done = run_tool(analyze, "verify", str(local))
    problems = [line for line in done.stderr.splitlines() if "radius-probe.service" in line]
    assert done.returncode == 0 and not problems, done.stderr
