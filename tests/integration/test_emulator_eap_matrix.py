"""Our probe against the emulator's EAP: every method across the behaviour matrix, field by field."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from probe.model import ProbeConfig, Secret, TlsOptions
from probe.drivers.aio import authenticate
from probe.emulator.config import DEFAULT_PASSWORD, DEFAULT_SECRET, EapSettings, default_config
from probe.outcome import Outcome
from probe.pki import Pki
from probe.radius.transport import RetryPolicy
from tests.helpers import emulator, run

METHODS = ("eap-tls", "peap-mschapv2", "peap-tls")
USERS = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "slow"]
FAST = RetryPolicy(timeout_s=1.0, retries=1, listen_s=2.5)


@pytest.fixture(scope="module")
def lab(lab_pki: Pki) -> Pki:
    assert set(USERS) <= set(lab_pki.users)
    return lab_pki  # the session's PKI (tests/conftest.py): a certificate for every emulator user


def probe_cfg(lab: Pki, port: int, method: str, user: str, *, cert_user: str | None = None,
              password: str = DEFAULT_PASSWORD, ca: Path | None = None, **kw) -> ProbeConfig:  # type: ignore[no-untyped-def]
    tls = TlsOptions(ca=str(ca or lab.ca), server_name="nps.lab.test")
    if method != "peap-mschapv2":
        u = lab.users[cert_user or user]
        tls.cert, tls.key = str(u.cert), str(u.key)
    kw.setdefault("policy", FAST)
    return ProbeConfig(address=("127.0.0.1", port), secret=Secret(DEFAULT_SECRET.encode()), method=method,
                       identity=user, password=Secret(password.encode()), tls=tls, **kw)


def run_matrix(lab: Pki, cases: list[dict], **settings) -> list[tuple[Outcome, list]]:  # type: ignore[no-untyped-def]
    config = default_config()
    config.users["slow"].delay_s = 2.0
    settings.setdefault("tls_max_eap_tls", "1.3")  # as `radius-probe emulator` runs by default
    config.eap = EapSettings.from_pki(lab.directory, **settings)

    async def go():  # type: ignore[no-untyped-def]
        async with emulator(config) as em:
            outcomes = await asyncio.gather(*(authenticate(probe_cfg(lab, em.address[1], **c)) for c in cases))
            return [(o, [e for e in em.events if e.user == o.identity]) for o in outcomes]

    return run(go())


def codes(o: Outcome) -> list[str]:
    return [d["code"] for d in o.diagnosis]


EXPECTED = {
    # user: (result, diagnosis codes, NPS event, reason)
    "alice": ("accept", [], 6272, None),
    "grace": ("accept", [], 6272, None),
    "bob": ("reject", ["nps_reject_after_primary_auth"], 6273, 21),
    "erin": ("reject", ["nps_reject_after_primary_auth"], 6273, 21),
    "frank": ("reject", ["nps_reject_after_primary_auth"], 6273, 21),
    "dave": ("reject", ["nps_reject_after_primary_auth"], 6273, 21),  # OTP cannot ride on EAP
    "carol": ("discard", ["nps_discard_after_primary_auth"], 6274, 9),  # discarded by the extension DLL
}


@pytest.mark.parametrize("method", METHODS)
def test_behaviour_matrix(lab: Pki, method: str) -> None:
    results = run_matrix(lab, [{"method": method, "user": u} for u in EXPECTED])
    for o, events in results:
        result, want_codes, event_id, reason = EXPECTED[o.identity]
        assert (o.identity, o.result, codes(o)) == (o.identity, result, want_codes), o.to_json()
        assert o.error_kind is None and o.message_authenticator == "valid"
        assert (events[-1].event_id, events[-1].reason) == (event_id, reason)
        assert o.tls is not None and o.tls["validation"] == "ok"
        assert o.tls["version"] == ("TLSv1.3" if method == "eap-tls" else "TLSv1.2")
        assert o.cryptobinding == ("absent" if method == "eap-tls" else "valid")
        assert o.mppe == ("match" if result == "accept" else "absent")
        if result == "discard":
            assert o.final_response_s is None and o.round_trips > 3 and o.retransmissions == 1
        else:
            assert o.expectation_met == (result == "accept")


@pytest.mark.parametrize("method", METHODS)
def test_hold_sits_on_the_final_round(lab: Pki, method: str) -> None:
    [(o, _)] = run_matrix(lab, [{"method": method, "user": "slow", "window_s": 1.0,
                                 "policy": RetryPolicy(timeout_s=5, retries=0)}])
    assert o.result == "accept" and o.mppe == "match"
    assert o.final_response_s is not None and o.final_response_s >= 2.0
    assert not o.within_window and "answer_outside_window" in codes(o)
    final_round = o.round_trips
    earlier = [a for a in o.attempts if a.round < final_round]
    final = [a for a in o.attempts if a.round == final_round]
    assert earlier and all(a.answered_s is not None for a in earlier)
    assert final[-1].answered_s - final[0].sent_s >= 2.0  # type: ignore[operator]
    # The hold sits on the final round: each earlier round answered with a challenge at its one send,
    # the final round's one send answered with the accept after the hold.
    assert [(a.round, a.retransmission, a.code) for a in earlier] == [
        (r, 0, "Access-Challenge") for r in range(1, final_round)]
    assert [(a.retransmission, a.code) for a in final] == [(0, "Access-Accept")]


@pytest.mark.parametrize("method", ["eap-tls", "peap-tls"])
@pytest.mark.parametrize("cert_user, reason", [("expired", 268), ("noeku", 283), ("untrusted", 265)])
def test_bad_client_certificates_are_rejected(lab: Pki, method: str, cert_user: str, reason: int) -> None:
    [(o, _)] = run_matrix(lab, [{"method": method, "user": "alice", "cert_user": cert_user, "expected": "reject"}])
    assert o.result == "reject" and o.expectation_met and codes(o) == ["client_certificate_rejected"]
    assert o.mppe == "absent" and not o.primary_auth_done


def test_wrong_inner_password_is_credentials_rejected(lab: Pki) -> None:
    [(o, events)] = run_matrix(lab, [{"method": "peap-mschapv2", "user": "alice", "password": "nope"}])
    assert o.result == "reject" and codes(o) == ["eap_credentials_rejected"]
    assert "E=691" in (o.eap_detail or "")
    assert (events[-1].event_id, events[-1].reason) == (6273, 16)


@pytest.mark.parametrize("method", METHODS)
def test_untrusted_server_is_a_tls_error(lab: Pki, method: str) -> None:
    [(o, _)] = run_matrix(lab, [{"method": method, "user": "alice", "ca": lab.untrusted_ca}])
    assert (o.result, o.error_kind) == ("error", "tls")
    assert codes(o) == ["server_certificate_untrusted"]
    assert o.tls is not None and o.tls["server_cert"]["sha256"] and "radius-probe Lab Root CA" in o.tls["server_cert"]["issuer"]


def test_wrong_server_name_is_a_tls_error(lab: Pki) -> None:
    config = default_config()
    config.eap = EapSettings.from_pki(lab.directory)

    async def go():  # type: ignore[no-untyped-def]
        async with emulator(config) as em:
            cfg = probe_cfg(lab, em.address[1], "eap-tls", "alice")
            cfg.tls.server_name = "vpn.example.com"
            return await authenticate(cfg)

    o = run(go())
    assert (o.result, o.error_kind) == ("error", "tls") and codes(o) == ["server_name_mismatch"]


@pytest.mark.parametrize("mode, expected", [("off", "absent"), ("optional", "valid"), ("required", "valid")])
def test_cryptobinding_policy(lab: Pki, mode: str, expected: str) -> None:
    results = run_matrix(lab, [{"method": m, "user": "alice"} for m in ("peap-mschapv2", "peap-tls")],
                         cryptobinding=mode)
    for o, _ in results:
        assert o.result == "accept" and o.cryptobinding == expected and o.mppe == "match", o.to_json()


@pytest.mark.parametrize("mtu", [300, 1344])
def test_framed_mtu_is_honoured(lab: Pki, mtu: int) -> None:
    results = run_matrix(lab, [{"method": m, "user": "alice", "framed_mtu": mtu} for m in METHODS])
    for o, _ in results:
        assert o.result == "accept" and o.mppe == "match", o.to_json()
    small = {o.method: o.round_trips for o, _ in results}
    assert all(n >= 3 for n in small.values())


def test_outer_identity_is_anonymous_for_peap(lab: Pki) -> None:
    seen: list[bytes] = []

    class Recording(__import__("probe.emulator.server", fromlist=["NpsEmulator"]).NpsEmulator):  # type: ignore[misc]
        def datagram_received(self, data, addr):  # type: ignore[no-untyped-def]
            from probe.radius import packet as pk

            seen.append(pk.parse_packet(data).get(pk.USER_NAME))
            super().datagram_received(data, addr)

    config = default_config()
    config.eap = EapSettings.from_pki(lab.directory)

    async def go():  # type: ignore[no-untyped-def]
        em = Recording(config)
        _, port = await em.start("127.0.0.1", 0)
        try:
            return await authenticate(probe_cfg(lab, port, "peap-mschapv2", "alice"))
        finally:
            await em.stop()

    o = run(go())
    assert o.result == "accept"
    assert set(seen) == {b"anonymous"}  # the inner identity never leaves the tunnel


def test_probes_without_a_ca_file_can_run_again_in_one_process(lab: Pki) -> None:
    """Shared TLS contexts must not be changed after use: the second --insecure probe without --ca works too."""
    config = default_config()
    config.eap = EapSettings.from_pki(lab.directory)

    async def go():  # type: ignore[no-untyped-def]
        async with emulator(config) as em:
            outcomes = []
            for method in ("peap-mschapv2", "peap-mschapv2", "eap-tls", "eap-tls"):
                cfg = probe_cfg(lab, em.address[1], method, "alice")
                cfg.tls.ca, cfg.tls.insecure = None, True
                outcomes.append(await authenticate(cfg))
            return outcomes

    for o in run(go()):
        assert o.result == "accept" and o.mppe == "match", o.to_json()
        assert o.tls is not None and o.tls["validation"].startswith("skipped")
