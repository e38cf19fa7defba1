"""Bare EAP-MSCHAPv2 (EAP type 26 outside PEAP): the probe's peer against the emulator's server, in memory.

Both roles meet with bytes only: the proposal after PEAP is Nak'ed, the server's S= proof checked by
the peer, the keys each side derives (the server's RFC 3079 start keys), a wrong password's
Failure-Request, a server that lies about the proof, and a policy that does not offer the method.
"""

from __future__ import annotations

import pytest

from probe import pki
from probe.eap import mschapv2 as ms
from probe.eap.crypto import Role
from probe.eap.packet import EapPacket, EapType
from probe.eap.peer import EapPeer, EapPeerError, PeerConfig
from probe.emulator import mschapv2_server
from probe.emulator.eap_server import EapServerPolicy, EapServerSession, EapStep
from probe.emulator.nps_rules import Reason

PASSWORD = "Lab-Password-1"
USERS = {"alice": PASSWORD}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> pki.Pki:
    return pki.init_pki(tmp_path_factory.mktemp("pki"))


def session(lab: pki.Pki, methods: tuple[str, ...] = ("peap", "eap-tls", "eap-mschapv2")) -> EapServerSession:
    policy = EapServerPolicy(server_cert=lab.server_chain, server_key=lab.server_key, ca_file=lab.ca,
                             methods=methods)
    return EapServerSession(policy, USERS.get)


def peer(user: str = "alice", password: str = PASSWORD) -> EapPeer:
    return EapPeer(PeerConfig(outer=EapType.MSCHAPV2, identity=user, password=password.encode(),
                              method_name="eap-mschapv2"))


def converse(p: EapPeer, s: EapServerSession) -> tuple[EapStep, list[int]]:
    """Run to the end; the EAP types of the server's requests, in order."""
    types: list[int] = []
    step = s.handle(p.start())
    for _ in range(20):
        if step.kind != "challenge":
            break
        types.append(EapPacket.parse(step.eap).type)
        answer = p.receive(step.eap).reply
        assert answer is not None
        step = s.handle(answer)
    p.receive(step.eap)
    return step, types


def test_the_peer_naks_peap_and_succeeds_with_matching_keys(lab: pki.Pki) -> None:
    p, s = peer(), session(lab)
    step, types = converse(p, s)
    assert types == [EapType.PEAP, EapType.MSCHAPV2, EapType.MSCHAPV2]  # PEAP Nak'ed, Challenge, Success-Request
    assert step.kind == "success" and step.identity == "alice" and s.method == "eap-mschapv2"
    assert p.state == "success" and p.method_finished and p.primary_auth_done
    assert step.mppe is not None and p.expected_mppe() == step.mppe and len(step.mppe[0]) == 16
    assert p.tls_report() == {} and p.cryptobinding == "absent" and p.session_for_resumption() is None
    assert p.outer_identity == "alice"  # no tunnel: the real identity goes out


def test_the_keys_are_the_rfc3079_server_start_keys(lab: pki.Pki) -> None:
    """The server's MS-MPPE-Send-Key is its send start key (RFC 3079 3.4, what rlm_eap_mschapv2 sends)."""
    p = EapPeer(PeerConfig(outer=EapType.MSCHAPV2, identity="alice", password=PASSWORD.encode()))
    p_step = converse(p, session(lab))[0]
    assert p_step.mppe is not None
    nt = p._method.inner._sent[2]  # type: ignore[union-attr]  # the NT-Response the peer sent
    keys = ms.mppe_keys(PASSWORD, nt, Role.SERVER)
    assert p_step.mppe == (keys.send_key, keys.recv_key)  # the emulator's view is the server's


def test_wrong_password_is_a_clean_failure_with_the_e691_words(lab: pki.Pki) -> None:
    p, s = peer(password="wrong"), session(lab)
    step, _ = converse(p, s)
    assert step.kind == "failure" and step.reason == Reason.BAD_CREDENTIALS
    assert p.state == "failure" and not p.primary_auth_done
    assert p.failure_detail == "MS-CHAPv2 failure E=691 (authentication failure): Authentication failed"
    assert p.expected_mppe() is None


def test_a_policy_without_it_refuses_the_nak_with_reason_22(lab: pki.Pki) -> None:
    p, s = peer(), session(lab, methods=("peap", "eap-tls"))
    step, types = converse(p, s)
    assert types == [EapType.PEAP]
    assert step.kind == "failure" and step.reason == Reason.EAP_NOT_COMPLETED and "[26]" in step.text


def test_a_server_that_lies_about_the_proof_is_refused(lab: pki.Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    class LyingMschap:  # the emulator's view of the module only: the peer keeps the real arithmetic
        def __getattr__(self, name: str) -> object:
            return getattr(ms, name)

        @staticmethod
        def generate_authenticator_response(*args: object) -> bytes:
            return b"S=" + b"0" * 40

    monkeypatch.setattr(mschapv2_server, "ms", LyingMschap())
    p, s = peer(), session(lab)
    step = s.handle(p.start())
    with pytest.raises(EapPeerError, match="server failed to prove knowledge of the password") as exc:
        for _ in range(5):
            answer = p.receive(step.eap).reply
            assert answer is not None
            step = s.handle(answer)
    assert exc.value.kind == "mschapv2" and exc.value.state == "eap-mschapv2/mschapv2"


def test_an_early_eap_success_is_refused(lab: pki.Pki) -> None:
    p, s = peer(), session(lab)
    step = s.handle(p.start())
    challenge = s.handle(p.receive(step.eap).reply or b"")
    p.receive(challenge.eap)  # answered the Challenge; the server has not proven itself yet
    with pytest.raises(EapPeerError, match="EAP-Success before eap-mschapv2 finished"):
        p.receive(EapPacket.success(challenge.eap[1]).to_bytes())


def test_a_peer_without_a_password_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="needs a password"):
        EapPeer(PeerConfig(outer=EapType.MSCHAPV2, identity="alice"))
