"""The command line end to end: `radius-probe emulator` in one process, `radius-probe auth` in another."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers import CLI, cli, free_udp_port

LAB_SECRET = "radius-probe-lab"


@pytest.fixture(scope="module")
def emulator_port() -> Iterator[int]:
    port = free_udp_port()
    proc = subprocess.Popen([*CLI, "emulator", "--listen", f"127.0.0.1:{port}", "--duration", "300"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert f"listening on 127.0.0.1:{port}" in first, first + (proc.stderr.read() if proc.poll() is not None else "")
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture()
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret"
    path.write_text(LAB_SECRET + "\n")
    return path


def auth(port: int, secret_file: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    # The emulator does not sign PAP replies (like NPS before KB5040268): allowed here, so OK stays exit 0.
    return cli("auth", f"127.0.0.1:{port}", "--secret-file", str(secret_file), "--allow-unsigned", *extra)


def test_accept_json_exit_0(emulator_port: int, secret_file: Path) -> None:
    r = auth(emulator_port, secret_file, "--method", "pap", "--identity", "alice", "--password", "Passw0rd!", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["schema"] == 1 and doc["result"] == "accept" and doc["expectation_met"] is True
    assert doc["target"] == f"127.0.0.1:{emulator_port}" and doc["method"] == "pap" and doc["identity"] == "alice"
    assert doc["window_s"] == 60 and doc["within_window"] is True and doc["message_authenticator"] == "absent"
    assert doc["attempts"][0]["round"] == 1 and doc["attempts"][0]["code"] == "Access-Accept"
    for key in ("error_kind", "duration_s", "final_response_s", "round_trips", "retransmissions",
                "reply_message", "mppe", "cryptobinding", "tls", "diagnosis"):
        assert key in doc
    assert LAB_SECRET not in r.stdout and "Passw0rd!" not in r.stdout


def test_reject_exit_2_with_human_summary(emulator_port: int, secret_file: Path) -> None:
    r = auth(emulator_port, secret_file, "--identity", "bob", "--password", "Passw0rd!")
    assert r.returncode == 2
    assert "REJECT" in r.stdout and "access_reject" in r.stdout and "denied by the user" in r.stdout


def test_expect_reject_is_met(emulator_port: int, secret_file: Path) -> None:
    r = auth(emulator_port, secret_file, "--identity", "bob", "--password", "Passw0rd!", "--expect", "reject")
    assert r.returncode == 0, r.stdout


def test_discard_with_rras_timeout(emulator_port: int, secret_file: Path) -> None:
    r = auth(emulator_port, secret_file, "--identity", "carol", "--password", "Passw0rd!", "--timeout", "0.5",
             "--retries", "1", "--late-wait", "1", "--json")
    doc = json.loads(r.stdout)
    assert r.returncode == 2 and doc["result"] == "discard" and doc["retransmissions"] == 1
    assert doc["diagnosis"][0]["code"] == "no_reply"


def test_otp_flag_answers_the_challenge(emulator_port: int, secret_file: Path) -> None:
    password_file = secret_file.parent / "pw"
    password_file.write_text("Passw0rd!\n")
    r = auth(emulator_port, secret_file, "--identity", "dave", "--password-file", str(password_file),
             "--otp", "123456", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["round_trips"] == 2


def test_secret_from_environment(emulator_port: int) -> None:
    r = cli("auth", f"127.0.0.1:{emulator_port}", "--identity", "alice", "--password", "Passw0rd!",
            "--allow-unsigned", env={"RADIUS_PROBE_SECRET": LAB_SECRET})
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--method", "kerberos"], "unknown method 'kerberos'"),
        (["--attr", "No-Such-Attr=1"], "unknown attribute 'No-Such-Attr'"),
        (["--attr", "NAS-Port=abc"], "NAS-Port='abc'"),
        (["--attr", "NAS-IP-Address=300.1.1.1"], "NAS-IP-Address='300.1.1.1'"),
        (["--attr", "Framed-MTU"], "expected NAME=VALUE"),
        (["--timeout", "-1"], "--timeout must be > 0"),
        (["--expect", "maybe"], "--expect 'maybe'"),
        (["--profile", "cisco"], "unknown --profile 'cisco'"),
    ],
)
def test_bad_input_exit_3_one_line(secret_file: Path, args: list[str], message: str) -> None:
    r = cli("auth", "127.0.0.1:1812", "--secret", "TopSecretValue", "--identity", "u", "--password", "pw", *args)
    assert r.returncode == 3
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert "Traceback" not in r.stderr and "TopSecretValue" not in r.stderr + r.stdout


@pytest.mark.parametrize(
    "target, message",
    [
        ("127.0.0.1:99999", "port '99999'"),
        ("127.0.0.1:abc", "port 'abc'"),
        ("no..such..host", "not a valid host name"),
        ("[::1", "missing ']'"),
    ],
)
def test_bad_target_exit_3(secret_file: Path, target: str, message: str) -> None:
    r = cli("auth", target, "--secret-file", str(secret_file), "--identity", "u", "--password", "p")
    assert r.returncode == 3 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_missing_and_unreadable_secret(tmp_path: Path) -> None:
    r = cli("auth", "127.0.0.1", "--identity", "u", "--password", "p")
    assert r.returncode == 3 and "no shared secret" in r.stderr
    r = cli("auth", "127.0.0.1", "--secret-file", str(tmp_path / "missing"), "--identity", "u", "--password", "p")
    assert r.returncode == 3 and "missing: cannot read" in r.stderr
    empty = tmp_path / "empty"
    empty.write_text("")
    r = cli("auth", "127.0.0.1", "--secret-file", str(empty), "--identity", "u", "--password", "p")
    assert r.returncode == 3 and "is empty" in r.stderr


def test_pap_without_password_exit_3(secret_file: Path) -> None:
    r = cli("auth", "127.0.0.1", "--secret-file", str(secret_file), "--identity", "u")
    assert r.returncode == 3 and "needs --password" in r.stderr


def test_emulator_refuses_bad_config(tmp_path: Path) -> None:
    bad = tmp_path / "em.yaml"
    bad.write_text("users:\n  zed:\n    mfa: sometimes\n")
    r = cli("emulator", "--listen", f"127.0.0.1:{free_udp_port()}", "--config", str(bad), "--duration", "1")
    assert r.returncode == 3 and "users.zed.mfa" in r.stderr and "'sometimes'" in r.stderr


def test_emulator_config_file_users_and_policies(tmp_path: Path, secret_file: Path) -> None:
    port = free_udp_port()
    conf = tmp_path / "em.yaml"
    conf.write_text(
        f"secret_file: {secret_file}\n"
        "default_users: false\n"
        "users:\n"
        "  vpn-health:\n"
        "    password: HealthCheck1\n"
        "    mfa: none\n"
        "    reply: {Session-Timeout: 3600, Filter-Id: vpn-users}\n"
    )
    proc = subprocess.Popen([*CLI, "emulator", "--listen", f"127.0.0.1:{port}", "--config", str(conf),
                             "--duration", "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and "listening" in proc.stdout.readline()
        r = auth(port, secret_file, "--identity", "vpn-health", "--password", "HealthCheck1", "--json")
        doc = json.loads(r.stdout)
        assert doc["result"] == "accept"
        assert doc["reply_attributes"] == {"Session-Timeout": [3600], "Filter-Id": ["vpn-users"]}
        r = auth(port, secret_file, "--identity", "alice", "--password", "Passw0rd!", "--json")
        assert json.loads(r.stdout)["result"] == "reject"  # default users switched off
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_demo_runs_and_every_case_shows_its_behaviour() -> None:
    r = cli("demo", timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    last = r.stdout.splitlines()[-1].split()
    assert last[1:4] == ["of", last[0], "behaviours"], r.stdout  # "N of N behaviours recognised"
    for text in ("ESTS_TOKEN_ERROR discard", "no_reply", "otp_challenge", "late_answer_beyond_client_timeout",
                 "answer_outside_window", "port_unreachable"):
        assert text in r.stdout


def test_certs_init_writes_a_lab_pki(tmp_path: Path) -> None:
    r = cli("certs", "init", str(tmp_path / "pki"))
    assert r.returncode == 0 and (tmp_path / "pki" / "ca.pem").is_file() and "alice.p12" in r.stdout
    again = cli("certs", "init", str(tmp_path / "pki"))
    assert again.returncode == 3 and "use --force" in again.stderr
