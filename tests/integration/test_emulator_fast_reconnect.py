"""Fast reconnect (TLS session resumption) in the emulator's EAP server, over real UDP on 127.0.0.1.

Two peers prove it: our probe (``authenticate(cfg, resume=True)``: a full
authentication, then a second one offering the first's TLS session) and
hostapd's eapol_test (``-r 1``: it re-authenticates offering its cached
session). A resumed conversation must be shorter, carry MPPE keys the peer
derives itself, and stand for the account that authenticated in full; a
session whose authentication failed must never be resumed.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from probe.method_eap import EapMethod
from probe.model import ProbeConfig, Secret, TlsOptions
from probe.drivers.aio import authenticate
from probe.methods import make_method
from probe.credentials import load_trust
from probe.drivers.aio import converse
from probe.eap import cryptobinding as cb
from probe.eap.packet import EapCode, EapPacket, EapType, identity_response
from probe.eap.peer import EapPeer, PeerConfig, Resumption
from probe.eap.tls import EapTlsSession, TlsEngine
from probe.emulator.config import DEFAULT_PASSWORD, DEFAULT_SECRET, default_config
from probe.emulator.eap_server import (
    EapServerPolicy,
    EapServerSession,
    EapStep,
    ServerTls,
)
from probe.emulator.server import NpsEmulator
from probe.outcome import Outcome
from probe.pki import Pki
from probe.radius.transport import RadiusClient, RetryPolicy
from tests.servers.eapol_test import (
    EAPOL_TEST,
    EapolResult,
    run_eapol_test,
    write_config,
)

FAST = RetryPolicy(timeout_s=1.0, retries=1, listen_s=2.5)
USERS = ["alice", "bob", "grace"]


class RecordingNps(NpsEmulator):
    """The NpsEmulator with a given EAP policy, recording every EAP step it takes."""

    def __init__(self, policy: EapServerPolicy) -> None:
        super().__init__(default_config(), eap_policy=policy)
        self.steps: list[EapStep] = []

    def _on_eap_step(self, step: EapStep, framed_mtu: int | None) -> None:
        self.steps.append(step)

    @property
    def finals(self) -> list[EapStep]:
        """The last step of every conversation, in order."""
        return [s for s in self.steps if s.kind != "challenge"]


@pytest.fixture(scope="module")
def lab(lab_pki: Pki) -> Pki:
    assert set(USERS) <= set(lab_pki.users)
    return lab_pki  # the session's PKI (tests/conftest.py): a certificate for every emulator user


def policy_for(lab: Pki, **changes: Any) -> EapServerPolicy:
    base = EapServerPolicy(server_cert=lab.server_chain, server_key=lab.server_key, ca_file=lab.ca,
                           tls_max_eap_tls="1.3", fast_reconnect=True)
    return replace(base, **changes)


def probe_cfg(lab: Pki, port: int, method: str, user: str = "alice", *, password: str = DEFAULT_PASSWORD,
              tls_max: str | None = None) -> ProbeConfig:
    tls = TlsOptions(ca=str(lab.ca), server_name="nps.lab.test", tls_max=tls_max)
    if method != "peap-mschapv2":
        tls.cert, tls.key = str(lab.users[user].cert), str(lab.users[user].key)
    return ProbeConfig(address=("127.0.0.1", port), secret=Secret(DEFAULT_SECRET.encode()), method=method,
                       identity=user, password=Secret(password.encode()), tls=tls, policy=FAST)


def resume(policy: EapServerPolicy, make_cfg: Any) -> tuple[Outcome, RecordingNps]:
    """``authenticate(cfg, resume=True)`` against a fresh emulator; ``make_cfg(port)`` builds the config."""

    async def go() -> tuple[Outcome, RecordingNps]:
        server = RecordingNps(policy)
        _, port = await server.start("127.0.0.1", 0)
        try:
            return await authenticate(make_cfg(port), resume=True), server
        finally:
            await server.stop()

    return asyncio.run(go())


def granted(server: RecordingNps) -> Any:
    """The emulator's fast-reconnect counters."""
    cache = server._server_tls.fast_reconnect if server._server_tls is not None else None
    assert cache is not None, "fast reconnect is off"
    return cache.stats


@pytest.mark.parametrize("field", ["fast_reconnect_lifetime_s", "fast_reconnect_sessions"])
@pytest.mark.parametrize("value", [0, -5, True, 1.5])
def test_policy_refuses_bad_fast_reconnect_bounds(lab: Pki, field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        policy_for(lab, **{field: value})


# ---------------------------------------------------------------------------
# Our probe


@pytest.mark.parametrize(("method", "tls_max", "version", "binding"), [
    ("eap-tls", "1.2", "TLSv1.2", "absent"),
    ("eap-tls", "1.3", "TLSv1.3", "absent"),
    ("peap-mschapv2", None, "TLSv1.2", "valid"),
    ("peap-tls", None, "TLSv1.2", "valid"),
])
def test_probe_fast_reconnect(lab: Pki, method: str, tls_max: str | None, version: str, binding: str) -> None:
    outcome, server = resume(policy_for(lab), lambda port: probe_cfg(lab, port, method, tls_max=tls_max))
    assert outcome.result == "accept" and outcome.mppe == "match", outcome.to_dict()
    assert outcome.tls is not None and outcome.tls["version"] == version
    assert outcome.tls["resumed"] is True
    resumption = outcome.tls["resumption"]
    assert resumption["offered"] is True and resumption["resumed"] is True
    assert outcome.round_trips < resumption["first_round_trips"]
    assert outcome.cryptobinding == binding
    assert not [w for w in outcome.warnings if "fast reconnect" in w]
    first, second = server.finals
    assert (first.kind, first.identity, first.resumed) == ("success", "alice", False)
    assert (second.kind, second.identity, second.resumed) == ("success", "alice", True)
    assert "fast reconnect succeeded" in second.text and "fast reconnect" not in first.text
    assert second.mppe != first.mppe  # fresh keys from the abbreviated handshake
    # The MFA extension acted on both final rounds: the account came with the session.
    assert [(e.event_id, e.user) for e in server.events] == [(6272, "alice")] * 2
    stats = granted(server)
    assert (stats.granted, stats.resumed, stats.refused, stats.revoked) == (2, 1, 0, 0)


def test_peap_fast_reconnect_without_cryptobinding_uses_the_tls_keys(lab: Pki) -> None:
    outcome, server = resume(policy_for(lab, cryptobinding="off"),
                             lambda port: probe_cfg(lab, port, "peap-mschapv2"))
    assert outcome.result == "accept" and outcome.mppe == "match", outcome.to_dict()
    assert outcome.tls is not None and outcome.tls["resumption"]["resumed"] is True
    assert outcome.cryptobinding == "absent"
    assert "(no cryptobinding)" in server.finals[1].text


@pytest.mark.parametrize("method", ["eap-tls", "peap-mschapv2"])
def test_fast_reconnect_off_is_a_full_handshake(lab: Pki, method: str) -> None:
    outcome, server = resume(policy_for(lab, fast_reconnect=False), lambda port: probe_cfg(lab, port, method))
    assert outcome.result == "accept" and outcome.mppe == "match", outcome.to_dict()
    assert outcome.tls is not None and outcome.tls["resumed"] is False
    resumption = outcome.tls["resumption"]
    assert resumption["offered"] is True and resumption["resumed"] is False
    assert [w for w in outcome.warnings if w.startswith("fast reconnect: the server did a full handshake")]
    assert [s.resumed for s in server.finals] == [False, False]
    assert server._server_tls is not None and server._server_tls.fast_reconnect is None


# ---------------------------------------------------------------------------
# Sessions of failed authentications


def offered_session(method: EapMethod) -> Resumption:
    """The outer TLS session a peer holds whatever the outcome.

    ``EapPeer.session_for_resumption`` hands out only sessions of successful
    conversations, as a well-behaved peer must; a server cannot rely on
    that, so the test reaches into the peer to offer a failed one.
    """
    peer = method.peer
    assert peer._method is not None
    session = peer._method.leg.tls.engine.session
    assert session is not None
    return Resumption((peer.config.outer, peer.config.inner), session, peer._outer_context)


Run = tuple[Any, "int | None"]
"""One conversation of a series: ``make_cfg(port)``, and which earlier conversation's session to offer."""


def series(policy: EapServerPolicy, runs: list[Run]) -> tuple[list[Outcome], RecordingNps]:
    """Conversations one after the other against one emulator, some offering an earlier one's TLS session."""

    async def go() -> tuple[list[Outcome], RecordingNps]:
        server = RecordingNps(policy)
        _, port = await server.start("127.0.0.1", 0)
        outcomes: list[Outcome] = []
        methods: list[EapMethod] = []
        try:
            async with RadiusClient(("127.0.0.1", port), DEFAULT_SECRET.encode(), clock=time.monotonic) as client:
                for make_cfg, offer in runs:
                    cfg = make_cfg(port)
                    method = make_method(cfg, None, offered_session(methods[offer]) if offer is not None else None)
                    assert isinstance(method, EapMethod)
                    outcomes.append(await converse(cfg, client, method))
                    methods.append(method)
        finally:
            await server.stop()
        return outcomes, server

    return asyncio.run(go())


def fail_then_offer(policy: EapServerPolicy, first_cfg: Any, second_cfg: Any) -> tuple[Outcome, Outcome, RecordingNps]:
    """A conversation that is rejected, then one offering its TLS session."""
    (first, second), server = series(policy, [(first_cfg, None), (second_cfg, 0)])
    return first, second, server


def test_session_of_a_wrong_password_is_not_resumable(lab: Pki) -> None:
    first, second, server = fail_then_offer(
        policy_for(lab),
        lambda port: probe_cfg(lab, port, "peap-mschapv2", password="Wrong-Passw0rd"),
        lambda port: probe_cfg(lab, port, "peap-mschapv2"),
    )
    assert first.result == "reject" and first.tls is not None and first.tls["version"] == "TLSv1.2"
    assert second.result == "accept" and second.mppe == "match", second.to_dict()
    assert second.tls is not None and second.tls["resumed"] is False  # a full handshake, a full phase 2
    assert [(s.kind, s.resumed) for s in server.finals] == [("failure", False), ("success", False)]
    stats = granted(server)
    assert (stats.granted, stats.resumed, stats.revoked) == (1, 0, 1)


@pytest.mark.parametrize("method", ["eap-tls", "peap-mschapv2"])
def test_session_of_an_mfa_denial_is_not_resumable(lab: Pki, method: str) -> None:
    first, second, server = fail_then_offer(policy_for(lab), lambda port: probe_cfg(lab, port, method, "bob"),
                                            lambda port: probe_cfg(lab, port, method, "bob"))
    assert first.result == "reject" and second.result == "reject"
    assert [(e.event_id, e.reason) for e in server.events] == [(6273, 21)] * 2  # MFA denied both times
    assert second.tls is not None and second.tls["resumed"] is False
    assert [s.resumed for s in server.finals] == [False, False]


def test_eap_tls_session_without_a_grant_fails_then_is_gone(lab: Pki) -> None:
    # A table of one grant: grace's success pushes alice's grant out while OpenSSL's cache still holds her session.
    alice = lambda port: probe_cfg(lab, port, "eap-tls", tls_max="1.2")  # noqa: E731
    grace = lambda port: probe_cfg(lab, port, "eap-tls", "grace", tls_max="1.2")  # noqa: E731
    runs: list[Run] = [(alice, None), (grace, None), (alice, 0), (alice, 0)]
    outcomes, server = series(policy_for(lab, fast_reconnect_sessions=1), runs)
    assert [o.result for o in outcomes] == ["accept", "accept", "reject", "accept"]
    assert [(e.event_id, e.reason) for e in server.events] == [(6272, None)] * 2 + [(6273, 22), (6272, None)]
    refused = server.finals[2]
    assert refused.kind == "failure" and "no fast-reconnect grant" in refused.text
    assert outcomes[2].tls is not None and outcomes[2].tls["resumed"] is True  # OpenSSL did resume it
    assert outcomes[3].tls is not None and outcomes[3].tls["resumed"] is False  # the failure evicted it
    stats = granted(server)
    assert (stats.granted, stats.resumed, stats.refused, stats.revoked) == (3, 0, 1, 1)


def test_resumed_peap_tunnel_without_a_grant_runs_phase_2(lab: Pki) -> None:
    # [MS-PEAP] 3.3.7.1 step 2: a resumed tunnel that cannot fast-reconnect authenticates in full inside.
    alice = lambda port: probe_cfg(lab, port, "peap-mschapv2")  # noqa: E731
    grace = lambda port: probe_cfg(lab, port, "peap-mschapv2", "grace")  # noqa: E731
    outcomes, server = series(policy_for(lab, fast_reconnect_sessions=1), [(alice, None), (grace, None), (alice, 0)])
    assert [o.result for o in outcomes] == ["accept", "accept", "accept"]
    third = outcomes[2]
    assert third.tls is not None and third.tls["resumed"] is True and third.mppe == "match"
    assert third.cryptobinding == "valid"  # keyed with the inner MSCHAPv2 keys, not the fast-reconnect ones
    assert third.round_trips > 2  # inner Identity, MSCHAPv2 and the Result exchange ran
    assert (server.finals[2].identity, server.finals[2].resumed) == ("alice", False)
    stats = granted(server)
    assert (stats.granted, stats.resumed, stats.refused) == (3, 0, 1)


# ---------------------------------------------------------------------------
# [MS-PEAP] 3.3.5.4.7: a peer that declines fast reconnect gets a full phase 2


class ScriptedPeapPeer:
    """A minimal PEAPv0 peer over a real TLS client that answers the tunnel by hand (it can decline)."""

    def __init__(self, resumption: Resumption) -> None:
        engine = TlsEngine(resumption.context, server=False, session=resumption.session)
        self.tls = EapTlsSession(engine, eap_type=EapType.PEAP)

    def handshake(self, server: EapServerSession) -> tuple[EapPacket, bytes]:
        """Identity, then TLS until the server speaks inside the tunnel: that request and its plaintext."""
        request = EapPacket.parse(server.handle(identity_response(0, "anonymous").to_bytes()).eap)
        for _ in range(20):
            step = self.tls.receive(request.data)
            if step.reply is None:
                return request, step.app_data
            response = EapPacket.response(request.identifier, EapType.PEAP, step.reply)
            request = EapPacket.parse(server.handle(response.to_bytes()).eap)
        raise AssertionError("the handshake did not finish")

    def inner(self, request: EapPacket) -> bytes:
        """The decrypted tunnel data of a PEAP request."""
        step = self.tls.receive(request.data)
        assert step.reply is None
        return step.app_data

    def answer(self, server: EapServerSession, request: EapPacket, plain: bytes) -> EapStep:
        """Send ``plain`` encrypted in our PEAP response."""
        response = EapPacket.response(request.identifier, EapType.PEAP, self.tls.send_app(plain))
        return server.handle(response.to_bytes())


def in_process(peer: EapPeer, server: EapServerSession) -> EapStep:
    """Our real peer against the server session, without RADIUS; the final step."""
    step = server.handle(peer.start())
    for _ in range(50):
        answer = peer.receive(step.eap).reply
        if answer is None:
            return step
        step = server.handle(answer)
    raise AssertionError("the conversation did not finish")


def test_peap_peer_declining_fast_reconnect_gets_a_full_phase_2(lab: Pki) -> None:
    policy = policy_for(lab)
    tls = ServerTls(policy)
    passwords = {"alice": DEFAULT_PASSWORD}.get
    first = EapPeer(PeerConfig(outer=EapType.PEAP, inner=EapType.MSCHAPV2, identity="alice",
                               password=DEFAULT_PASSWORD.encode(), trust=load_trust(lab.ca),
                               server_name="nps.lab.test", tls_max="1.2"))
    assert in_process(first, EapServerSession(policy, passwords, tls=tls)).kind == "success"
    saved = first.session_for_resumption()
    assert saved is not None and tls.fast_reconnect is not None

    peer = ScriptedPeapPeer(saved)
    server = EapServerSession(policy, passwords, tls=tls)
    request, plain = peer.handshake(server)
    assert peer.tls.engine.session_reused
    offer = EapPacket.parse(plain)  # the Result TLV at once, no inner Identity
    assert (offer.code, offer.type) == (EapCode.REQUEST, EapType.TLV)
    tlvs = cb.parse_tlvs(offer.data)
    assert [cb.parse_result(t) for t in tlvs if t.tlv_type == cb.TLV_RESULT] == [cb.ResultStatus.SUCCESS]
    # The Cryptobinding request is keyed with the fast-reconnect keys: IPMK|CMK = TK.
    keys = cb.fast_reconnect_keys(peer.tls.key_material()[:60])
    cb.verify_cryptobinding_request(keys, next(t for t in tlvs if t.tlv_type == cb.TLV_CRYPTOBINDING))

    decline = EapPacket.response(offer.identifier, EapType.TLV, cb.build_result_tlv(cb.ResultStatus.FAILURE))
    step = peer.answer(server, request, decline.to_bytes())
    assert step.kind == "challenge"
    assert peer.inner(EapPacket.parse(step.eap)) == bytes((EapType.IDENTITY,))  # phase 2 from the start
    assert not server.resumed and tls.fast_reconnect.stats.refused == 1


# ---------------------------------------------------------------------------
# eapol_test -r 1: hostapd's peer re-authenticates offering its cached session


def eapol_reauth(lab: Pki, tmp_path: Path, network: dict[str, str | int],
                 policy: EapServerPolicy) -> tuple[EapolResult, RecordingNps]:
    conf = write_config(tmp_path / "eapol.conf", **network)

    async def go() -> tuple[EapolResult, RecordingNps]:
        server = RecordingNps(policy)
        _, port = await server.start("127.0.0.1", 0)
        try:
            result = await run_eapol_test(conf, port, DEFAULT_SECRET, reauth=1, redact=(DEFAULT_PASSWORD,))
        finally:
            await server.stop()
        return result, server

    return asyncio.run(go())


def eapol_network(lab: Pki, method: str) -> dict[str, str | int]:
    cert = lab.users["alice"]
    common: dict[str, str | int] = {"ca_cert": str(lab.ca), "domain_suffix_match": "nps.lab.test"}
    if method.startswith("eap-tls"):
        tls13 = {"phase1": "tls_disable_tlsv1_3=0"} if method == "eap-tls-1.3" else {}
        return {"eap": "TLS", "identity": cert.upn, "client_cert": str(cert.cert), "private_key": str(cert.key),
                **common, **tls13}
    peap = {"eap": "PEAP", "anonymous_identity": "anonymous", "phase1": "peapver=0 crypto_binding=2", **common}
    if method == "peap-mschapv2":
        return {**peap, "identity": "alice", "password": DEFAULT_PASSWORD, "phase2": "auth=MSCHAPV2"}
    return {**peap, "identity": cert.upn, "phase2": "auth=TLS", "ca_cert2": str(lab.ca),
            "client_cert2": str(cert.cert), "private_key2": str(cert.key)}


@pytest.mark.eapol_test
@pytest.mark.skipif(EAPOL_TEST is None, reason="eapol_test is not installed (apt-get install eapoltest)")
@pytest.mark.parametrize("method", ["eap-tls", "eap-tls-1.3", "peap-mschapv2", "peap-tls"])
def test_eapol_test_reauthentication_is_resumed(lab: Pki, tmp_path: Path, method: str) -> None:
    result, server = eapol_reauth(lab, tmp_path, eapol_network(lab, method), policy_for(lab))
    assert result.success and "MPPE keys OK: 2  mismatch: 0" in result.output, result.tail()
    # Full handshakes first (PEAP-TLS: outer and inner), then only the resumed one of the reauthentication.
    handshakes = re.findall(r"Handshake finished - resumed=(\d)", result.output)
    assert handshakes[0] == "0" and handshakes[-1] == "1" and handshakes == sorted(handshakes), handshakes
    if method.startswith("peap"):  # hostapd bound the skipped phase 2 with IPMK|CMK = TK
        assert "CMK derivation - reauth=1 resumed=1 phase2_eap_started=0" in result.output, result.tail()
        assert result.output.count("Valid cryptobinding TLV received") == 2
    first, second = server.finals
    assert (first.kind, first.identity, first.resumed) == ("success", "alice", False)
    assert (second.kind, second.identity, second.resumed) == ("success", "alice", True), second
    assert [(e.event_id, e.user) for e in server.events] == [(6272, "alice")] * 2
    stats = granted(server)
    assert (stats.resumed, stats.refused, stats.revoked) == (1, 0, 0)


@pytest.mark.eapol_test
@pytest.mark.skipif(EAPOL_TEST is None, reason="eapol_test is not installed (apt-get install eapoltest)")
def test_eapol_test_refusing_the_server_still_reads_as_an_alert(lab: Pki, tmp_path: Path) -> None:
    # The cache's info callback must leave OpenSSL's error queue alone: the reason names the peer's alert.
    network = {**eapol_network(lab, "peap-mschapv2"), "ca_cert": str(lab.untrusted_ca)}
    result, server = eapol_reauth(lab, tmp_path, network, policy_for(lab))
    assert not result.success
    (final,) = server.finals
    assert (final.kind, final.reason) == ("failure", 22) and "alert" in final.text, final
    assert granted(server).granted == 0
