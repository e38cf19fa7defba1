"""EAP-TTLS (RFC 5281): the Diameter AVP codec, and the probe's peer against a small TTLS server in memory.

The server here is the project's own EapTlsSession in the server role (real TLS 1.2, the lab
PKI) with ~40 lines of RFC 5281 on top: it reads the peer's AVPs, checks PAP or MS-CHAPv2 (with
the tunnel-derived implicit challenge), and answers MS-CHAP2-Success, MS-CHAP-Error, or a
malformed answer. FreeRADIUS proves the interoperable path (tests/integration/test_breadth_eap.py);
these prove the rules and the bad input, byte for byte.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest

from probe import pki
from probe.credentials import load_client_credentials, load_trust
from probe.eap import mschapv2 as ms
from probe.eap.crypto import Role, split_mppe_keys
from probe.eap.packet import EapPacket, EapType
from probe.eap.peer import EapPeer, EapPeerError, PeerConfig
from probe.eap.tls import EapTlsSession, server_context, start_payload
from probe.eap.tls_engine import TlsEngine
from probe.eap.ttls import (AVP_USER_NAME, AVP_USER_PASSWORD, CHALLENGE_LABEL, KEYING_LABEL, Avp, TtlsError,
                            encode_avp, pap_avps, parse_avps)
from probe.radius import mschap

PASSWORD = "Lab-Password-1"


# --------------------------------------------------------------------------- the AVP codec


def test_avp_layout_rfc5281_10_1() -> None:
    assert encode_avp(Avp(1, 0, b"bob")) == bytes.fromhex("00000001 40 00000b") + b"bob" + b"\x00"
    vendor = encode_avp(Avp(26, 311, b"x" * 5))
    assert vendor[:12] == bytes.fromhex("0000001a c0 000011 00000137") and len(vendor) == 20
    avps = parse_avps(encode_avp(Avp(1, 0, b"bob")) + vendor)
    assert avps == [Avp(1, 0, b"bob"), Avp(26, 311, b"x" * 5)]


@pytest.mark.parametrize("data, words", [
    (b"\x00\x00\x00\x01\x40\x00", "header truncated"),
    (bytes.fromhex("00000001 40 000004"), "bad length 4"),
    (bytes.fromhex("00000001 40 0000ff") + b"abc", "bad length 255"),
    (bytes.fromhex("00000001 c0 000009") + b"x", "bad length 9"),  # a vendor AVP needs 12 octets of header
    (encode_avp(Avp(1, 0, b"")) * 65, "more than 64 AVPs"),
])
def test_malformed_avps_are_refused_in_words(data: bytes, words: str) -> None:
    with pytest.raises(TtlsError, match=words):
        parse_avps(data)


def test_pap_password_is_null_padded_to_16() -> None:
    avps = parse_avps(pap_avps("alice", b"pw"))
    assert avps[0] == Avp(AVP_USER_NAME, 0, b"alice")
    assert avps[1] == Avp(AVP_USER_PASSWORD, 0, b"pw" + b"\x00" * 14)
    assert len(parse_avps(pap_avps("a", b"x" * 16))[1].value) == 16


# --------------------------------------------------------------------------- a TTLS server in memory

Answer = Callable[["TtlsServer", list[Avp]], bytes | None]  # tunnel data to send, or None: EAP-Success


class TtlsServer:
    def __init__(self, lab: pki.Pki, answer: Answer) -> None:
        ctx = server_context(credentials=load_client_credentials(lab.server_chain, lab.server_key), trust=None,
                             client_cert="none", verify=False, min_version="1.2", max_version="1.2")
        self.tls = EapTlsSession(TlsEngine(ctx, server=True), eap_type=EapType.TTLS, framed_mtu=1400)
        self.answer = answer
        self.identifier = 1
        self.got: list[Avp] = []

    def request(self, data: bytes) -> bytes:
        self.identifier += 1
        return EapPacket.request(self.identifier, EapType.TTLS, data).to_bytes()

    def start(self) -> bytes:
        self.tls.start()
        return self.request(start_payload(0))

    def handle(self, response: bytes) -> bytes:
        step = self.tls.receive(EapPacket.parse(response).data)
        if step.reply is not None:
            return self.request(step.reply)
        if step.app_data:
            self.got = parse_avps(step.app_data)
        out = self.answer(self, self.got if step.app_data else [])
        if out is None:
            return EapPacket.success(self.identifier).to_bytes()
        return self.request(self.tls.send_app(out) if out else self.tls.ack())

    def implicit(self) -> bytes:
        return self.tls.engine.export_keying_material(CHALLENGE_LABEL, 17)


def peer(lab: pki.Pki, inner: EapType | None, password: str = PASSWORD) -> EapPeer:
    return EapPeer(PeerConfig(outer=EapType.TTLS, inner=inner, identity="alice", outer_identity="anonymous",
                              password=password.encode(), trust=load_trust(lab.ca), server_name="nps.lab.test",
                              tls_max="1.2"))


def converse(p: EapPeer, s: TtlsServer, rounds: int = 20) -> None:
    request = s.start()
    for _ in range(rounds):
        reply = p.receive(request).reply
        if reply is None:
            return
        request = s.handle(reply)
    raise AssertionError("no end")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> pki.Pki:
    return pki.init_pki(tmp_path_factory.mktemp("pki"))


def pap_server(server: TtlsServer, avps: list[Avp]) -> bytes | None:
    assert [a.code for a in avps] == [AVP_USER_NAME, AVP_USER_PASSWORD]
    return None  # accept: EAP-Success


def mschapv2_server(success: Callable[[bytes, bytes], bytes] | None = None) -> Answer:
    """Checks the MS-CHAP2-Response against the implicit challenge; answers MS-CHAP2-Success (or ``success``)."""
    state: dict[str, bool] = {}

    def answer(server: TtlsServer, avps: list[Avp]) -> bytes | None:
        if state.get("sent"):
            assert avps == []  # the peer acknowledged with an empty message
            return None
        by_code = {(a.vendor, a.code): a.value for a in avps}
        implicit = server.implicit()
        assert by_code[(311, mschap.MS_CHAP_CHALLENGE)] == implicit[:16]  # RFC 5281 11.2.4: derived, not chosen
        response = by_code[(311, mschap.MS_CHAP2_RESPONSE)]
        assert response[0] == implicit[16]  # the Ident is the 17th octet
        assert ms.check_nt_response(implicit[:16], response[2:18], "alice", PASSWORD, response[26:50])
        proof = bytes([response[0]]) + ms.generate_authenticator_response(PASSWORD, response[26:50], response[2:18],
                                                                          implicit[:16], "alice")
        state["sent"] = True
        return encode_avp(Avp(mschap.MS_CHAP2_SUCCESS, 311, success(proof, response) if success else proof))

    return answer


def test_ttls_pap_succeeds_and_keys_are_the_ttls_keying_material(lab: pki.Pki) -> None:
    p, s = peer(lab, None), TtlsServer(lab, pap_server)
    converse(p, s)
    assert p.state == "success" and s.got[1].value.rstrip(b"\x00") == PASSWORD.encode()
    expected = split_mppe_keys(s.tls.engine.export_keying_material(KEYING_LABEL, 64), Role.SERVER)
    assert p.expected_mppe() == (expected.send_key, expected.recv_key)
    report = p.tls_report()
    assert report["version"] == "TLSv1.2" and report["validation"] == "ok"
    assert p.outer_identity == "anonymous" and s.got[0].value == b"alice"  # the real name only inside


def test_ttls_mschapv2_checks_the_servers_proof(lab: pki.Pki) -> None:
    p, s = peer(lab, EapType.MSCHAPV2), TtlsServer(lab, mschapv2_server())
    converse(p, s)
    assert p.state == "success" and p.primary_auth_done


@pytest.mark.parametrize("name, success, words", [
    ("wrong proof", lambda proof, r: proof[:3] + b"0" * 40, "server failed to prove knowledge of the password"),
    ("wrong ident", lambda proof, r: bytes([proof[0] ^ 1]) + proof[1:], "server failed to prove"),
    ("truncated", lambda proof, r: proof[:10], r"needs Ident \+ 42-octet S="),
    ("not hex", lambda proof, r: proof[:3] + b"Z" * 40, "not 'S=' and 40 hex digits"),
    ("empty", lambda proof, r: b"", "server failed to prove knowledge"),
    ("too long for a VSA", lambda proof, r: proof + b" M=" + b"x" * 300, "server failed to prove knowledge"),
])
def test_ttls_mschapv2_bad_success_is_an_error_in_words(lab: pki.Pki, name: str,
                                                        success: Callable[[bytes, bytes], bytes], words: str) -> None:
    p, s = peer(lab, EapType.MSCHAPV2), TtlsServer(lab, mschapv2_server(success))
    with pytest.raises(EapPeerError, match=words) as exc:
        converse(p, s)
    assert exc.value.kind == "mschapv2" and exc.value.state is not None and exc.value.state.startswith("ttls/")
    assert p.state == "failure" and PASSWORD not in str(exc.value)


def test_ttls_mschapv2_error_is_recorded_and_acknowledged(lab: pki.Pki) -> None:
    def refuse(server: TtlsServer, avps: list[Avp]) -> bytes | None:
        if not avps:
            raise AssertionError("no EAP-Failure in this test server: the peer's ack ends it")
        return encode_avp(Avp(mschap.MS_CHAP_ERROR, 311, b"\x01E=648 R=0 V=3 M=Password expired"))

    p, s = peer(lab, EapType.MSCHAPV2), TtlsServer(lab, refuse)
    request = s.start()
    for _ in range(10):
        reply = p.receive(request).reply
        assert reply is not None
        if s.got:
            break
        request = s.handle(reply)
    ack = p.receive(s.request(s.tls.send_app(refuse(s, s.got) or b""))).reply
    assert ack is not None and p.failure_detail == "MS-CHAP-Error E=648 (password expired), no retry: Password expired"
    assert p.receive(EapPacket.failure(s.identifier).to_bytes()).reply is None and p.state == "failure"


@pytest.mark.parametrize("data", [b"\x00\x00", bytes.fromhex("00000001 40 0000ff"), struct.pack("!IB", 1, 0x40)])
def test_ttls_malformed_tunnel_data_is_an_eap_error(lab: pki.Pki, data: bytes) -> None:
    p, s = peer(lab, EapType.MSCHAPV2), TtlsServer(lab, lambda server, avps: data)
    with pytest.raises(EapPeerError, match="EAP-TTLS: malformed tunnel data") as exc:
        converse(p, s)
    assert exc.value.kind == "eap"


def test_ttls_wrong_server_is_refused_before_any_avp(lab: pki.Pki, tmp_path_factory: pytest.TempPathFactory) -> None:
    other = pki.init_pki(tmp_path_factory.mktemp("other"))
    p = EapPeer(PeerConfig(outer=EapType.TTLS, identity="alice", password=PASSWORD.encode(),
                           trust=load_trust(other.ca), server_name="nps.lab.test", tls_max="1.2"))
    s = TtlsServer(lab, pap_server)
    with pytest.raises(EapPeerError) as exc:
        converse(p, s)
    assert exc.value.kind == "tls" and s.got == []  # the password never entered the tunnel


def test_registry_entries_for_the_new_eap_methods() -> None:
    from probe.methods import METHOD_NAMES, spec

    assert METHOD_NAMES[4:9] == ("mschapv2", "chap", "eap-mschapv2", "ttls-pap", "ttls-mschapv2")
    bare = spec("eap-mschapv2")
    assert (bare.eap, bare.needs_ca, bare.tls_versions, bare.eap_type, bare.inner_type, bare.nps) == (
        True, False, (), 26, None, True)
    for name, inner in (("ttls-pap", None), ("ttls-mschapv2", 26)):
        s = spec(name)
        assert (s.eap, s.needs_ca, s.eap_type, s.inner_type, s.nps, s.outer_identity) == (
            True, True, 21, inner, False, "anonymous")
        assert s.tls_range("1.3") == ("1.2", "1.2")  # TTLS stays at TLS 1.2 here, as PEAP
