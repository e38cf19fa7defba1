"""Exact MS-MPPE verdicts on the Access-Accept (issue 11, finding 4), in memory.

The probe's EapPeer runs against the emulator's EapServerSession (no sockets) until the server
decides success; then the Access-Accept is built by hand in each shape a server or proxy may send
(EAP-Success or not, right, swapped or no keys, keys too early) and given to
``EapMethod.on_final``. The judge's diagnosis codes for each ``mppe`` state are checked too.
Against real servers: tests/integration/test_hardening_verdicts.py.
"""

from __future__ import annotations

import os

import pytest

from probe import pki
from probe.credentials import load_client_credentials, load_trust
from probe.eap.packet import EapType
from probe.eap.peer import EapPeer, PeerConfig
from probe.emulator.eap_server import EapServerPolicy, EapServerSession, EapStep, ServerTls
from probe.method_eap import EapMethod
from probe.methods import MethodError
from probe.outcome import ErrorKind, Outcome
from probe.radius import packet as pk
from probe.verdict import diagnosis_codes

SECRET = b"unit-secret"
PASSWORD = "Lab-Password-1"
TYPES = {"eap-tls": (EapType.TLS, None), "peap-mschapv2": (EapType.PEAP, EapType.MSCHAPV2),
         "peap-tls": (EapType.PEAP, EapType.TLS)}
ALL = tuple(TYPES)


@pytest.fixture(scope="module")
def lab(lab_pki: pki.Pki) -> pki.Pki:
    return lab_pki


def make_peer(lab: pki.Pki, method: str) -> EapPeer:
    outer, inner = TYPES[method]
    credentials = None
    if EapType.TLS in (outer, inner):
        credentials = load_client_credentials(lab.users["alice"].cert, lab.users["alice"].key)
    return EapPeer(PeerConfig(outer=outer, inner=inner, identity="alice", password=PASSWORD.encode(),
                              credentials=credentials, trust=load_trust(lab.ca), method_name=method,
                              server_name="nps.lab.test", tls_max="1.3" if method == "eap-tls" else "1.2"))


def server_session(lab: pki.Pki) -> EapServerSession:
    policy = EapServerPolicy(server_cert=lab.server_chain, server_key=lab.server_key, ca_file=lab.ca,
                             tls_max_eap_tls="1.3")
    return EapServerSession(policy, {"alice": PASSWORD}.get, tls=ServerTls(policy))


def until_server_success(peer: EapPeer, server: EapServerSession) -> EapStep:
    """Run the pair until the server decides success; its EAP-Success is NOT given to the peer."""
    step = server.handle(peer.start(), None)
    for _ in range(200):
        if step.kind == "success":
            return step
        answer = peer.receive(step.eap)
        assert answer.reply is not None, step
        step = server.handle(answer.reply, None)
    raise AssertionError("no success")


def request() -> pk.Packet:
    return pk.Packet(pk.ACCESS_REQUEST, 7, os.urandom(16), [])


def key_attrs(req: pk.Packet, send: bytes, recv: bytes) -> list[pk.Attr]:
    return [pk.vsa(pk.VENDOR_MICROSOFT, t, pk.salt_encrypt(k, SECRET, req.authenticator, b"\x80" + os.urandom(1)))
            for t, k in ((pk.MS_MPPE_SEND_KEY, send), (pk.MS_MPPE_RECV_KEY, recv))]


def on_final(method: EapMethod, req: pk.Packet, attrs: list[pk.Attr]) -> tuple[Outcome, MethodError | None]:
    o = Outcome(target="127.0.0.1:1812", method=method.peer.config.name, identity="alice")
    try:
        method.on_final(pk.Packet(pk.ACCESS_ACCEPT, req.identifier, bytes(16), attrs), req, o)
    except MethodError as exc:
        return o, exc
    return o, None


def finished(lab: pki.Pki, method: str) -> tuple[EapMethod, EapStep]:
    peer = make_peer(lab, method)
    step = until_server_success(peer, server_session(lab))
    assert step.mppe is not None and peer.method_finished and peer.state == "running"
    return EapMethod(peer, SECRET, "alice"), step


# ---------------------------------------------------------------------------
# on_final


@pytest.mark.parametrize("method", ALL)
def test_the_normal_accept_matches(lab: pki.Pki, method: str) -> None:
    m, step = finished(lab, method)
    assert step.mppe is not None
    req = request()
    o, error = on_final(m, req, pk.eap_message_attrs(step.eap) + key_attrs(req, *step.mppe))
    assert (error, o.mppe, m.peer.state) == (None, "match", "success")


@pytest.mark.parametrize("method", ALL)
def test_no_eap_success_right_keys_is_an_eap_error_with_keys_that_match(lab: pki.Pki, method: str) -> None:
    """The finding: this was mppe_mismatch (the peer compared before EAP-Success, with no keys)."""
    m, step = finished(lab, method)
    assert step.mppe is not None
    req = request()
    o, error = on_final(m, req, key_attrs(req, *step.mppe))
    assert error is not None and error.kind is ErrorKind.EAP
    assert error.detail.startswith("Access-Accept without EAP-Success after")
    assert o.mppe == "match"


@pytest.mark.parametrize("method", ALL)
def test_no_eap_success_swapped_keys_is_still_the_eap_error_and_mppe_mismatch(lab: pki.Pki, method: str) -> None:
    m, step = finished(lab, method)
    assert step.mppe is not None
    send, recv = step.mppe
    req = request()
    o, error = on_final(m, req, key_attrs(req, recv, send))
    assert error is not None and error.kind is ErrorKind.EAP and o.mppe == "mismatch"


@pytest.mark.parametrize("method", ALL)
def test_eap_success_with_swapped_keys_is_an_mppe_mismatch(lab: pki.Pki, method: str) -> None:
    """Both sides' keys are known and differ: the one case that blames the keys."""
    m, step = finished(lab, method)
    assert step.mppe is not None
    send, recv = step.mppe
    req = request()
    o, error = on_final(m, req, pk.eap_message_attrs(step.eap) + key_attrs(req, recv, send))
    assert error is not None and error.kind is ErrorKind.MPPE_MISMATCH and o.mppe == "mismatch"


@pytest.mark.parametrize("method", ALL)
def test_keys_before_the_method_finished_are_unverified(lab: pki.Pki, method: str) -> None:
    """Accept on the Identity: the peer has no keys; 'mismatch' would be a guess, and a wrong one."""
    peer = make_peer(lab, method)
    peer.start()
    m = EapMethod(peer, SECRET, "alice")
    req = request()
    o, error = on_final(m, req, key_attrs(req, os.urandom(32), os.urandom(32)))
    assert error is not None and error.kind is ErrorKind.EAP and "before the EAP method finished" in error.detail
    assert o.mppe == "unverified"
    assert any("not checked" in w for w in o.warnings)


def test_peap_accept_after_the_inner_method_but_before_the_result_tlv_is_unverified(lab: pki.Pki) -> None:
    """The credential was proven, the Result TLV never answered: no keys yet, and the detail says so."""
    peer = make_peer(lab, "peap-mschapv2")
    server = server_session(lab)
    step = server.handle(peer.start(), None)
    for _ in range(50):
        answer = peer.receive(step.eap)
        if peer.primary_auth_done:
            break
        assert answer.reply is not None
        step = server.handle(answer.reply, None)
    assert peer.primary_auth_done and not peer.method_finished
    m = EapMethod(peer, SECRET, "alice")
    req = request()
    o, error = on_final(m, req, key_attrs(req, os.urandom(32), os.urandom(32)))
    assert error is not None and "the credential was proven" in error.detail and o.mppe == "unverified"


def test_an_early_eap_success_with_keys_is_the_peers_refusal_and_unverified(lab: pki.Pki) -> None:
    peer = make_peer(lab, "eap-tls")
    peer.start()
    m = EapMethod(peer, SECRET, "alice")
    req = request()
    o, error = on_final(m, req, pk.eap_message_attrs(b"\x03\x00\x00\x04") + key_attrs(req, bytes(32), bytes(32)))
    assert error is not None and "EAP-Success before" in error.detail and o.mppe == "unverified"


def test_keys_encrypted_with_another_secret_are_a_mismatch(lab: pki.Pki) -> None:
    """A hop that re-encrypts with its own secret: the keys do not decrypt (or decrypt to other bytes)."""
    m, step = finished(lab, "eap-tls")
    assert step.mppe is not None
    req = request()
    for salt in range(0x80, 0x100):  # find a salt whose garbled length byte does not decrypt (bounded)
        attrs = [pk.vsa(pk.VENDOR_MICROSOFT, t, pk.salt_encrypt(k, b"another-secret", req.authenticator,
                                                                bytes((salt, 0))))
                 for t, k in zip((pk.MS_MPPE_SEND_KEY, pk.MS_MPPE_RECV_KEY), step.mppe)]
        try:
            pk.mppe_keys(pk.Packet(pk.ACCESS_ACCEPT, 7, bytes(16), attrs), req.authenticator, SECRET)
        except pk.PacketError:
            break
    else:
        raise AssertionError("no salt gave undecryptable keys")
    o, error = on_final(m, req, pk.eap_message_attrs(step.eap) + attrs)
    assert error is not None and error.kind is ErrorKind.MPPE_MISMATCH and "do not decrypt" in error.detail
    assert o.mppe == "mismatch"


# ---------------------------------------------------------------------------
# The judge's diagnosis codes


def outcome(**kw: object) -> Outcome:
    o = Outcome(target="127.0.0.1:1812", method="peap-mschapv2", identity="alice")
    for key, value in kw.items():
        setattr(o, key, value)
    return o


def test_diagnosis_of_each_state() -> None:
    unverified = outcome(result="error", error_kind=ErrorKind.EAP, mppe="unverified",
                         error_detail="Access-Accept before the EAP method finished: ...")
    assert [c for c, _ in diagnosis_codes(unverified, 0.75)] == ["mppe_unverified"]
    missing = outcome(result="error", error_kind=ErrorKind.EAP, mppe="match",
                      error_detail="Access-Accept without EAP-Success after peap-mschapv2 finished")
    assert [c for c, _ in diagnosis_codes(missing, 0.75)] == ["eap_success_missing"]
    missing.mppe = "mismatch"
    assert [c for c, _ in diagnosis_codes(missing, 0.75)] == ["eap_success_missing", "mppe_mismatch"]
    mismatch = outcome(result="error", error_kind=ErrorKind.MPPE_MISMATCH, mppe="mismatch", error_detail="differ")
    assert [c for c, _ in diagnosis_codes(mismatch, 0.75)] == ["mppe_mismatch"]
    other = outcome(result="error", error_kind=ErrorKind.EAP, mppe="absent", error_detail="unexpected EAP type 4")
    assert [c for c, _ in diagnosis_codes(other, 0.75)] == ["eap_protocol_error"]
