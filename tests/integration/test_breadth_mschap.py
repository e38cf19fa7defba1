"""RADIUS MS-CHAPv2 and CHAP (issue 16) against a real FreeRADIUS 3.2 and the NPS emulator.

FreeRADIUS's rlm_mschap computes MS-CHAP2-Success and the MS-MPPE keys itself, so an accept here
proves the probe's RFC 2759/3079/2548 arithmetic against an independent implementation; its
SMB-Account-CTRL-TEXT gives real MS-CHAP-Error codes (647 locked out, 648 password expired).
The emulator plays NPS with the MFA extension: push approve/deny, and the TOTP user who FAILS
over MS-CHAPv2 and CHAP (the OTP round exists only for PAP).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest

from probe.drivers.aio import authenticate
from probe.emulator.config import DEFAULT_PASSWORD, DEFAULT_SECRET
from probe.model import ProbeConfig, Secret
from probe.outcome import Outcome
from tests.helpers import FAST, cli, emulator, run
from tests.servers.freeradius import Behaviour, FreeRadiusServer, User, freeradius_available

SECRET = "fr-breadth-secret"
PASSWORD = "Corr3ct-Horse"
METHODS = ("mschapv2", "chap")



def codes(o: Outcome | dict[str, Any]) -> list[str]:
    diagnosis = o["diagnosis"] if isinstance(o, dict) else o.diagnosis
    return [d["code"] for d in diagnosis]


def config(address: tuple[str, int], method: str, identity: str, *, password: str, secret: str,
           **kw: Any) -> ProbeConfig:
    kw.setdefault("policy", FAST)
    return ProbeConfig(address=address, secret=Secret(secret.encode()), method=method, identity=identity,
                       password=Secret(password.encode()), **kw)


# --------------------------------------------------------------------------- FreeRADIUS


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FreeRadiusServer]:
    if not freeradius_available():
        pytest.skip("needs /usr/sbin/freeradius (Debian package freeradius)")
    users = [
        User("alice", PASSWORD, reply_attributes=(("Class", b"vpn-users"),)),
        User("bob", PASSWORD, behaviour=Behaviour.REJECT),
        User("dave", PASSWORD, behaviour=Behaviour.OTP, otp_code="123456"),
        User("locked", PASSWORD, account_ctrl="[UL]"),
        User("expired", PASSWORD, account_ctrl="[Ue]"),
    ]
    with FreeRadiusServer(tmp_path_factory.mktemp("freeradius-breadth"), SECRET, users) as srv:
        yield srv


def fr(server: FreeRadiusServer, method: str, identity: str, password: str = PASSWORD, **kw: Any) -> Outcome:
    return run(authenticate(config((server.host, server.port), method, identity, password=password, secret=SECRET,
                                   **kw)))


@pytest.mark.freeradius
@pytest.mark.parametrize("method", METHODS)
def test_freeradius_accepts_and_verifies(server: FreeRadiusServer, method: str) -> None:
    o = fr(server, method, "alice")
    assert (o.result, o.error_kind, o.expectation_met) == ("accept", None, True), o.to_json()
    assert o.reply_message == "Welcome alice" and o.reply_attributes["Class"] == [b"vpn-users"]
    # MS-CHAPv2: rlm_mschap's MS-CHAP2-Success verified (else an error) and its MS-MPPE keys equal ours
    assert o.mppe == ("match" if method == "mschapv2" else "absent")
    if method == "mschapv2":
        assert "MS-CHAP2-Success" in o.reply_attributes and o.warnings == []
    assert PASSWORD not in o.to_json() and SECRET not in o.to_json()


@pytest.mark.freeradius
@pytest.mark.parametrize("method", METHODS)
def test_freeradius_wrong_password_is_a_reject(server: FreeRadiusServer, method: str) -> None:
    o = fr(server, method, "alice", password="wrong")
    assert o.result == "reject" and codes(o) == ["access_reject"]
    if method == "mschapv2":
        assert o.eap_detail is not None and o.eap_detail.startswith("MS-CHAP-Error E=691 (authentication failure")
        assert "MS-CHAP-Error E=691" in o.diagnosis[0]["text"]  # the diagnosis names the server's reason
    else:
        assert o.eap_detail is None


@pytest.mark.freeradius
@pytest.mark.parametrize("identity, error, words", [
    ("locked", 647, "account disabled or locked out"),
    ("expired", 648, "password expired"),
])
def test_freeradius_account_restrictions_reach_the_diagnosis(server: FreeRadiusServer, identity: str, error: int,
                                                             words: str) -> None:
    o = fr(server, "mschapv2", identity)
    assert o.result == "reject" and o.eap_detail is not None
    assert o.eap_detail.startswith(f"MS-CHAP-Error E={error} ({words}), no retry"), o.eap_detail
    assert o.diagnosis[0]["code"] == "account_restricted"  # the account, not the password
    assert f"E={error} ({words})" in o.diagnosis[0]["text"]


@pytest.mark.freeradius
@pytest.mark.parametrize("method", METHODS)
def test_freeradius_otp_user_cannot_use_a_challenge_method(server: FreeRadiusServer, method: str) -> None:
    o = fr(server, method, "dave")
    assert o.result == "reject" and codes(o) == ["access_reject"]


@pytest.mark.freeradius
@pytest.mark.parametrize("method", METHODS)
def test_freeradius_policy_reject(server: FreeRadiusServer, method: str) -> None:
    o = fr(server, method, "bob", expected="reject")
    assert o.result == "reject" and o.expectation_met and o.reply_message == "Access denied by policy"


@pytest.mark.freeradius
def test_cli_auth_method_mschapv2_json(server: FreeRadiusServer, tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    r = cli("auth", f"127.0.0.1:{server.port}", "--secret-file", str(secret_file), "--method", "mschapv2",
            "--identity", "alice", "--password", PASSWORD, "--json", "--allow-unsigned")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    doc = json.loads(r.stdout)
    assert (doc["method"], doc["result"], doc["mppe"]) == ("mschapv2", "accept", "match")
    assert PASSWORD not in r.stdout and SECRET not in r.stdout


def test_cli_rejects_an_otp_for_mschapv2_before_sending(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    r = cli("auth", "127.0.0.1:9", "--secret-file", str(secret_file), "--method", "mschapv2", "--identity", "a",
            "--password", "pw", "--otp", "123456")
    assert r.returncode == 3 and "otp" in r.stderr.lower() and len(r.stderr.strip().splitlines()) == 1, r.stderr


# --------------------------------------------------------------------------- the NPS emulator


def em(method: str, identity: str, password: str = DEFAULT_PASSWORD, **kw: Any) -> tuple[Outcome, list[Any]]:
    async def go() -> tuple[Outcome, list[Any]]:
        async with emulator() as e:
            o = await authenticate(config(e.address, method, identity, password=password, secret=DEFAULT_SECRET,
                                          **kw))
            return o, list(e.events)

    return run(go())


@pytest.mark.parametrize("method", METHODS)
def test_emulator_push_approved(method: str) -> None:
    o, events = em(method, "alice")
    assert (o.result, o.error_kind, o.expectation_met) == ("accept", None, True), o.to_json()
    assert o.mppe == ("match" if method == "mschapv2" else "absent")
    assert [e.event_id for e in events] == [6272]


@pytest.mark.parametrize("method", METHODS)
def test_emulator_wrong_password_is_reason_16(method: str) -> None:
    o, events = em(method, "alice", password="wrong")
    assert o.result == "reject" and (events[-1].event_id, events[-1].reason) == (6273, 16)
    if method == "mschapv2":
        assert o.eap_detail == "MS-CHAP-Error E=691 (authentication failure (wrong password or unknown user)), no retry"


@pytest.mark.parametrize("method", METHODS)
def test_emulator_push_denied_is_reason_21(method: str) -> None:
    o, events = em(method, "bob", expected="reject")
    assert o.result == "reject" and o.expectation_met and o.eap_detail is None
    assert (events[-1].event_id, events[-1].reason) == (6273, 21)


@pytest.mark.parametrize("method", METHODS)
def test_emulator_totp_user_fails_over_the_method(method: str) -> None:
    """PROTOCOL-NOTES: the TOTP user gets no OTP round over MS-CHAPv2 (nor CHAP); the extension rejects."""
    o, events = em(method, "dave")
    assert o.result == "reject" and o.round_trips == 1
    assert (events[-1].event_id, events[-1].reason) == (6273, 21)
    assert "OTP" in events[-1].text and "Challenge requested in Authentication Ext" in events[-1].text
    assert [e.event_id for e in events] == [6273]  # no Access-Challenge (6276) was offered


@pytest.mark.parametrize("method", METHODS)
def test_emulator_discard_and_unknown_user(method: str) -> None:
    o, _ = em(method, "carol")
    assert o.result == "discard" and codes(o) == ["no_reply"]
    o, events = em(method, "nobody")
    assert o.result == "reject" and (events[-1].event_id, events[-1].reason) == (6273, 16)


# --------------------------------------------------------------------------- the scenario file


def test_scenario_vpn_appliance_mschapv2(tmp_path: Path) -> None:
    """scenarios/vpn-appliance-mschapv2.yaml against `radius-probe emulator` (a subprocess), end to end."""
    import subprocess
    import sys

    from probe.pki import init_pki
    from tests.helpers import ROOT, clean_env, free_udp_port

    pki_dir = tmp_path / "pki"
    init_pki(pki_dir)
    config = tmp_path / "emulator.yaml"
    config.write_text(f"sign_replies: always\neap: {{pki: {pki_dir}}}\ndefault_users: true\n")
    files = {}
    for name, value in (("secret", DEFAULT_SECRET), ("password", DEFAULT_PASSWORD), ("wrong", "not-it")):
        files[name] = tmp_path / name
        files[name].write_text(value + "\n")
    port = free_udp_port()
    proc = subprocess.Popen([sys.executable, "-m", "probe.cli", "emulator", "--listen", f"127.0.0.1:{port}",
                             "--config", str(config), "--duration", "120"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=clean_env())
    try:
        assert proc.stdout is not None and "listening on" in proc.stdout.readline()
        env = {"NPS_ADDRESS": f"127.0.0.1:{port}", "NPS_SECRET_FILE": str(files["secret"]), "VPN_USER": "alice",
               "VPN_PASSWORD_FILE": str(files["password"]), "WRONG_PASSWORD_FILE": str(files["wrong"]),
               "RADIUS_TIMEOUT": "2", "LATE_WAIT": "3"}
        r = cli("run", str(ROOT / "scenarios" / "vpn-appliance-mschapv2.yaml"), "--json", "-", env=env)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert r.returncode == 0, r.stdout + r.stderr
    checks = {c["name"]: c["outcome"] for c in json.loads(r.stdout)["checks"]}
    assert (checks["appliance-push-approved"]["method"], checks["appliance-push-approved"]["mppe"]) == (
        "mschapv2", "match")
    assert checks["appliance-wrong-password"]["eap_detail"].startswith("MS-CHAP-Error E=691")
    assert (checks["ikev2-push-approved"]["method"], checks["ikev2-push-approved"]["mppe"]) == ("eap-mschapv2", "match")
