"""Bare EAP-MSCHAPv2 and EAP-TTLS (PAP, MS-CHAPv2 inside) (issue 16) against FreeRADIUS 3.2 and the emulator.

FreeRADIUS runs every one of them (rlm_eap_mschapv2 in the outer site, rlm_eap_ttls with the inner
tunnel's pap and mschap), computing its own MS-MPPE keys, so ``mppe == "match"`` proves the probe's
key derivation (RFC 3079 for bare MS-CHAPv2, RFC 5281 "ttls keying material" for TTLS). The
emulator plays NPS: bare EAP-MSCHAPv2 ("Secured password") with the MFA behaviours, and EAP-TTLS
refused as NPS refuses it: it proposes PEAP, the TTLS peer Naks it asking for 21, and the reject
(reason 22) says the method is not offered.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest

from probe.drivers.aio import authenticate
from probe.emulator.config import DEFAULT_PASSWORD, DEFAULT_SECRET, EapSettings, default_config
from probe.model import ProbeConfig, Secret, TlsOptions
from probe.outcome import Outcome
from probe.pki import Pki, init_pki
from tests.helpers import FAST, cli, emulator, run
from tests.servers.freeradius import Behaviour, EapConfig, FreeRadiusServer, User, freeradius_available

SECRET = "fr-breadth-eap"
PASSWORD = "Corr3ct-Horse"
TTLS = ("ttls-pap", "ttls-mschapv2")
ALL = ("eap-mschapv2", *TTLS)


def codes(o: Outcome) -> list[str]:
    return [d["code"] for d in o.diagnosis]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return init_pki(tmp_path_factory.mktemp("pki"))


def config(address: tuple[str, int], pki: Pki, method: str, identity: str, *, password: str, secret: str,
           **kw: Any) -> ProbeConfig:
    kw.setdefault("policy", FAST)
    tls = TlsOptions(ca=str(pki.ca), server_name="nps.lab.test") if method in TTLS else TlsOptions()
    return ProbeConfig(address=address, secret=Secret(secret.encode()), method=method, identity=identity,
                       password=Secret(password.encode()), tls=tls, **kw)


# --------------------------------------------------------------------------- FreeRADIUS


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[FreeRadiusServer]:
    if not freeradius_available():
        pytest.skip("needs /usr/sbin/freeradius (Debian package freeradius)")
    users = [User("alice", PASSWORD, reply_attributes=(("Class", b"vpn-users"),)),
             User("mallory", PASSWORD, behaviour=Behaviour.REJECT),
             User("carol", PASSWORD, behaviour=Behaviour.DISCARD)]
    eap = EapConfig(ca_file=pki.ca, server_cert=pki.server_chain, server_key=pki.server_key)
    with FreeRadiusServer(tmp_path_factory.mktemp("fr-breadth-eap"), SECRET, users, eap=eap) as srv:
        yield srv


def fr(server: FreeRadiusServer, pki: Pki, method: str, identity: str, password: str = PASSWORD,
       **kw: Any) -> Outcome:
    return run(authenticate(config((server.host, server.port), pki, method, identity, password=password,
                                   secret=SECRET, **kw)))


@pytest.mark.freeradius
@pytest.mark.parametrize("method", ALL)
def test_freeradius_accept_with_matching_keys(server: FreeRadiusServer, pki: Pki, method: str) -> None:
    o = fr(server, pki, method, "alice")
    assert (o.result, o.error_kind, o.mppe, o.expectation_met) == ("accept", None, "match", True), o.to_json()
    assert o.reply_message == "Welcome alice" and o.reply_attributes["Class"] == [b"vpn-users"]
    assert o.message_authenticator == "valid" and o.cryptobinding == "absent"
    if method in TTLS:
        assert o.tls is not None and o.tls["version"] == "TLSv1.2" and o.tls["validation"] == "ok", o.tls
    else:
        assert o.tls is None  # no tunnel, nothing to report
    assert PASSWORD not in o.to_json() and SECRET not in o.to_json()


@pytest.mark.freeradius
@pytest.mark.parametrize("method", ALL)
def test_freeradius_wrong_password_is_a_credentials_reject(server: FreeRadiusServer, pki: Pki, method: str) -> None:
    o = fr(server, pki, method, "alice", password="wrong", expected="reject")
    assert (o.result, o.expectation_met, o.mppe) == ("reject", True, "absent"), o.to_json()
    assert codes(o) == ["eap_credentials_rejected"] and not o.primary_auth_done


@pytest.mark.freeradius
@pytest.mark.parametrize("method", ALL)
def test_freeradius_policy_reject_after_the_method(server: FreeRadiusServer, pki: Pki, method: str) -> None:
    """The method succeeded, then the policy refused (as the MFA extension does): MS-CHAPv2 knows it was proven."""
    o = fr(server, pki, method, "mallory", expected="reject")
    assert o.result == "reject" and o.reply_message == "Access denied by policy"
    expected = "eap_credentials_rejected" if method == "ttls-pap" else "nps_reject_after_primary_auth"
    assert codes(o) == [expected]  # TTLS-PAP gets no proof inside the tunnel: the password may have been wrong


@pytest.mark.freeradius
def test_freeradius_discard_after_the_method(server: FreeRadiusServer, pki: Pki) -> None:
    o = fr(server, pki, "ttls-mschapv2", "carol")
    assert o.result == "discard" and codes(o) == ["nps_discard_after_primary_auth"]


@pytest.mark.freeradius
def test_freeradius_ttls_rejects_an_untrusted_server_before_sending_the_password(server: FreeRadiusServer,
                                                                                tmp_path: Path, pki: Pki) -> None:
    other = init_pki(tmp_path / "other")
    o = run(authenticate(config((server.host, server.port), other, "ttls-pap", "alice", password=PASSWORD,
                                secret=SECRET)))
    assert (o.result, o.error_kind) == ("error", "tls") and codes(o) == ["server_certificate_untrusted"]


@pytest.mark.freeradius
@pytest.mark.parametrize("method", ALL)
def test_cli_auth_json(server: FreeRadiusServer, pki: Pki, tmp_path: Path, method: str) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    tls = ["--ca", str(pki.ca), "--server-name", "nps.lab.test"] if method in TTLS else []
    r = cli("auth", f"127.0.0.1:{server.port}", "--secret-file", str(secret_file), "--method", method,
            "--identity", "alice", "--password", PASSWORD, "--json", *tls)
    assert r.returncode == 0 and r.stderr == "", r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert (doc["method"], doc["result"], doc["mppe"]) == (method, "accept", "match")


def test_cli_refuses_tls_options_for_bare_eap_mschapv2(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    r = cli("auth", "127.0.0.1:9", "--secret-file", str(secret_file), "--method", "eap-mschapv2", "--identity", "a",
            "--password", "pw", "--ca", str(secret_file))
    assert r.returncode == 3 and len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.mark.freeradius
def test_probe_file_and_metrics_carry_the_new_method_names(server: FreeRadiusServer, pki: Pki, probe_writer: Any,
                                                           tmp_path: Path) -> None:
    names = ("mschapv2", "chap", *ALL)
    modules = {}
    for name in names:
        module: dict[str, Any] = {"method": name, "identity": "alice", "password_file": "{secret:pw}"}
        if name in TTLS:
            module |= {"ca": str(pki.ca), "server_name": "nps.lab.test"}
        modules[name] = module
    doc = {"modules": modules,
           "targets": {"fr": {"address": f"127.0.0.1:{server.port}", "secret_file": "{secret:radius}"}},
           "checks": [{"name": name, "target": "fr", "module": name,
                       "expect": {"result": "accept", "message_authenticator": "optional"}} for name in names]}
    path = probe_writer(doc, secrets={"pw": PASSWORD, "radius": SECRET})
    textfile = tmp_path / "probe.prom"
    r = cli("run", str(path), "--json", "-", "--textfile", str(textfile), timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    results = json.loads(r.stdout)
    text = textfile.read_text()
    for name in names:
        assert f'method="{name}"' in text, text
    assert PASSWORD not in r.stdout + text and SECRET not in r.stdout + text
    assert results  # the JSON lists the checks


# --------------------------------------------------------------------------- the NPS emulator


def em(pki: Pki, method: str, identity: str, password: str = DEFAULT_PASSWORD, methods: tuple[str, ...] | None = None,
       **kw: Any) -> tuple[Outcome, list[Any]]:
    async def go() -> tuple[Outcome, list[Any]]:
        c = default_config()
        c.eap = EapSettings.from_pki(pki.directory, **({"methods": methods} if methods else {}))
        async with emulator(c) as e:
            o = await authenticate(config(e.address, pki, method, identity, password=password, secret=DEFAULT_SECRET,
                                          **kw))
            return o, list(e.events)

    return run(go())


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    from probe.emulator.config import default_users

    return init_pki(tmp_path_factory.mktemp("lab"), extra_users=list(default_users()))


def test_emulator_bare_eap_mschapv2_push_approved(lab: Pki) -> None:
    o, events = em(lab, "eap-mschapv2", "alice")
    assert (o.result, o.error_kind, o.mppe) == ("accept", None, "match"), o.to_json()
    assert o.round_trips == 4  # Identity, Nak of PEAP, Challenge answered, Success acknowledged
    assert [e.event_id for e in events] == [6272]


def test_emulator_bare_eap_mschapv2_wrong_password(lab: Pki) -> None:
    o, events = em(lab, "eap-mschapv2", "alice", password="wrong")
    assert o.result == "reject" and codes(o) == ["eap_credentials_rejected"]
    assert o.eap_detail == "MS-CHAPv2 failure E=691 (authentication failure): Authentication failed"
    assert (events[-1].event_id, events[-1].reason) == (6273, 16)


@pytest.mark.parametrize("user, result, code, reason", [
    ("bob", "reject", "nps_reject_after_primary_auth", 21),  # push denied
    ("dave", "reject", "nps_reject_after_primary_auth", 21),  # TOTP user: no OTP over EAP
    ("carol", "discard", "nps_discard_after_primary_auth", None),  # ESTS_TOKEN_ERROR
])
def test_emulator_bare_eap_mschapv2_mfa_behaviours(lab: Pki, user: str, result: str, code: str,
                                                   reason: int | None) -> None:
    o, events = em(lab, "eap-mschapv2", user, expected=result)
    assert (o.result, codes(o)[0]) == (result, code), o.to_json()
    if reason is not None:
        assert (events[-1].event_id, events[-1].reason) == (6273, reason)


def test_emulator_policy_without_secured_password_refuses_it(lab: Pki) -> None:
    o, events = em(lab, "eap-mschapv2", "alice", methods=("peap", "eap-tls"), expected="reject")
    assert o.result == "reject" and o.expectation_met and o.round_trips == 2
    assert (events[-1].event_id, events[-1].reason) == (6273, 22) and "[26]" in events[-1].text


@pytest.mark.parametrize("method", TTLS)
def test_emulator_refuses_ttls_as_nps_does(lab: Pki, method: str) -> None:
    """NPS offers no EAP-TTLS: it proposes PEAP, the peer Naks asking for 21 (TTLS), NPS rejects with reason 22."""
    o, events = em(lab, method, "alice", expected="reject")
    assert (o.result, o.error_kind, o.expectation_met) == ("reject", None, True), o.to_json()
    assert o.round_trips == 2 and not o.primary_auth_done and o.mppe == "absent"
    assert o.tls is not None and o.tls["server_cert"] is None  # no handshake ever began: no password left us
    assert [(e.event_id, e.reason) for e in events] == [(6273, 22)]
    assert "Nak'ed peap and asks for types [21]" in events[-1].text
    assert o.diagnosis and "offer" in o.diagnosis[0]["text"]  # the method is not offered (whichever entry says it)


def test_eapol_test_runs_bare_eap_mschapv2_against_the_emulator(lab: Pki, tmp_path: Path) -> None:
    """An independent peer (hostapd's eapol_test) against the emulator's Secured-password server: its own
    MSK matches the Accept's MS-MPPE keys ("MPPE keys OK: 1"), so the emulator's key layout is the real one."""
    from tests.servers.eapol_test import EAPOL_TEST, run_eapol_test, write_config

    if EAPOL_TEST is None:
        pytest.skip("needs eapol_test (Debian package eapoltest)")
    conf = write_config(tmp_path / "eapol.conf", eap="MSCHAPV2", identity="alice", password=DEFAULT_PASSWORD)

    async def go() -> Any:
        c = default_config()
        c.eap = EapSettings.from_pki(lab.directory)
        async with emulator(c) as e:
            return await run_eapol_test(conf, e.address[1], DEFAULT_SECRET, redact=[DEFAULT_PASSWORD]), list(e.events)

    result, events = run(go())
    assert result.success and result.mppe_ok, result.tail()
    assert [ev.event_id for ev in events] == [6272]
