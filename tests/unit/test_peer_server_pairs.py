"""The probe's EapPeer against the emulator's EapServerSession, in memory: bytes back and forth, no sockets.

Every method (EAP-TLS over TLS 1.2 and 1.3, PEAP-MSCHAPv2, PEAP-TLS) and every
behaviour the emulator's EAP server has (wrong password, unknown account, bad
or untrusted client certificates, server certificate problems, cryptobinding
policies, fast reconnect) meet here, so both roles of the one protocol core
are checked against each other without RADIUS in between.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from probe import pki
from probe.credentials import load_client_credentials, load_trust
from probe.eap import peap_common
from probe.eap.packet import EapPacket, EapType
from probe.eap.peer import EapPeer, EapPeerError, PeerConfig, PeerStep, Resumption
from probe.emulator import peap_server
from probe.emulator.eap_server import EapServerPolicy, EapServerSession, EapStep, ServerTls
from probe.emulator.nps_rules import Reason

PASSWORD = "Lab-Password-1"
USERS = {"alice": PASSWORD, "expired": PASSWORD, "noeku": PASSWORD, "untrusted": PASSWORD}
MAX_ROUNDS = 200

TYPES = {"eap-tls": (EapType.TLS, None), "peap-mschapv2": (EapType.PEAP, EapType.MSCHAPV2),
         "peap-tls": (EapType.PEAP, EapType.TLS)}
CERT_METHODS = ("eap-tls", "peap-tls")
ALL = ("eap-tls", "peap-mschapv2", "peap-tls")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> pki.Pki:
    return pki.init_pki(tmp_path_factory.mktemp("pki"))


def policy(lab: pki.Pki, **kw: object) -> EapServerPolicy:
    kw.setdefault("tls_max_eap_tls", "1.3")
    return EapServerPolicy(server_cert=lab.server_chain, server_key=lab.server_key, ca_file=lab.ca,
                           **kw)  # type: ignore[arg-type]


def peer_for(lab: pki.Pki, method: str, *, user: str = "alice", cert_user: str | None = None,
             password: str = PASSWORD, ca: Path | None = None, **kw: object) -> EapPeer:
    outer, inner = TYPES[method]
    credentials = None
    if EapType.TLS in (outer, inner):
        u = lab.users[cert_user or user]
        credentials = load_client_credentials(u.cert, u.key)
    kw.setdefault("server_name", "nps.lab.test")
    kw.setdefault("tls_max", "1.3" if method == "eap-tls" else "1.2")
    return EapPeer(PeerConfig(outer=outer, inner=inner, identity=user, password=password.encode(),
                              credentials=credentials, trust=load_trust(ca or lab.ca), method_name=method,
                              **kw))  # type: ignore[arg-type]


@dataclass
class Result:
    """How a paired conversation ended, from both sides."""

    server: EapStep
    peer: PeerStep | None = None
    error: EapPeerError | None = None
    sizes: list[int] = field(default_factory=list)


def converse(peer: EapPeer, server: EapServerSession, *, mtu: int | None = None) -> Result:
    """Feed bytes between the two until the peer has nothing more to say (or refuses)."""
    first = peer.start()
    step = server.handle(first, mtu)
    sizes = [len(first), len(step.eap)]
    for _ in range(MAX_ROUNDS):
        try:
            answer = peer.receive(step.eap)
        except EapPeerError as exc:
            if exc.reply is not None and not server.finished:  # a Result Failure or a TLS alert goes out
                step = server.handle(exc.reply, mtu)
            return Result(step, None, exc, sizes)
        if answer.reply is None:
            return Result(step, answer, None, sizes)
        step = server.handle(answer.reply, mtu)
        sizes += [len(answer.reply), len(step.eap)]
    raise AssertionError("the conversation did not end")


def server_done(r: Result) -> bool:
    return r.server.kind in ("success", "failure")


def session(lab: pki.Pki, users: dict[str, str] | None = None, *, tls: ServerTls | None = None,
            **kw: object) -> EapServerSession:
    p = policy(lab, **kw)
    return EapServerSession(p, (users if users is not None else USERS).get, tls=tls or ServerTls(p))


# --------------------------------------------------------------------------- every method succeeds


@pytest.mark.parametrize("method, tls_max, version", [
    ("eap-tls", "1.2", "TLSv1.2"), ("eap-tls", "1.3", "TLSv1.3"),
    ("peap-mschapv2", "1.2", "TLSv1.2"), ("peap-tls", "1.2", "TLSv1.2"),
])
def test_every_method_succeeds_and_both_sides_agree_on_the_keys(lab: pki.Pki, method: str, tls_max: str,
                                                                 version: str) -> None:
    peer = peer_for(lab, method, tls_max=tls_max)
    server = session(lab)
    r = converse(peer, server)
    assert r.error is None and r.peer is not None
    assert (r.server.kind, r.server.identity, r.server.resumed) == ("success", "alice", False)
    assert (r.peer.state, r.peer.finished, r.peer.keys_available, r.peer.server_refused) == \
        ("success", True, True, None)
    assert peer.primary_auth_done and server.method == method
    assert r.server.mppe == peer.expected_mppe() and r.server.mppe is not None
    assert peer.cryptobinding == ("absent" if method == "eap-tls" else "valid")
    report = peer.tls_report()
    assert report["version"] == version and report["validation"] == "ok" and report["resumed"] is False
    if method == "peap-tls":
        assert report["inner"]["version"] == "TLSv1.2"  # type: ignore[index]


def test_small_framed_mtu_is_honoured_by_both_roles(lab: pki.Pki) -> None:
    peer = peer_for(lab, "peap-tls", framed_mtu=300)
    r = converse(peer, session(lab), mtu=300)
    assert r.server.kind == "success" and peer.state == "success"
    assert max(r.sizes) <= 300 - 4  # the MTU is the link's: EAPOL's 4-byte header comes off


# --------------------------------------------------------------------------- credentials refused


def test_wrong_password_is_a_clean_refusal(lab: pki.Pki) -> None:
    peer = peer_for(lab, "peap-mschapv2", password="not-the-password")
    r = converse(peer, session(lab))
    assert (r.server.kind, r.server.reason) == ("failure", Reason.BAD_CREDENTIALS)
    assert r.error is None and r.peer is not None and r.peer.state == "failure"
    assert r.peer.server_refused is not None and "E=691" in r.peer.server_refused
    assert not peer.primary_auth_done and peer.expected_mppe() is None and r.server.mppe is None


def test_unknown_account_is_refused(lab: pki.Pki) -> None:
    r = converse(peer_for(lab, "peap-mschapv2"), session(lab, {"bob": PASSWORD}))
    assert (r.server.kind, r.server.reason) == ("failure", Reason.BAD_CREDENTIALS)


@pytest.mark.parametrize("method", CERT_METHODS)
@pytest.mark.parametrize("cert_user, reason", [
    ("expired", Reason.CERT_EXPIRED), ("noeku", Reason.NO_CLIENT_AUTH_EKU), ("untrusted", Reason.CERT_UNTRUSTED),
])
def test_bad_client_certificates_get_nps_reason_codes(lab: pki.Pki, method: str, cert_user: str,
                                                      reason: Reason) -> None:
    peer = peer_for(lab, method, cert_user=cert_user)
    r = converse(peer, session(lab))
    assert (r.server.kind, r.server.reason) == ("failure", reason), r.server.text
    assert r.server.text.startswith(f"client certificate CN={cert_user}: ")
    assert peer.state == "failure" and not peer.primary_auth_done and peer.expected_mppe() is None
    assert peer.failure_detail == (None if method == "eap-tls" else "server sent Result TLV Failure")


@pytest.mark.parametrize("method", CERT_METHODS)
def test_certificate_of_an_unknown_account_is_refused(lab: pki.Pki, method: str) -> None:
    r = converse(peer_for(lab, method), session(lab, {"bob": PASSWORD}))
    assert (r.server.kind, r.server.reason) == ("failure", Reason.BAD_CREDENTIALS)
    assert "maps to no known account" in r.server.text


# --------------------------------------------------------------------------- server certificate problems


@pytest.mark.parametrize("method", ALL)
def test_untrusted_server_certificate_stops_the_peer_with_its_state(lab: pki.Pki, method: str) -> None:
    peer = peer_for(lab, method, ca=lab.untrusted_ca)
    r = converse(peer, session(lab))
    assert r.error is not None and r.error.kind == "tls"
    outer = "eap-tls" if method == "eap-tls" else "peap"
    assert r.error.state == f"{outer}/server_certificate"
    assert r.error.detail.startswith("server certificate not trusted: ")
    assert r.error.reply is None  # nothing of ours leaves after a failed validation
    assert peer.state == "failure" and r.server.kind == "challenge" and not server_done(r)


def test_server_certificate_from_another_ca(lab: pki.Pki) -> None:
    p = EapServerPolicy(server_cert=lab.untrusted_server_cert, server_key=lab.untrusted_server_key,
                        ca_file=lab.ca)
    peer = peer_for(lab, "peap-mschapv2")
    r = converse(peer, EapServerSession(p, USERS.get))
    assert r.error is not None and r.error.state == "peap/server_certificate"


def test_wrong_server_name(lab: pki.Pki) -> None:
    peer = peer_for(lab, "eap-tls", server_name="vpn.example.com")
    r = converse(peer, session(lab))
    assert r.error is not None and r.error.kind == "tls" and r.error.state == "eap-tls/server_certificate"
    assert r.error.detail == "server name mismatch: wanted vpn.example.com, certificate has nps.lab.test"


# --------------------------------------------------------------------------- cryptobinding


@pytest.mark.parametrize("method", ["peap-mschapv2", "peap-tls"])
@pytest.mark.parametrize("mode, expected", [("off", "absent"), ("optional", "valid"), ("required", "valid")])
def test_cryptobinding_policies(lab: pki.Pki, method: str, mode: str, expected: str) -> None:
    peer = peer_for(lab, method)
    r = converse(peer, session(lab, cryptobinding=mode))
    assert r.server.kind == "success" and peer.cryptobinding == expected
    assert r.server.mppe == peer.expected_mppe()
    assert ("cryptobinding verified" in r.server.text) == (expected == "valid")


def test_a_server_binding_other_keys_is_caught_by_the_peer_in_its_state(lab: pki.Pki,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    def other_tunnel(tunnel_key: bytes, inner_msk: bytes | None, *, inner_method_ran: bool):  # type: ignore[no-untyped-def]
        return peap_common.compound_keys(bytes(b ^ 0xFF for b in tunnel_key), inner_msk,
                                         inner_method_ran=inner_method_ran)

    monkeypatch.setattr(peap_server, "compound_keys", other_tunnel)  # the server's view only
    peer = peer_for(lab, "peap-mschapv2")
    r = converse(peer, session(lab, cryptobinding="required"))
    assert r.error is not None and (r.error.kind, r.error.state) == ("cryptobinding", "peap/phase2/cryptobinding")
    assert peer.cryptobinding == "invalid" and peer.state == "failure"
    assert r.server.kind == "failure"  # the peer's Result Failure went out; the server ends in EAP-Failure


def test_a_peer_binding_other_keys_is_reason_301(lab: pki.Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server's check of the peer's Cryptobinding response fails: NPS reason 301 (possible MITM), not 22."""
    from probe.eap import peap as peer_peap

    real = peer_peap.build_cryptobinding_response

    def tampered(*args: object, **kw: object) -> bytes:
        tlv = real(*args, **kw)  # type: ignore[arg-type]
        return tlv[:-1] + bytes([tlv[-1] ^ 0x01])  # the compound MAC's last byte

    monkeypatch.setattr(peer_peap, "build_cryptobinding_response", tampered)
    r = converse(peer_for(lab, "peap-mschapv2"), session(lab, cryptobinding="required"))
    assert (r.server.kind, r.server.reason) == ("failure", Reason.CRYPTOBINDING_INVALID)
    assert r.server.reason == 301 and "cryptobinding failed" in r.server.text


def test_reason_classes_follow_the_notes() -> None:
    """PROTOCOL-NOTES: 9, 262 and 266 are discard-class (event 6274); every other reason is reject-class."""
    from probe.emulator.nps_rules import reason_class

    assert [reason_class(r) for r in (9, 262, 266)] == ["discard"] * 3
    assert {reason_class(r) for r in Reason if r not in (9, 262, 266)} == {"reject"}
    assert [int(r) for r in (Reason.CRYPTOBINDING_INVALID, Reason.CRYPTOBINDING_MISSING, Reason.METHOD_NOT_ENABLED,
                             Reason.EXTENSION_REJECTED, Reason.DISCARDED_BY_EXTENSION)] == [301, 302, 66, 21, 9]


# --------------------------------------------------------------------------- fast reconnect


def _resumed(lab: pki.Pki, method: str, tls_max: str = "1.2") -> tuple[Result, Result, EapPeer, ServerTls]:
    p = policy(lab, fast_reconnect=True)
    tls = ServerTls(p)
    first_peer = peer_for(lab, method, tls_max=tls_max)
    first = converse(first_peer, EapServerSession(p, USERS.get, tls=tls))
    saved = first_peer.session_for_resumption()
    assert saved is not None
    again = peer_for(lab, method, tls_max=tls_max, session=saved)
    second = converse(again, EapServerSession(p, USERS.get, tls=tls))
    return first, second, again, tls


@pytest.mark.parametrize("method, tls_max", [("eap-tls", "1.2"), ("eap-tls", "1.3"),
                                             ("peap-mschapv2", "1.2"), ("peap-tls", "1.2")])
def test_fast_reconnect_resumes_for_the_remembered_account(lab: pki.Pki, method: str, tls_max: str) -> None:
    first, second, again, tls = _resumed(lab, method, tls_max)
    assert (first.server.kind, first.server.resumed) == ("success", False)
    assert (second.server.kind, second.server.identity, second.server.resumed) == ("success", "alice", True)
    assert again.tls_report()["resumed"] is True and again.primary_auth_done
    assert second.server.mppe == again.expected_mppe() != first.server.mppe
    assert tls.fast_reconnect is not None and tls.fast_reconnect.stats.resumed == 1


def test_a_revoked_session_is_not_resumed(lab: pki.Pki) -> None:
    p = policy(lab, fast_reconnect=True)
    tls = ServerTls(p)
    first_peer = peer_for(lab, "peap-mschapv2")
    server = EapServerSession(p, USERS.get, tls=tls)
    assert converse(first_peer, server).server.kind == "success"
    server.revoke_fast_reconnect()  # e.g. MFA denied the successful EAP conversation
    saved = first_peer.session_for_resumption()
    assert saved is not None
    again = peer_for(lab, "peap-mschapv2", session=saved)
    second = converse(again, EapServerSession(p, USERS.get, tls=tls))
    assert (second.server.kind, second.server.resumed) == ("success", False)
    assert again.tls_report()["resumed"] is False  # a full handshake: the session left the server cache


def test_a_session_of_another_method_is_refused_by_the_peer(lab: pki.Pki) -> None:
    first, _, again, _ = _resumed(lab, "peap-mschapv2")
    saved = again.session_for_resumption()
    assert saved is not None
    foreign = Resumption((EapType.TLS, None), saved.session, saved.context)
    with pytest.raises(ValueError, match="cannot be resumed by peap-mschapv2"):
        peer_for(lab, "peap-mschapv2", session=foreign)


# --------------------------------------------------------------------------- the outer conversation


def test_peer_naks_the_first_proposal_and_the_server_follows(lab: pki.Pki) -> None:
    peer = peer_for(lab, "eap-tls")
    server = session(lab)  # NPS proposes PEAP first
    propose = server.handle(peer.start())
    assert EapPacket.parse(propose.eap).type == EapType.PEAP
    nak = peer.receive(propose.eap)
    assert nak.reply is not None and EapPacket.parse(nak.reply).type == EapType.NAK and not nak.finished
    start = server.handle(nak.reply)
    assert EapPacket.parse(start.eap).type == EapType.TLS and server.method == "eap-tls"


def test_no_common_method(lab: pki.Pki) -> None:
    r = converse(peer_for(lab, "eap-tls"), session(lab, methods=("peap",), peap_inner=("mschapv2",)))
    assert (r.server.kind, r.server.reason) == ("failure", Reason.EAP_NOT_COMPLETED)
    assert r.server.text == "the peer Nak'ed peap and asks for types [13], none of which the policy allows"
    assert r.peer is not None and r.peer.state == "failure"


def test_a_server_that_cannot_prove_the_password_is_caught_in_phase_2(lab: pki.Pki,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    real = peap_server.ms

    class LyingMschap:
        def __getattr__(self, name: str) -> object:
            return getattr(real, name)

        @staticmethod
        def generate_authenticator_response(password: str, *args: object) -> bytes:
            return real.generate_authenticator_response(password + "-not-it", *args)  # type: ignore[arg-type]

    monkeypatch.setattr(peap_server, "ms", LyingMschap())
    peer = peer_for(lab, "peap-mschapv2")
    r = converse(peer, session(lab))
    assert r.error is not None and (r.error.kind, r.error.state) == ("mschapv2", "peap/phase2/mschapv2")
    assert r.error.detail == "server failed to prove knowledge of the password"
    assert not peer.primary_auth_done and peer.state == "failure"


def test_duplicate_requests_get_the_same_step(lab: pki.Pki) -> None:
    peer = peer_for(lab, "eap-tls")
    server = session(lab, methods=("eap-tls",))
    start = server.handle(peer.start()).eap
    first, again = peer.receive(start), peer.receive(start)
    assert first == again and first.reply is not None and first.state == "running" and not first.keys_available


def test_eap_success_before_the_method_finished_names_the_state(lab: pki.Pki) -> None:
    peer = peer_for(lab, "peap-mschapv2")
    with pytest.raises(EapPeerError) as caught:
        peer.receive(EapPacket.success(0).to_bytes())
    assert (caught.value.kind, caught.value.state) == ("eap", "eap/success")
