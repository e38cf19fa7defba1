"""`radius-probe auth --method pap` against a real FreeRADIUS on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.servers.freeradius import Behaviour, FreeRadiusServer, User, freeradius_available

pytestmark = [
    pytest.mark.freeradius,
    pytest.mark.skipif(not freeradius_available(), reason="needs /usr/sbin/freeradius (Debian package freeradius)"),
]

SECRET = "fr-test-secret"
PASSWORD = "Corr3ct-Horse"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FreeRadiusServer]:
    users = [
        User("alice", PASSWORD, reply_attributes=(("Class", b"vpn-users"), ("Session-Timeout", 3600),
                                                  ("Filter-Id", "vpn"))),
        User("bob", PASSWORD, behaviour=Behaviour.REJECT),
        User("carol", PASSWORD, behaviour=Behaviour.DISCARD),
        User("dave", PASSWORD, behaviour=Behaviour.OTP, otp_code="123456"),
        User("short", PASSWORD, hold_s=2),
        User("slow", PASSWORD, hold_s=65),
    ]
    with FreeRadiusServer(tmp_path_factory.mktemp("freeradius"), SECRET, users) as srv:
        yield srv


@pytest.fixture(scope="module")
def secret_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("secrets") / "secret"
    path.write_text(SECRET + "\n")
    return path


def probe(port: int, secret_file: Path, identity: str, *extra: str, password: str = PASSWORD) -> tuple[int, dict[str, Any]]:
    cmd = [sys.executable, "-m", "probe.cli", "auth", f"127.0.0.1:{port}", "--secret-file", str(secret_file),
           "--method", "pap", "--identity", identity, "--password", password, "--json",
           "--allow-unsigned", *extra]  # FreeRADIUS signs no PAP reply: that degraded state is judged elsewhere
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=200)
    assert r.stderr == "", r.stderr
    return r.returncode, json.loads(r.stdout)


FAST = ("--timeout", "1", "--retries", "1", "--late-wait", "3")


def codes(doc: dict[str, Any]) -> list[str]:
    return [d["code"] for d in doc["diagnosis"]]


def test_accept(server: FreeRadiusServer, secret_file: Path) -> None:
    rc, doc = probe(server.port, secret_file, "alice")
    assert rc == 0 and doc["result"] == "accept" and doc["expectation_met"]
    assert doc["message_authenticator"] == "absent"  # FreeRADIUS signs no PAP reply
    assert doc["reply_message"] == "Welcome alice"
    assert doc["reply_attributes"]["Session-Timeout"] == [3600]
    assert doc["reply_attributes"]["Filter-Id"] == ["vpn"]
    assert doc["reply_attributes"]["Class"] == ["0x" + b"vpn-users".hex()]
    assert SECRET not in json.dumps(doc) and PASSWORD not in json.dumps(doc)


def test_wrong_password_is_reject(server: FreeRadiusServer, secret_file: Path) -> None:
    rc, doc = probe(server.port, secret_file, "alice", password="wrong")
    assert rc == 2 and doc["result"] == "reject" and doc["reply_message"] == "Authentication failed"
    assert codes(doc) == ["access_reject"]


def test_policy_reject(server: FreeRadiusServer, secret_file: Path) -> None:
    rc, doc = probe(server.port, secret_file, "bob", "--expect", "reject")
    assert rc == 0 and doc["result"] == "reject" and doc["reply_message"] == "Access denied by policy"


def test_discard(server: FreeRadiusServer, secret_file: Path) -> None:
    rc, doc = probe(server.port, secret_file, "carol", *FAST)
    assert rc == 2 and doc["result"] == "discard" and doc["error_kind"] is None
    assert doc["retransmissions"] == 1 and codes(doc) == ["no_reply"]


@pytest.mark.parametrize("port_name", ["port", "port_require_ma"])
def test_wrong_secret_is_silent(server: FreeRadiusServer, tmp_path: Path, port_name: str) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not-" + SECRET)
    rc, doc = probe(getattr(server, port_name), wrong, "alice", *FAST)
    assert rc == 2 and doc["result"] == "discard" and codes(doc) == ["no_reply"]


def test_required_message_authenticator_port_accepts_our_signed_requests(server: FreeRadiusServer,
                                                                         secret_file: Path) -> None:
    rc, doc = probe(server.port_require_ma, secret_file, "alice")
    assert rc == 0 and doc["result"] == "accept"


def test_otp_challenge_and_answer(server: FreeRadiusServer, secret_file: Path) -> None:
    rc, doc = probe(server.port, secret_file, "dave")
    assert rc == 2 and doc["result"] == "challenge" and codes(doc) == ["otp_challenge"]
    assert doc["reply_message"] == "Enter your Microsoft verification code"
    rc, doc = probe(server.port, secret_file, "dave", "--otp", "123456")
    assert rc == 0 and doc["result"] == "accept" and doc["round_trips"] == 2
    rc, doc = probe(server.port, secret_file, "dave", "--otp", "999999")
    assert rc == 2 and doc["result"] == "reject" and codes(doc) == ["otp_rejected"]  # not a denied push


def test_short_hold_outside_window_and_late(server: FreeRadiusServer, secret_file: Path) -> None:
    rc, doc = probe(server.port, secret_file, "short", "--window", "1", "--timeout", "10", "--retries", "0")
    assert rc == 2 and doc["result"] == "accept" and not doc["within_window"] and not doc["late"]
    assert doc["final_response_s"] >= 2 and "answer_outside_window" in codes(doc)
    rc, doc = probe(server.port, secret_file, "short", "--timeout", "0.5", "--retries", "1", "--late-wait", "10")
    assert rc == 2 and doc["result"] == "accept" and doc["late"] and doc["within_window"]
    assert doc["retransmissions"] == 1 and "late_answer_beyond_client_timeout" in codes(doc)


@pytest.mark.slow
def test_65s_hold_is_an_accept_outside_the_window(server: FreeRadiusServer, secret_file: Path) -> None:
    since = len(server.events())
    rc, doc = probe(server.port, secret_file, "slow")
    assert doc["result"] == "accept" and not doc["late"]
    assert doc["final_response_s"] >= 64.5  # the 65 s hold, as the Outcome timed it
    assert doc["within_window"] is False and doc["window_s"] == 60 and rc == 2
    assert "answer_outside_window" in codes(doc)
    assert doc["retransmissions"] == 2  # at 30 s and 60 s: the server saw duplicates, held once
    events = server.events()[since:]
    assert [e.kind for e in events].count("hold-start") == 1
    assert [e.kind for e in events].count("accept") == 1
