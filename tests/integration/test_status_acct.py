"""Status-Server (RFC 5997) and accounting (RFC 2866) against FreeRADIUS 3.2 and the NPS emulator.

FreeRADIUS (status_server = yes) answers Status-Server on its auth port with Access-Accept and on its
accounting port with Accounting-Response, and records every Accounting-Request it acknowledges.
The emulator is NPS: it never answers Status-Server (the diagnosis says so, rather than calling the
server down) and acknowledges accounting on its own port once the Request Authenticator verifies.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from probe.emulator.config import DEFAULT_SECRET
from tests import helpers
from tests.servers.freeradius import User, freeradius_available
from tests.servers.freeradius_transport import TransportFreeRadius

SECRET = "fr-acct-secret"
FAST = ("--timeout", "0.5", "--retries", "1")
needs_freeradius = pytest.mark.skipif(not freeradius_available(), reason="needs /usr/sbin/freeradius")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TransportFreeRadius]:
    if not freeradius_available():
        pytest.skip("needs /usr/sbin/freeradius")
    with TransportFreeRadius(tmp_path_factory.mktemp("fr-acct"), SECRET, [User("alice", "pw")]) as srv:
        yield srv


@pytest.fixture(scope="module")
def secret_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("secret") / "secret"
    path.write_text(SECRET + "\n")
    return path


def cli_json(*args: str) -> tuple[int, dict[str, Any]]:
    r = helpers.cli(*args, "--json")
    assert r.stderr == "", r.stderr
    return r.returncode, json.loads(r.stdout)


def codes(doc: dict[str, Any]) -> list[str]:
    return [d["code"] for d in doc["diagnosis"]]


@needs_freeradius
def test_status_server_on_the_auth_port(server: TransportFreeRadius, secret_file: Path) -> None:
    rc, doc = cli_json("status", f"127.0.0.1:{server.port}", "--secret-file", str(secret_file), *FAST,
                       "--allow-unsigned")  # FreeRADIUS 3.2.1 does not sign its Access-Accept to Status-Server
    assert (rc, doc["result"], doc["method"]) == (0, "accept", "status-server"), doc
    assert doc["attempts"][0]["code"] == "Access-Accept" and doc["message_authenticator"] == "absent"
    assert "Received Status-Server" in server.log_text()


@needs_freeradius
def test_status_server_unsigned_reply_is_the_blast_radius_state(server: TransportFreeRadius, secret_file: Path) -> None:
    rc, doc = cli_json("status", f"127.0.0.1:{server.port}", "--secret-file", str(secret_file), *FAST)
    assert rc == 1 and doc["result"] == "accept" and "message_authenticator_absent" in codes(doc)


@needs_freeradius
def test_status_server_on_the_accounting_port(server: TransportFreeRadius, secret_file: Path) -> None:
    rc, doc = cli_json("status", f"127.0.0.1:{server.acct_port}", "--secret-file", str(secret_file), *FAST)
    assert (rc, doc["result"]) == (0, "accept"), doc
    assert doc["attempts"][0]["code"] == "Accounting-Response" and doc["message_authenticator"] is None


@needs_freeradius
def test_status_server_with_a_wrong_secret_is_not_accepted(server: TransportFreeRadius, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-secret\n")
    rc, doc = cli_json("status", f"127.0.0.1:{server.port}", "--secret-file", str(wrong), *FAST)
    assert rc == 2 and doc["result"] == "discard" and codes(doc)[0] == "status_server_unanswered"


@needs_freeradius
def test_accounting_session_is_recorded_by_freeradius(server: TransportFreeRadius, secret_file: Path) -> None:
    before = len(server.acct_records())
    rc, doc = cli_json("acct", f"127.0.0.1:{server.acct_port}", "--secret-file", str(secret_file), *FAST,
                       "--identity", "alice")
    assert (rc, doc["result"], doc["method"], doc["round_trips"]) == (0, "accept", "accounting", 3), doc
    session = doc["accounting"]["session_id"]
    assert doc["accounting"]["acknowledged"] == ["Start", "Interim-Update", "Stop"]
    assert server.acct_records()[before:] == [("Start", session, "alice"), ("Interim-Update", session, "alice"),
                                              ("Stop", session, "alice")]
    assert [a["code"] for a in doc["attempts"]] == ["Accounting-Response"] * 3


@needs_freeradius
def test_accounting_one_record(server: TransportFreeRadius, secret_file: Path) -> None:
    before = len(server.acct_records())
    rc, doc = cli_json("acct", f"127.0.0.1:{server.acct_port}", "--secret-file", str(secret_file), *FAST,
                       "--status-type", "stop", "--session-id", "vpn-42")
    assert (rc, doc["round_trips"]) == (0, 1), doc
    assert server.acct_records()[before:] == [("Stop", "vpn-42", "radius-probe")]


@needs_freeradius
def test_accounting_with_a_wrong_secret_is_unanswered(server: TransportFreeRadius, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-secret\n")
    before = len(server.acct_records())
    rc, doc = cli_json("acct", f"127.0.0.1:{server.acct_port}", "--secret-file", str(wrong), *FAST)
    assert rc == 2 and doc["result"] == "discard" and codes(doc)[0] == "accounting_unanswered"
    assert doc["accounting"]["acknowledged"] == [] and server.acct_records()[before:] == []


@needs_freeradius
def test_probe_file_checks_of_both_kinds(server: TransportFreeRadius, secret_file: Path, probe_writer: Any) -> None:
    path = probe_writer(f"""
modules:
  alive: {{method: status-server, timeout: 0.5, retries: 1}}
  session: {{method: accounting, identity: alice, timeout: 0.5, retries: 1, deadline: 5}}
targets:
  auth: {{address: "127.0.0.1:{server.port}", secret_file: {secret_file}}}
  acct: {{address: "127.0.0.1:{server.acct_port}", secret_file: {secret_file}}}
checks:
  - {{name: alive, target: auth, module: alive, expect: {{message_authenticator: optional}}}}
  - {{name: session, target: acct, module: session}}
""")
    prom = path.parent / "run.prom"
    r = helpers.cli("run", str(path), "--json", "-", "--no-progress", "--textfile", str(prom))
    assert r.returncode == 0, r.stdout + r.stderr
    metrics = prom.read_text()
    for method in ("status-server", "accounting"):  # the metrics' method label carries the check kind
        assert f'method="{method}"' in metrics, metrics
    checks = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    assert checks["alive"]["outcome"]["result"] == "accept"
    assert checks["session"]["outcome"]["accounting"]["acknowledged"] == ["Start", "Interim-Update", "Stop"]


@pytest.fixture(scope="module")
def emulator_ports() -> Iterator[tuple[int, int]]:
    """`radius-probe emulator` in a subprocess (auth and accounting ports), stopped by its own --duration."""
    auth, acct = helpers.free_udp_port(), helpers.free_udp_port()
    proc = subprocess.Popen([*helpers.CLI, "emulator", "--listen", f"127.0.0.1:{auth}", "--acct-listen",
                             f"127.0.0.1:{acct}", "--duration", "60"], stdout=subprocess.PIPE, text=True,
                            env=helpers.clean_env())
    try:
        assert proc.stdout is not None
        for _ in range(40):
            line = proc.stdout.readline()
            if line.startswith("accounting on"):
                break
        else:
            raise AssertionError("the emulator did not start its accounting port")
        yield auth, acct
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_emulator_never_answers_status_server(emulator_ports: tuple[int, int]) -> None:
    for port in emulator_ports:
        rc, doc = cli_json("status", f"127.0.0.1:{port}", "--secret", DEFAULT_SECRET, *FAST)
        assert rc == 2 and doc["result"] == "discard"
        assert codes(doc)[0] == "status_server_unanswered"
        assert "NPS does not answer Status-Server; this is not a down server" in doc["diagnosis"][0]["text"]


def test_emulator_acknowledges_accounting(emulator_ports: tuple[int, int]) -> None:
    rc, doc = cli_json("acct", f"127.0.0.1:{emulator_ports[1]}", "--secret", DEFAULT_SECRET, *FAST)
    assert (rc, doc["result"]) == (0, "accept") and doc["accounting"]["acknowledged"] == [
        "Start", "Interim-Update", "Stop"]
    rc, doc = cli_json("acct", f"127.0.0.1:{emulator_ports[1]}", "--secret", "wrong-secret", *FAST)
    assert rc == 2 and codes(doc)[0] == "accounting_unanswered"


def test_acct_and_status_refuse_bad_input() -> None:
    r = helpers.cli("acct", "127.0.0.1", "--secret", "s", "--status-type", "begin")
    assert r.returncode == 3 and "invalid choice: 'begin'" in r.stderr and len(r.stderr.strip().splitlines()) <= 2
    r = helpers.cli("status", "127.0.0.1")
    assert r.returncode == 3 and "no shared secret" in r.stderr
