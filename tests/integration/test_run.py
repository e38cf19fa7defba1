"""`radius-probe run` end to end: probe files against the emulator and FreeRADIUS, every report format.

The emulator runs as `radius-probe emulator` in its own process, the probe as
`radius-probe run` in another; FreeRADIUS is Debian's binary on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import socket
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest

from probe.checks import RunOptions, evaluate
from probe.config import load_probe_files
from probe.outcome import Outcome, finalize
from tests.helpers import free_udp_port
from tests.servers.freeradius import Behaviour, FreeRadiusServer, User, freeradius_available

CLI = [sys.executable, "-m", "probe.cli"]
ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"
LAB_SECRET = "radius-probe-lab"
LAB_PASSWORD = "Passw0rd!"

# Users the scenario files name, on top of the emulator's lab users.
SCENARIO_USERS = """\
users:
  vpn-health@contoso.com: {mfa: deny}          # only IP_WHITELIST (NAS-IP-Address) lets it in
  mfa-canary@contoso.com: {mfa: not_enrolled}
  otp-test@contoso.com: {mfa: otp, otp_code: "123456"}
  mfa-approve@contoso.com: {mfa: approve, reply: {Class: VPN-Users, Session-Timeout: 28800}}
  mfa-deny@contoso.com: {mfa: deny}
  mfa-otp@contoso.com: {mfa: otp, otp_code: "123456"}
  mfa-slow@contoso.com: {mfa: approve, delay: 3.5}
  tardy: {mfa: approve, delay: 1.0}
"""


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADIUS_PROBE_")}
    env.update(extra or {})
    return env


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, env=clean_env(env))


def start_emulator(config: Path) -> tuple[subprocess.Popen[str], int]:
    port = free_udp_port()
    proc = subprocess.Popen([*CLI, "emulator", "--listen", f"127.0.0.1:{port}", "--config", str(config),
                             "--duration", "600"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    if f"listening on 127.0.0.1:{port}" not in first:
        proc.kill()
        raise RuntimeError(first + (proc.stderr.read() if proc.stderr else ""))
    return proc, port


def emulator_fixture(directory: Path, header: str) -> Iterator[int]:
    config = directory / "emulator.yaml"
    config.write_text(header + "default_users: true\n" + SCENARIO_USERS)
    proc, port = start_emulator(config)
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def unsigned_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """Like NPS and FreeRADIUS today: PAP replies carry no Message-Authenticator."""
    yield from emulator_fixture(tmp_path_factory.mktemp("em-unsigned"), "ip_whitelist: [192.0.2.50]\n")


@pytest.fixture(scope="module")
def signed_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A server that signs every reply (what KB5040268's hardening wants)."""
    yield from emulator_fixture(tmp_path_factory.mktemp("em-signed"),
                                "sign_replies: always\nip_whitelist: [192.0.2.50]\n")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("secrets")
    out = {}
    for name, value in (("secret", LAB_SECRET), ("password", LAB_PASSWORD), ("wrong", "not-the-password"),
                        ("otp", "123456")):
        out[name] = d / name
        out[name].write_text(value + "\n")
    return out


def closed_port() -> int:
    return free_udp_port()  # bound and released: nothing listens there


def probe_file(directory: Path, port: int, files: dict[str, Path], checks: str, extra_modules: str = "") -> Path:
    path = directory / "probe.yaml"
    path.write_text(textwrap.dedent(f"""\
        x-pap: &pap
          method: pap
          password_file: {files['password']}
          timeout: 0.5
          retries: 1
          late_wait: 1
        modules:
          alice: {{<<: *pap, identity: alice}}
          bob: {{<<: *pap, identity: bob}}
          carol: {{<<: *pap, identity: carol}}
          tardy: {{<<: *pap, identity: tardy, timeout: 5, retries: 0, window: 4, late_wait: 5}}
        {textwrap.indent(extra_modules, '  ')}
        targets:
          lab:
            address: 127.0.0.1:{port}
            secret_file: {files['secret']}
            labels: {{site: lab}}
        checks:
        """) + textwrap.indent(textwrap.dedent(checks), "  "))
    return path


MIXED = """\
- name: accept-signed-optional
  target: lab
  module: alice
  expect: {result: accept, message_authenticator: optional, attributes: {Class: radius-probe-alice}}
- name: accept-unsigned
  target: lab
  module: alice
- name: bob-expected-accept
  target: lab
  module: bob
- name: bob-reply-message
  target: lab
  module: bob
  expect: {result: reject, reply_message: "^Welcome", message_authenticator: optional}
- name: alice-wrong-class
  target: lab
  module: alice
  expect: {attributes: {Class: other-group, Session-Timeout: 3600}, message_authenticator: optional}
- name: carol-discard
  target: lab
  module: carol
"""


def by_name(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in doc["checks"]}


def test_table_json_and_junit_against_the_emulator(unsigned_port: int, files: dict[str, Path],
                                                   tmp_path: Path) -> None:
    probe = probe_file(tmp_path, unsigned_port, files, MIXED)
    junit, report = tmp_path / "out.xml", tmp_path / "out.json"
    r = cli("run", str(probe), "--junit", str(junit), "--json", str(report))
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr == ""  # no progress line when stderr is not a terminal
    rows = {line.split()[0]: line.split() for line in r.stdout.splitlines()[2:8]}
    assert r.stdout.splitlines()[0].split() == ["check", "target", "module", "expected", "result", "time",
                                                "window", "verdict", "diagnosis"]
    assert rows["accept-signed-optional"][1:5] == ["lab", "alice", "accept", "accept"]
    assert rows["accept-signed-optional"][6:8] == ["in", "OK"]
    assert rows["accept-unsigned"][7] == "DEGRADED"
    assert rows["bob-expected-accept"][4] == "reject" and rows["bob-expected-accept"][7:] == ["FAILED", "access_reject"]
    assert rows["carol-discard"][4:] == ["discard", "-", "-", "FAILED", "no_reply"]
    assert "DEGRADED accept-unsigned @ lab: replies carry no Message-Authenticator" in r.stdout
    assert "KB5040268" in r.stdout
    assert "FAILED carol-discard @ lab: expected accept, got discard; no_reply" in r.stdout
    assert "6 check(s): 1 OK, 1 DEGRADED, 4 FAILED, 0 UNKNOWN" in r.stdout

    doc = json.loads(report.read_text())
    assert doc["schema"] == 1 and doc["exit_code"] == 2
    checks = by_name(doc)
    ok = checks["accept-signed-optional"]
    assert set(ok) == {"name", "target", "module", "labels", "verdict", "exit_code", "failures", "degraded",
                       "outcome"}
    assert (ok["target"], ok["module"], ok["labels"], ok["verdict"], ok["exit_code"]) == (
        "lab", "alice", {"site": "lab"}, "OK", 0)
    assert ok["outcome"]["schema"] == 1 and ok["outcome"]["result"] == "accept"
    assert ok["outcome"]["target"] == f"127.0.0.1:{unsigned_port}"
    assert checks["accept-unsigned"]["exit_code"] == 1 and "Blast-RADIUS" in checks["accept-unsigned"]["degraded"][0]
    assert checks["bob-reply-message"]["failures"] == [
        "Reply-Message 'Authentication was denied by the user.' does not match /^Welcome/"]
    assert checks["alice-wrong-class"]["failures"] == [
        "Class: expected 'other-group', got 'radius-probe-alice'", "Session-Timeout: expected '3600', got nothing"]
    assert checks["carol-discard"]["outcome"]["result"] == "discard"
    assert LAB_SECRET not in report.read_text() + r.stdout and LAB_PASSWORD not in report.read_text() + r.stdout

    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == ("6", "4", "0", None)
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == str(probe) and suite.get("tests") == "6" and suite.get("failures") == "4"
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert set(cases) == set(checks)
    for case in cases.values():
        assert case.get("classname") == "radius-probe.lab" and float(case.get("time", "x")) >= 0
        assert json.loads(case.findtext("system-out") or "")["schema"] == 1
    failure = cases["carol-discard"].find("failure")
    assert failure is not None and failure.get("message", "").startswith("expected accept, got discard; no_reply. "
                                                                         "No reply at all")
    assert "ESTS_TOKEN_ERROR" in (failure.text or "")
    assert cases["accept-signed-optional"].find("failure") is None
    assert cases["accept-unsigned"].find("failure") is None
    assert "Blast-RADIUS" in (cases["accept-unsigned"].findtext("system-err") or "")


def test_json_to_stdout_and_nagios(signed_port: int, files: dict[str, Path], tmp_path: Path) -> None:
    probe = probe_file(tmp_path, signed_port, files, """\
        - {name: alice, target: lab, module: alice}
        - {name: bob, target: lab, module: bob, expect: {result: reject}}
        """)
    r = cli("run", str(probe), "--json", "-")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["exit_code"] == 0 and [c["verdict"] for c in doc["checks"]] == ["OK", "OK"]
    assert doc["checks"][0]["outcome"]["message_authenticator"] == "valid"

    r = cli("run", str(probe), "--nagios")
    assert r.returncode == 0
    (line,) = r.stdout.splitlines()
    status, perf = line.split(" | ")
    assert status == "RADIUS OK - 2 check(s) OK"
    labels = [p.split("=")[0] for p in perf.split()]
    assert labels == ["'alice_s'", "'bob_s'"]
    for item in perf.split():
        value, warn, crit, low, high = item.split("=")[1].split(";")
        assert value.endswith("s") and float(value[:-1]) >= 0
        assert (warn, crit, low, high) == ("45", "60", "0", "")

    failing = probe_file(tmp_path, signed_port, files, """\
        - {name: alice, target: lab, module: alice}
        - {name: carol, target: lab, module: carol}
        """)
    r = cli("run", str(failing), "--nagios")
    assert r.returncode == 2
    first, *rest = r.stdout.splitlines()
    assert first.startswith("RADIUS CRITICAL - carol@lab FAILED (no_reply) | ")
    assert "'carol_s'=U;45;60;0;" in first
    assert rest == ["FAILED carol @ lab: expected accept, got discard; no_reply"]

    r = cli("run", str(failing), "--nagios", "--json", "-")
    assert r.returncode == 3 and "both want stdout" in r.stderr


def test_degraded_slow_answer_and_slow_fraction(signed_port: int, files: dict[str, Path], tmp_path: Path) -> None:
    """`tardy` is approved after 1 s: fine against a 4 s window, slow when 20% of it is the bar."""
    probe = probe_file(tmp_path, signed_port, files, "- {name: tardy, target: lab, module: tardy}\n")
    r = cli("run", str(probe), "--json", "-")
    assert r.returncode == 0 and json.loads(r.stdout)["checks"][0]["verdict"] == "OK", r.stdout
    r = cli("run", str(probe), "--json", "-", "--slow-fraction", "0.2")
    assert r.returncode == 1
    (check,) = json.loads(r.stdout)["checks"]
    assert check["verdict"] == "DEGRADED" and check["failures"] == []
    assert check["degraded"][0].startswith("slow answer: ") and "over 20% of the 4 s window" in check["degraded"][0]
    assert check["outcome"]["diagnosis"][0]["code"] == "slow_answer"
    r = cli("run", str(probe), "--nagios", "--slow-fraction", "0.2")
    assert r.returncode == 1 and r.stdout.startswith("RADIUS WARNING - tardy@lab DEGRADED (slow_answer) | ")
    perf = re.search(r"'tardy_s'=([0-9.]+)s;0\.8;4;0;", r.stdout)
    assert perf is not None, r.stdout
    assert float(perf.group(1)) > 0.8  # over the slow bar (20% of the 4 s window): what made it DEGRADED


def test_unknown_when_a_target_cannot_be_resolved(files: dict[str, Path], tmp_path: Path) -> None:
    probe = probe_file(tmp_path, 1812, files, "- {name: alice, target: lab, module: alice}\n")
    probe.write_text(probe.read_text().replace("127.0.0.1:1812", "no-such-host.invalid:1812"))
    junit = tmp_path / "u.xml"
    r = cli("run", str(probe), "--junit", str(junit))
    assert r.returncode == 3 and "UNKNOWN" in r.stdout and "could not probe: cannot resolve host" in r.stdout
    root = ET.parse(junit).getroot()
    assert root.get("errors") == "1" and root.get("failures") == "0"
    assert root.find("testsuite/testcase/error") is not None


def test_broken_probe_file_runs_nothing(files: dict[str, Path], tmp_path: Path) -> None:
    """Every error on its own line, exit 3, and not one datagram sent to the valid target."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    probe = probe_file(tmp_path, port, files, """\
        - {name: fine, target: lab, module: alice}
        - {name: typo, target: lab, module: alcie}
        - {name: bad, target: lab, module: bob, expect: {result: sometimes}}
        """, extra_modules="odd: {method: pap, identity: x, password_env: PROBE_TEST_NO_SUCH_VAR}\n")
    try:
        r = cli("run", str(probe), "--junit", str(tmp_path / "never.xml"))
        assert r.returncode == 3 and r.stdout == ""
        lines = r.stderr.strip().splitlines()
        text = probe.read_text().splitlines()
        expected = {
            (1 + next(i for i, l in enumerate(text) if "alcie" in l), "checks[1].module"),
            (1 + next(i for i, l in enumerate(text) if "sometimes" in l), "checks[2].expect.result"),
            (1 + next(i for i, l in enumerate(text) if "PROBE_TEST_NO_SUCH_VAR" in l), "modules.odd.password_env"),
        }
        got = {(int(line.split(":")[1]), line.split(": ")[1]) for line in lines}
        assert got == expected and all(line.startswith(f"{probe}:") for line in lines)
        assert not (tmp_path / "never.xml").exists()
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.recv(4096)
    finally:
        listener.close()


def test_live_progress_line_only_on_a_terminal(signed_port: int, files: dict[str, Path], tmp_path: Path) -> None:
    probe = probe_file(tmp_path, signed_port, files, "- {name: tardy, target: lab, module: tardy}\n")
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([*CLI, "run", str(probe)], stdout=subprocess.PIPE, stderr=slave, text=True,
                                env=clean_env())
        os.close(slave)
        seen = b""
        while True:
            ready, _, _ = select.select([master], [], [], 30)
            if not ready:
                break
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            seen += chunk
        out, _ = proc.communicate(timeout=30)
    finally:
        os.close(master)
    assert proc.returncode == 0, out
    assert b"radius-probe: 0/1 done, 1 running (longest " in seen and b"s: tardy@lab)" in seen
    assert seen.endswith(b"\r\x1b[K")  # the line is cleared before the table
    assert "tardy" in out


# ---------------------------------------------------------------------------
# Verdicts computed from Outcome fields (certificate expiry, Blast-RADIUS)


def test_certificate_expiry_is_degraded(files: dict[str, Path], tmp_path: Path) -> None:
    probe = probe_file(tmp_path, 1812, files, "- {name: alice, target: lab, module: alice}\n")
    (check,) = load_probe_files([str(probe)])
    now = datetime(2030, 1, 1, tzinfo=timezone.utc)

    def outcome(server_days: float, client_days: float | None) -> Outcome:
        o = Outcome(target="127.0.0.1:1812", method="pap", identity="alice", result="accept",
                    final_response_s=0.01, message_authenticator="valid")
        iso = "%Y-%m-%dT%H:%M:%SZ"
        o.tls = {"server_cert": {"subject": "CN=nps.lab.test", "not_after": (now + timedelta(days=server_days)).strftime(iso)}}
        if client_days is not None:
            o.tls["client_cert"] = {"subject": "CN=alice", "not_after": (now + timedelta(days=client_days)).strftime(iso)}
        return finalize(o)

    healthy = evaluate(check, outcome(400, 200), RunOptions(), now=now)
    assert healthy.verdict == "OK" and healthy.degraded == []
    soon = evaluate(check, outcome(12.5, None), RunOptions(), now=now)
    assert soon.verdict == "DEGRADED" and soon.exit_code == 1
    assert soon.degraded == ["server certificate CN=nps.lab.test expires in 12 day(s) (2030-01-13T12:00:00Z); "
                             "renew it before it stops authentication"]
    client = evaluate(check, outcome(400, -1), RunOptions(cert_warn_days=5), now=now)
    assert client.degraded == ["client certificate CN=alice expired on 2029-12-31T00:00:00Z"]
    assert evaluate(check, outcome(12.5, None), RunOptions(cert_warn_days=10), now=now).verdict == "OK"


# ---------------------------------------------------------------------------
# Scenario files against the emulator


def scenario_env(port: int, files: dict[str, Path], **extra: str) -> dict[str, str]:
    env = {
        "NPS_ADDRESS": f"127.0.0.1:{port}", "NPS1_ADDRESS": f"127.0.0.1:{port}", "NPS2_ADDRESS": f"127.0.0.1:{port}",
        "NPS3_ADDRESS": f"127.0.0.1:{port}", "NPS_SECRET_FILE": str(files["secret"]),
        "HEALTH_PASSWORD_FILE": str(files["password"]), "CANARY_PASSWORD_FILE": str(files["password"]),
        "OTP_PASSWORD_FILE": str(files["password"]), "OTP_CODE_FILE": str(files["otp"]),
        "TEST_PASSWORD_FILE": str(files["password"]), "WRONG_PASSWORD_FILE": str(files["wrong"]),
        "LAB_PASSWORD_FILE": str(files["password"]),
        "RADIUS_TIMEOUT": "1", "RADIUS_RETRIES": "1", "LATE_WAIT": "2",
    }
    env.update(extra)
    return env


def run_scenario(name: str, env: dict[str, str], tmp_path: Path) -> tuple[int, dict[str, Any], ET.Element]:
    junit, report = tmp_path / f"{name}.xml", tmp_path / f"{name}.json"
    r = cli("run", str(SCENARIOS / f"{name}.yaml"), "--junit", str(junit), "--json", str(report), env=env)
    assert r.stderr == "", r.stderr
    return r.returncode, json.loads(report.read_text()), ET.parse(junit).getroot()


def verdicts(doc: dict[str, Any]) -> dict[tuple[str, str], str]:
    return {(c["name"], c["target"]): c["verdict"] for c in doc["checks"]}


def test_scenario_lb_health_every_backend(signed_port: int, files: dict[str, Path], tmp_path: Path) -> None:
    env = scenario_env(signed_port, files, NPS3_ADDRESS=f"127.0.0.1:{closed_port()}")
    rc, doc, junit = run_scenario("lb-health", env, tmp_path)
    assert verdicts(doc) == {("health", "nps1"): "OK", ("health", "nps2"): "OK", ("health", "nps3"): "FAILED"}
    assert rc == 2 and junit.get("tests") == "3" and junit.get("failures") == "1"
    nps3 = by_name({"checks": [c for c in doc["checks"] if c["target"] == "nps3"]})["health"]
    assert nps3["outcome"]["diagnosis"][0]["code"] == "port_unreachable" and nps3["labels"]["site"] == "dc2"
    # The health account is set to `deny` on the emulator: only the IP_WHITELIST NAS-IP-Address gets it in.
    denied = scenario_env(signed_port, files, HEALTH_NAS_IP="192.0.2.99")
    rc, doc, _ = run_scenario("lb-health", denied, tmp_path)
    assert rc == 2 and {c["outcome"]["result"] for c in doc["checks"]} == {"reject"}


def test_scenario_unenrolled_canary(signed_port: int, files: dict[str, Path], tmp_path: Path) -> None:
    rc, doc, _ = run_scenario("unenrolled-canary", scenario_env(signed_port, files), tmp_path)
    assert rc == 0 and set(verdicts(doc).values()) == {"OK"} and len(doc["checks"]) == 2
    # The same canary against an account that hits ESTS_TOKEN_ERROR (carol discards): the check fails.
    rc, doc, junit = run_scenario("unenrolled-canary", scenario_env(signed_port, files, CANARY_USER="carol"),
                                  tmp_path)
    assert rc == 2 and set(verdicts(doc).values()) == {"FAILED"}
    assert doc["checks"][0]["failures"] == ["expected reject, got discard; no_reply"]
    assert junit.get("failures") == "2" and "ESTS_TOKEN_ERROR" in (junit.find("testsuite/testcase/failure").text or "")


def test_scenario_otp_pap(signed_port: int, files: dict[str, Path], tmp_path: Path) -> None:
    rc, doc, _ = run_scenario("otp-pap", scenario_env(signed_port, files), tmp_path)
    checks = by_name(doc)
    assert rc == 0, doc
    assert checks["otp-prompt"]["outcome"]["result"] == "challenge"
    assert checks["otp-login"]["outcome"]["result"] == "accept" and checks["otp-login"]["outcome"]["round_trips"] == 2


def test_scenario_rollout_validation(signed_port: int, files: dict[str, Path], tmp_path: Path) -> None:
    """mfa-slow answers after 3.5 s: inside a 4 s window, past 75% of it -> DEGRADED; the rest OK."""
    env = scenario_env(signed_port, files, MFA_WINDOW="4", RADIUS_TIMEOUT="2", RADIUS_RETRIES="2", LATE_WAIT="6")
    rc, doc, junit = run_scenario("rollout-validation", env, tmp_path)
    got = verdicts(doc)
    assert len(got) == 12 and junit.get("tests") == "12" and junit.get("failures") == "0"
    assert {k: v for k, v in got.items() if v != "OK"} == {("slow-approve", "nps1"): "DEGRADED",
                                                            ("slow-approve", "nps2"): "DEGRADED"}, doc
    assert rc == 1 and doc["exit_code"] == 1
    approve = doc["checks"][0]
    assert approve["name"] == "approve" and approve["outcome"]["reply_attributes"]["Session-Timeout"] == [28800]


def test_scenario_example(signed_port: int, files: dict[str, Path], tmp_path: Path) -> None:
    rc, doc, _ = run_scenario("example", scenario_env(signed_port, files), tmp_path)
    assert rc == 0, doc
    assert verdicts(doc) == {("alice-accept", "nps1"): "OK", ("alice-accept", "nps2"): "OK",
                             ("bob-denied", "nps1"): "OK"}


# ---------------------------------------------------------------------------
# EAP scenarios: need the EAP peer and the emulator's EAP server


@pytest.fixture(scope="module")
def eap_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    d = tmp_path_factory.mktemp("eap")
    pki = d / "pki"
    r = cli("certs", "init", str(pki))
    assert r.returncode == 0, r.stderr
    config = d / "emulator.yaml"
    config.write_text(f"sign_replies: always\neap: {{pki: {pki}}}\ndefault_users: true\n"
                      "users:\n  mfa-deny@lab.test: {mfa: deny}\n  alice@lab.test: {mfa: approve}\n")
    proc, port = start_emulator(config)
    try:
        yield port, pki
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def eap_env(port: int, pki: Path, files: dict[str, Path]) -> dict[str, str]:
    p12_password = next(pki.glob("*password*"), None)
    return scenario_env(port, files, CA_FILE=str(pki / "ca.pem"), NPS_SERVER_NAME="nps.lab.test",
                        PEAP_USER="alice@lab.test", PEAP_PASSWORD_FILE=str(files["password"]),
                        DENY_USER="mfa-deny@lab.test", AOVPN_USER="alice@lab.test",
                        AOVPN_P12=str(pki / "alice.p12"), AOVPN_P12_PASSWORD_FILE=str(p12_password),
                        RADIUS_TIMEOUT="5", LATE_WAIT="6")


def test_scenario_peap_mschapv2_mfa(eap_lab: tuple[int, Path], files: dict[str, Path], tmp_path: Path) -> None:
    port, pki = eap_lab
    rc, doc, _ = run_scenario("peap-mschapv2-mfa", eap_env(port, pki, files), tmp_path)
    checks = by_name(doc)
    assert rc == 0, doc
    assert checks["push-approved"]["outcome"]["mppe"] == "match"
    assert checks["push-denied"]["outcome"]["result"] == "reject"


def test_scenario_aovpn_user_tunnel(eap_lab: tuple[int, Path], files: dict[str, Path], tmp_path: Path) -> None:
    port, pki = eap_lab
    rc, doc, _ = run_scenario("aovpn-user-tunnel", eap_env(port, pki, files), tmp_path)
    assert rc == 0, doc
    assert [c["target"] for c in doc["checks"]] == ["nps1", "nps2"]
    for check in doc["checks"]:
        o = check["outcome"]
        assert (o["method"], o["result"], o["mppe"]) == ("peap-tls", "accept", "match")
        assert "nps.lab.test" in o["tls"]["server_cert"]["san_dns"] and o["tls"]["client_cert"]["not_after"]
    # The lab certificates are valid for well under 100 years: a long warning horizon turns both degraded.
    r = cli("run", str(SCENARIOS / "aovpn-user-tunnel.yaml"), "--cert-warn-days", "36500", "--json", "-",
            env=eap_env(port, pki, files))
    assert r.returncode == 1, r.stdout + r.stderr
    degraded = json.loads(r.stdout)["checks"][0]["degraded"]
    assert [d.split(" certificate ")[0] for d in degraded] == ["server", "client"]


# ---------------------------------------------------------------------------
# A PAP suite against a real FreeRADIUS

FR_SECRET = "fr-run-secret"
FR_PASSWORD = "Corr3ct-Horse"


@pytest.fixture(scope="module")
def freeradius(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FreeRadiusServer]:
    if not freeradius_available():
        pytest.skip("needs /usr/sbin/freeradius (Debian package freeradius)")
    users = [
        User("alice", FR_PASSWORD, reply_attributes=(("Class", b"vpn-users"), ("Session-Timeout", 3600),
                                                     ("Filter-Id", "vpn"), ("Tunnel-Type:1", "VLAN"),
                                                     ("Tunnel-Medium-Type:1", "IEEE-802"),
                                                     ("Tunnel-Private-Group-Id:1", "10"))),
        User("bob", FR_PASSWORD, behaviour=Behaviour.REJECT),
        User("carol", FR_PASSWORD, behaviour=Behaviour.DISCARD),
        User("dave", FR_PASSWORD, behaviour=Behaviour.OTP, otp_code="123456"),
    ]
    with FreeRadiusServer(tmp_path_factory.mktemp("freeradius"), FR_SECRET, users) as srv:
        yield srv


@pytest.mark.freeradius
def test_pap_suite_against_freeradius(freeradius: FreeRadiusServer, tmp_path: Path) -> None:
    (tmp_path / "secret").write_text(FR_SECRET + "\n")
    (tmp_path / "pw").write_text(FR_PASSWORD + "\n")
    (tmp_path / "otp").write_text("123456\n")
    probe = tmp_path / "suite.yaml"
    probe.write_text(textwrap.dedent(f"""\
        x-pap: &pap {{method: pap, password_file: pw, timeout: 1, retries: 1, late_wait: 2}}
        modules:
          alice: {{<<: *pap, identity: alice}}
          bob: {{<<: *pap, identity: bob}}
          carol: {{<<: *pap, identity: carol}}
          dave: {{<<: *pap, identity: dave, otp_file: otp}}
        targets:
          fr: {{address: "127.0.0.1:{freeradius.port}", secret_file: secret}}
          fr-require-ma: {{address: "127.0.0.1:{freeradius.port_require_ma}", secret_file: secret}}
        checks:
          - name: vlan-assignment
            targets: "*"
            module: alice
            expect:
              result: accept
              reply_message: "^Welcome alice$"
              attributes: {{Class: vpn-users, Session-Timeout: 3600, Filter-Id: vpn, Tunnel-Type: VLAN,
                            Tunnel-Medium-Type: IEEE-802, Tunnel-Private-Group-Id: "10"}}
          - {{name: policy-reject, target: fr, module: bob, expect: {{result: reject, reply_message: "by policy"}}}}
          - {{name: otp, target: fr, module: dave}}
          - {{name: discard, target: fr, module: carol}}
        """))
    junit, report = tmp_path / "fr.xml", tmp_path / "fr.json"
    r = cli("run", str(probe), "--junit", str(junit), "--json", str(report))
    assert r.returncode == 2, r.stdout + r.stderr
    doc = json.loads(report.read_text())
    assert verdicts(doc) == {("vlan-assignment", "fr"): "DEGRADED", ("vlan-assignment", "fr-require-ma"): "DEGRADED",
                             ("policy-reject", "fr"): "DEGRADED", ("otp", "fr"): "DEGRADED",
                             ("discard", "fr"): "FAILED"}
    for check in doc["checks"]:
        if check["verdict"] == "DEGRADED":  # FreeRADIUS 3.2.1 signs no PAP reply: Blast-RADIUS exposure
            assert check["failures"] == [] and len(check["degraded"]) == 1 and "KB5040268" in check["degraded"][0]
    assert by_name(doc)["otp"]["outcome"]["round_trips"] == 2
    table = r.stdout.splitlines()
    assert any(line.split()[:2] == ["vlan-assignment", "fr-require-ma"] and "DEGRADED" in line for line in table)
    assert "5 check(s): 0 OK, 4 DEGRADED, 1 FAILED, 0 UNKNOWN" in r.stdout
    root = ET.parse(junit).getroot()
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("5", "1", "0")
    classes = {c.get("classname") for c in root.iter("testcase")}
    assert classes == {"radius-probe.fr", "radius-probe.fr-require-ma"}
    assert FR_SECRET not in r.stdout + report.read_text() + junit.read_text()
