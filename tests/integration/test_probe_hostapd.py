"""The probe against hostapd's integrated RADIUS/EAP server (Debian package hostapd, driver=none).

hostapd is the second EAP server we did not write (after FreeRADIUS), and the only one here that
sends the PEAPv0 Cryptobinding TLV: its eap_server_peap.c starts every PEAP session with
OPTIONAL_BINDING, puts a Cryptobinding TLV (Request, version 0) next to the Result TLV, checks the
Compound MAC of the peer's response ("Valid cryptobinding TLV received"), and then derives the
MS-MPPE keys from the compound session key (CSK), not from the outer TLS tunnel. So an accept with
``cryptobinding == "valid"`` and ``mppe == "match"`` proves the probe's IPMK/CMK/CSK chain against
an independent implementation, for MSCHAPv2 and for inner EAP-TLS (PEAP-TLS) as the ISK.

hostapd binds 0.0.0.0 (no bind-address option); its clients file admits 127.0.0.1/32 only and the
probe sends only to 127.0.0.1 (see tests/servers/hostapd.py).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from probe.model import ProbeConfig, Secret, TlsOptions
from probe.drivers.aio import authenticate
from probe.emulator.config import DEFAULT_PASSWORD, DEFAULT_SECRET
from probe.outcome import Outcome
from probe.pki import Pki
from probe.radius.transport import RetryPolicy
from tests.servers.hostapd import HOSTAPD, HostapdServer, HostapdUser

pytestmark = pytest.mark.skipif(HOSTAPD is None, reason="needs hostapd (Debian package hostapd; .ci/run installs it)")

SECRET = "hostapd-lab-secret-never-shown"
PASSWORD = "Inner-Passw0rd-never-shown"
POLICY = RetryPolicy(timeout_s=10.0, retries=1, listen_s=20.0)  # hostapd answers at once; generous under load

USERS = [
    HostapdUser("alice", "TLS"),  # EAP-TLS: the outer identity is the certificate user's
    HostapdUser("anonymous", "PEAP"),  # PEAP: the probe's default outer identity
    HostapdUser("alice", "MSCHAPV2", PASSWORD, phase2=True),  # PEAP-MSCHAPv2's inner user
    HostapdUser("bob", "TLS", phase2=True),  # PEAP-TLS's inner user (bob's certificate inside the tunnel)
    HostapdUser("grace", "TLS", phase2=True),  # PEAP-TLS's inner user that the emulator accepts too
]


@pytest.fixture(scope="module")
def hostapd(tmp_path_factory: pytest.TempPathFactory, lab_pki: Pki) -> Iterator[HostapdServer]:
    # TLS 1.3 is off by default in hostapd 2.10; enabled, EAP-TLS negotiates it (PEAP stays at 1.2,
    # the probe's cap for PEAP, as NPS).
    with HostapdServer(tmp_path_factory.mktemp("hostapd"), SECRET, USERS, ca=lab_pki.ca,
                       server_cert=lab_pki.server_chain, server_key=lab_pki.server_key,
                       tls_flags="[ENABLE-TLSv1.3]") as srv:
        yield srv


def config(address: tuple[str, int], secret: str, lab: Pki, method: str, identity: str, *, password: str = PASSWORD,
           cert_user: str | None = None, tls_max: str | None = None) -> ProbeConfig:
    tls = TlsOptions(ca=str(lab.ca), server_name="nps.lab.test", tls_max=tls_max)
    if cert_user is not None:
        tls.cert, tls.key = str(lab.users[cert_user].cert), str(lab.users[cert_user].key)
    return ProbeConfig(address=address, secret=Secret(secret.encode()), method=method, identity=identity,
                       password=Secret(password.encode()), tls=tls, policy=POLICY)


def probe(srv: HostapdServer, lab: Pki, method: str, identity: str, **kw: Any) -> Outcome:
    return asyncio.run(authenticate(config(("127.0.0.1", srv.port), SECRET, lab, method, identity, **kw)))


def codes(o: Outcome) -> list[str]:
    return [d["code"] for d in o.diagnosis]


def assert_clean_accept(o: Outcome, srv: HostapdServer, tls_version: str) -> None:
    assert (o.result, o.error_kind, o.expectation_met, o.exit_code) == ("accept", None, True, 0), srv.log_text()[-4000:]
    assert o.mppe == "match" and o.message_authenticator == "valid" and codes(o) == []
    assert o.retransmissions == 0 and not o.late
    assert o.tls is not None and o.tls["validation"] == "ok" and o.tls["version"] == tls_version
    text = o.to_json()
    assert SECRET not in text and PASSWORD not in text


def test_peap_mschapv2_accept_with_cryptobinding_and_mppe(hostapd: HostapdServer, lab_pki: Pki) -> None:
    before = hostapd.log_text().count("EAP-PEAP: Valid cryptobinding TLV received")
    o = probe(hostapd, lab_pki, "peap-mschapv2", "alice")
    assert_clean_accept(o, hostapd, "TLSv1.2")
    assert o.cryptobinding == "valid"  # hostapd's Compound MAC checked out under our CMK ...
    log = hostapd.log_text()
    assert log.count("EAP-PEAP: Valid cryptobinding TLV received") == before + 1  # ... and ours under its CMK
    assert "EAP-PEAP: TLV Result - Success - requested Success" in log


def test_peap_tls_accept_with_cryptobinding_and_mppe(hostapd: HostapdServer, lab_pki: Pki) -> None:
    """Inner EAP-TLS inside PEAP: the ISK is the inner TLS session's key, so the CSK differs from MSCHAPv2's."""
    before = hostapd.log_text().count("EAP-PEAP: Valid cryptobinding TLV received")
    o = probe(hostapd, lab_pki, "peap-tls", "bob", cert_user="bob")
    assert_clean_accept(o, hostapd, "TLSv1.2")
    assert o.cryptobinding == "valid"
    assert hostapd.log_text().count("EAP-PEAP: Valid cryptobinding TLV received") == before + 1


@pytest.mark.parametrize("tls_max, version", [(None, "TLSv1.3"), ("1.2", "TLSv1.2")])
def test_eap_tls_accept_with_mppe(hostapd: HostapdServer, lab_pki: Pki, tls_max: str | None, version: str) -> None:
    o = probe(hostapd, lab_pki, "eap-tls", "alice", cert_user="alice", tls_max=tls_max)
    assert_clean_accept(o, hostapd, version)
    assert o.cryptobinding == "absent"  # no tunnel, no binding


def test_peap_mschapv2_wrong_password_is_a_credentials_reject(hostapd: HostapdServer, lab_pki: Pki) -> None:
    o = probe(hostapd, lab_pki, "peap-mschapv2", "alice", password="Wrong-Passw0rd-never-shown")
    assert (o.result, o.error_kind, o.exit_code, o.expectation_met) == ("reject", None, 2, False), o.to_json()
    assert codes(o) == ["eap_credentials_rejected"]
    assert o.eap_detail == "MS-CHAPv2 failure E=691 (authentication failure): FAILED"
    assert o.mppe == "absent" and o.cryptobinding == "absent"  # hostapd binds only on success
    assert o.message_authenticator == "valid"
    assert "EAP-PEAP: TLV Result - Failure - requested Failure" in hostapd.log_text()
    assert "Wrong-Passw0rd-never-shown" not in o.to_json()


@pytest.mark.parametrize("cert_user, verify_error", [("expired", "error 10 (certificate has expired)"),
                                                     ("untrusted", "error 20 (unable to get local issuer certificate)")])
def test_eap_tls_bad_client_certificate_is_rejected(hostapd: HostapdServer, lab_pki: Pki, cert_user: str,
                                                    verify_error: str) -> None:
    """hostapd fails the certificate, writes a fatal alert it never delivers, and sends Access-Reject."""
    o = probe(hostapd, lab_pki, "eap-tls", "alice", cert_user=cert_user)
    assert (o.result, o.error_kind, o.eap_detail, o.exit_code) == ("reject", None, None, 2), o.to_json()
    assert codes(o) == ["client_certificate_rejected"] and o.mppe == "absent"
    assert o.tls is not None and o.tls["validation"] == "ok" and o.tls["client_cert"]["subject"] == f"CN={cert_user}"
    assert f"TLS: Certificate verification failed, {verify_error} depth 0 for '/CN={cert_user}'" in hostapd.log_text()


@pytest.mark.parametrize("method, user", [("peap-mschapv2", "alice"), ("peap-tls", "grace")])
def test_the_emulator_and_hostapd_give_the_probe_the_same_outcome(hostapd: HostapdServer, lab_pki: Pki,
                                                                  lab_emulator: Any, method: str, user: str) -> None:
    """Our own EAP server and hostapd's, the same method and the same certificates: the same verdict fields."""
    cert_user = user if method == "peap-tls" else None

    async def against_emulator() -> Outcome:
        async with lab_emulator() as em:
            return await authenticate(config(em.address, DEFAULT_SECRET, lab_pki, method, user,
                                             password=DEFAULT_PASSWORD, cert_user=cert_user))

    ours = asyncio.run(against_emulator())
    theirs = probe(hostapd, lab_pki, method, user, cert_user=cert_user)

    def fields(o: Outcome) -> tuple[object, ...]:
        assert o.tls is not None
        return (o.result, o.error_kind, o.exit_code, o.mppe, o.cryptobinding, o.message_authenticator, codes(o),
                o.tls["version"], o.tls["validation"])

    assert fields(ours) == fields(theirs) == ("accept", None, 0, "match", "valid", "valid", [], "TLSv1.2", "ok")


def test_auth_cli_against_hostapd(hostapd: HostapdServer, lab_pki: Pki, probe_writer: Any, cli_runner: Any) -> None:
    """`radius-probe auth` end to end: exit 0 and the JSON carries both checks."""
    secret = probe_writer.secret("hostapd", SECRET)
    r = cli_runner("auth", f"127.0.0.1:{hostapd.port}", "--secret-file", str(secret), "--method", "peap-mschapv2",
                   "--identity", "alice", "--password", PASSWORD, "--ca", str(lab_pki.ca),
                   "--server-name", "nps.lab.test", "--json")
    assert r.returncode == 0, r.stderr + r.stdout
    doc = json.loads(r.stdout)
    assert (doc["result"], doc["mppe"], doc["cryptobinding"]) == ("accept", "match", "valid")
    assert SECRET not in r.stdout + r.stderr


def test_hostapd_log_never_holds_the_secret(hostapd: HostapdServer) -> None:
    """The server helper's log text (used in failure messages) has the shared secret and passwords removed."""
    raw = hostapd.log_path.read_text(errors="replace")
    shown = hostapd.log_text()
    assert SECRET not in shown and PASSWORD not in shown
    assert len(shown) > 0 and ("<hidden>" in shown) == (SECRET in raw or PASSWORD in raw)
