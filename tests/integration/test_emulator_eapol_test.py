"""The emulator's EAP server (probe/emulator/eap_server.py) against eapol_test, a peer we did not write.

The RADIUS side is ``EapNps``: NpsEmulator with the EAP hook the lead wires
into ``NpsEmulator._handle`` (an Access-Request carrying EAP-Message goes to
an EapServerSession keyed on State). MFA behaviours are left out here: a
successful EAP conversation is answered at once.

Every success must come with "MPPE keys OK": eapol_test derived the same
MSK as the MS-MPPE keys we sent (the CSK halves when cryptobinding is used).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from probe import pki
from probe.emulator.config import DEFAULT_PASSWORD, DEFAULT_SECRET, EmulatedUser, default_config
from probe.emulator.eap_server import (
    EapServerPolicy,
    EapStep,
)
from probe.emulator.server import NpsEmulator
from tests.servers.eapol_test import EAPOL_TEST, EapolResult, run_eapol_test, write_config

pytestmark = [
    pytest.mark.eapol_test,
    pytest.mark.skipif(EAPOL_TEST is None, reason="eapol_test is not installed (apt-get install eapoltest)"),
]

FRAMED_MTU = 12


class EapNps(NpsEmulator):
    """The NpsEmulator with a given EAP policy, recording every EAP step it takes."""

    def __init__(self, policy: EapServerPolicy) -> None:
        super().__init__(default_config(), eap_policy=policy)
        self.steps: list[EapStep] = []
        self.framed_mtus: list[int] = []

    def _on_eap_step(self, step: EapStep, framed_mtu: int | None) -> None:
        self.steps.append(step)
        if framed_mtu is not None:
            self.framed_mtus.append(framed_mtu)


@pytest.fixture(scope="module")
def lab(lab_pki: pki.Pki) -> pki.Pki:
    return lab_pki  # the session's PKI (tests/conftest.py)


def policy_for(lab: pki.Pki, **changes: Any) -> EapServerPolicy:
    base = EapServerPolicy(server_cert=lab.server_chain, server_key=lab.server_key, ca_file=lab.ca)
    return replace(base, **changes)


def converse(lab: pki.Pki, tmp_path: Path, network: dict[str, str | int], policy: EapServerPolicy | None = None,
             extra_args: tuple[str, ...] = (), reauth: int = 0,
             accounts: tuple[str, ...] = ()) -> tuple[EapolResult, EapNps]:
    """One eapol_test run against a fresh EapNps on a free loopback port; ``accounts`` adds users."""
    conf = write_config(tmp_path / "eapol.conf", **network)

    async def go() -> tuple[EapolResult, EapNps]:
        server = EapNps(policy or policy_for(lab))
        server.config.users.update({name: EmulatedUser(name) for name in accounts})
        _, port = await server.start("127.0.0.1", 0)
        try:
            result = await run_eapol_test(conf, port, DEFAULT_SECRET, extra_args=extra_args, reauth=reauth,
                                          redact=(DEFAULT_PASSWORD,))
        finally:
            await server.stop()
        return result, server

    return asyncio.run(go())


def eap_tls(lab: pki.Pki, user: str, **extra: str | int) -> dict[str, str | int]:
    cert = lab.users[user]
    return {"eap": "TLS", "identity": cert.upn, "ca_cert": str(lab.ca), "client_cert": str(cert.cert),
            "private_key": str(cert.key), "domain_suffix_match": "nps.lab.test", **extra}


def peap_mschapv2(lab: pki.Pki, user: str = "alice", password: str = DEFAULT_PASSWORD,
                  crypto_binding: int = 2, **extra: str | int) -> dict[str, str | int]:
    return {"eap": "PEAP", "identity": user, "anonymous_identity": "anonymous", "password": password,
            "ca_cert": str(lab.ca), "domain_suffix_match": "nps.lab.test",
            "phase1": f"peapver=0 crypto_binding={crypto_binding}", "phase2": "auth=MSCHAPV2", **extra}


def peap_tls(lab: pki.Pki, user: str, crypto_binding: int = 2, **extra: str | int) -> dict[str, str | int]:
    cert = lab.users[user]
    return {"eap": "PEAP", "identity": cert.upn, "anonymous_identity": "anonymous",
            "ca_cert": str(lab.ca), "domain_suffix_match": "nps.lab.test",
            "phase1": f"peapver=0 crypto_binding={crypto_binding}", "phase2": "auth=TLS",
            "ca_cert2": str(lab.ca), "client_cert2": str(cert.cert), "private_key2": str(cert.key), **extra}


def final(server: EapNps) -> EapStep:
    assert server.steps, "the server saw no EAP"
    return server.steps[-1]


def assert_success(result: EapolResult, server: EapNps, account: str) -> EapStep:
    step = final(server)
    assert result.success and result.mppe_ok, f"{step}\n{result.tail()}"
    assert (step.kind, step.identity, step.reason) == ("success", account, None)
    assert [(e.event_id, e.user) for e in server.events] == [(6272, account)]
    assert step.failure_eap() == bytes((4, step.eap[1], 0, 4))  # what an MFA denial would send instead
    return step


def assert_failure(result: EapolResult, server: EapNps, reason: int) -> EapStep:
    step = final(server)
    assert not result.success and result.output.splitlines()[-1] == "FAILURE", result.tail()
    assert (step.kind, step.reason) == ("failure", reason), step
    assert step.eap[0] == 4  # EAP-Failure
    assert [(e.event_id, e.reason) for e in server.events] == [(6273, reason)]
    return step


# ---------------------------------------------------------------------------
# EAP-TLS


def test_eap_tls_12_after_nak(lab: pki.Pki, tmp_path: Path) -> None:
    result, server = converse(lab, tmp_path, eap_tls(lab, "alice"))
    step = assert_success(result, server, "alice")
    assert "TLSv1.2" in step.text
    assert server.steps[0].eap[4] == 25  # PEAP proposed first, as NPS does; the peer Nak'ed it
    assert "EAP-TLS succeeded" in step.text


def test_eap_tls_13_when_allowed(lab: pki.Pki, tmp_path: Path) -> None:
    policy = policy_for(lab, tls_max_eap_tls="1.3")
    result, server = converse(lab, tmp_path, eap_tls(lab, "alice", phase1="tls_disable_tlsv1_3=0"), policy)
    step = assert_success(result, server, "alice")
    assert "TLSv1.3" in step.text


def test_eap_tls_ecdsa_client(lab: pki.Pki, tmp_path: Path) -> None:
    result, server = converse(lab, tmp_path, eap_tls(lab, "ecdsa-user"), accounts=("ecdsa-user",))
    assert_success(result, server, "ecdsa-user")


def test_eap_tls_certificate_of_an_unknown_account_is_reason_16(lab: pki.Pki, tmp_path: Path) -> None:
    # ecdsa-user's certificate is valid but the default users do not include its UPN's account.
    result, server = converse(lab, tmp_path, eap_tls(lab, "ecdsa-user"))
    step = assert_failure(result, server, 16)
    assert "ecdsa-user@lab.test" in step.text


@pytest.mark.parametrize(("user", "reason", "words"), [
    ("untrusted", 265, "trusted CA"),
    ("expired", 268, "validity period"),
    ("noeku", 283, "Client Authentication EKU"),
])
def test_eap_tls_bad_client_certificates(lab: pki.Pki, tmp_path: Path, user: str, reason: int, words: str) -> None:
    result, server = converse(lab, tmp_path, eap_tls(lab, user))
    step = assert_failure(result, server, reason)
    assert words in step.text


def test_eap_tls_framed_mtu_300(lab: pki.Pki, tmp_path: Path) -> None:
    result, server = converse(lab, tmp_path, eap_tls(lab, "alice", fragment_size=280),
                              extra_args=("-N", "12:d:300"))
    assert_success(result, server, "alice")
    assert set(server.framed_mtus) == {300}
    challenges = [s.eap for s in server.steps if s.kind == "challenge"]
    assert max(len(eap) for eap in challenges) <= 300 - 4  # an EAP packet fits the link's MTU
    assert sum(1 for eap in challenges if eap[5] & 0x40) >= 3  # the certificate flight went out in pieces


def test_reauthentication_is_a_full_handshake(lab: pki.Pki, tmp_path: Path) -> None:
    # hostapd offers its cached TLS session again; resumption is off, so the certificate is checked again.
    result, server = converse(lab, tmp_path, eap_tls(lab, "alice"), reauth=1)
    assert result.success and "MPPE keys OK: 2  mismatch: 0" in result.output, result.tail()
    assert result.output.count("Handshake finished - resumed=0") == 2 and "resumed=1" not in result.output
    assert [(e.event_id, e.user) for e in server.events] == [(6272, "alice")] * 2


def test_peer_rejecting_the_server_certificate_is_reason_22(lab: pki.Pki, tmp_path: Path) -> None:
    result, server = converse(lab, tmp_path, peap_mschapv2(lab, ca_cert=str(lab.untrusted_ca)))
    step = assert_failure(result, server, 22)
    assert "alert" in step.text


def test_eap_tls_refused_when_the_policy_offers_only_peap(lab: pki.Pki, tmp_path: Path) -> None:
    result, server = converse(lab, tmp_path, eap_tls(lab, "alice"), policy_for(lab, methods=("peap",)))
    step = assert_failure(result, server, 22)
    assert "Nak" in step.text


# ---------------------------------------------------------------------------
# PEAP-MSCHAPv2


def test_peap_mschapv2_with_cryptobinding(lab: pki.Pki, tmp_path: Path) -> None:
    result, server = converse(lab, tmp_path, peap_mschapv2(lab))
    step = assert_success(result, server, "alice")
    assert "cryptobinding verified" in step.text


def test_peap_mschapv2_required_cryptobinding(lab: pki.Pki, tmp_path: Path) -> None:
    result, server = converse(lab, tmp_path, peap_mschapv2(lab), policy_for(lab, cryptobinding="required"))
    assert_success(result, server, "alice")


def test_peap_mschapv2_peer_without_cryptobinding_optional(lab: pki.Pki, tmp_path: Path) -> None:
    # crypto_binding=0: the peer ignores the TLV; keys fall back to the TLS key block, and still match.
    result, server = converse(lab, tmp_path, peap_mschapv2(lab, crypto_binding=0))
    step = assert_success(result, server, "alice")
    assert "no cryptobinding" in step.text


def test_peap_mschapv2_peer_without_cryptobinding_required(lab: pki.Pki, tmp_path: Path) -> None:
    result, server = converse(lab, tmp_path, peap_mschapv2(lab, crypto_binding=0),
                              policy_for(lab, cryptobinding="required"))
    step = assert_failure(result, server, 302)  # NPS: required cryptobinding TLV not received
    assert "cryptobinding is required" in step.text


def test_peap_mschapv2_server_without_cryptobinding_fails_a_peer_that_requires_it(
        lab: pki.Pki, tmp_path: Path) -> None:
    result, server = converse(lab, tmp_path, peap_mschapv2(lab), policy_for(lab, cryptobinding="off"))
    assert not result.success
    assert "No cryptobinding TLV" in result.output  # the peer's own words: it refused, not us


# Failures inside the tunnel end with a Result TLV Failure, which carries no
# Cryptobinding TLV; hostapd with crypto_binding=2 then gives up without
# answering, so these peers use crypto_binding=1 and answer the Result TLV,
# as Windows does, and the server's EAP-Failure and reason code are seen.


def test_peap_mschapv2_wrong_password(lab: pki.Pki, tmp_path: Path) -> None:
    result, server = converse(lab, tmp_path, peap_mschapv2(lab, password="wrong", crypto_binding=1))
    step = assert_failure(result, server, 16)
    assert step.identity == "alice"
    assert "error 691" in result.output  # the peer read our MSCHAPv2 Failure request
    assert "TLV Result - Failure" in result.output


def test_peap_mschapv2_wrong_password_peer_requiring_cryptobinding_gives_up(lab: pki.Pki, tmp_path: Path) -> None:
    result, server = converse(lab, tmp_path, peap_mschapv2(lab, password="wrong", crypto_binding=2))
    assert not result.success and "No cryptobinding TLV" in result.output
    assert final(server).kind == "challenge" and not server.events  # the peer left; no final answer was owed


def test_peap_mschapv2_unknown_user(lab: pki.Pki, tmp_path: Path) -> None:
    result, server = converse(lab, tmp_path, peap_mschapv2(lab, user="mallory", crypto_binding=1))
    step = assert_failure(result, server, 16)
    assert step.identity == "mallory"


def test_peap_mschapv2_framed_mtu_300(lab: pki.Pki, tmp_path: Path) -> None:
    result, server = converse(lab, tmp_path, peap_mschapv2(lab, fragment_size=280), extra_args=("-N", "12:d:300"))
    assert_success(result, server, "alice")
    assert max(len(s.eap) for s in server.steps) <= 300 - 4


# ---------------------------------------------------------------------------
# PEAP-TLS (PEAP with inner EAP-TLS, Always On VPN)


def test_peap_tls(lab: pki.Pki, tmp_path: Path) -> None:
    result, server = converse(lab, tmp_path, peap_tls(lab, "alice"))
    step = assert_success(result, server, "alice")
    assert step.text.startswith("PEAP-TLS") and "cryptobinding verified" in step.text
    # NPS proposes MSCHAPv2 inside first; the peer Naks it for EAP-TLS.
    inner = result.output[result.output.index("EAP-PEAP: Phase 2 Request: type=26"):]
    assert "Phase 2 Request: type=13" in inner


def test_peap_tls_framed_mtu_300(lab: pki.Pki, tmp_path: Path) -> None:
    result, server = converse(lab, tmp_path, peap_tls(lab, "alice", fragment_size=280),
                              extra_args=("-N", "12:d:300"))
    assert_success(result, server, "alice")


@pytest.mark.parametrize(("user", "reason"), [("untrusted", 265), ("expired", 268), ("noeku", 283),
                                              ("ecdsa-user", 16)])
def test_peap_tls_bad_client_certificates(lab: pki.Pki, tmp_path: Path, user: str, reason: int) -> None:
    result, server = converse(lab, tmp_path, peap_tls(lab, user, crypto_binding=1))
    assert_failure(result, server, reason)


def test_peap_tls_refused_when_inner_tls_is_not_offered(lab: pki.Pki, tmp_path: Path) -> None:
    result, server = converse(lab, tmp_path, peap_tls(lab, "alice", crypto_binding=1),
                              policy_for(lab, peap_inner=("mschapv2",)))
    step = assert_failure(result, server, 22)
    assert "Nak" in step.text
