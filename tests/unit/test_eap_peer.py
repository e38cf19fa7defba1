"""The EAP peer state machine against real in-memory servers built from our own server-role code.

The servers here are small scripts over :class:`probe.eap.tls.EapTlsSession`
(server role, real OpenSSL), :mod:`probe.eap.mschapv2` (server role) and
:mod:`probe.eap.cryptobinding` (server role): every byte the peer sees is what
a server computed, every byte it sends is checked by that server. Real
FreeRADIUS and NPS-emulator runs live in tests/integration.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from OpenSSL import SSL

from probe import pki
from probe.eap import mschapv2
from probe.eap.crypto import Role, split_mppe_keys
from probe.eap.cryptobinding import (
    TLV_CRYPTOBINDING,
    TLV_RESULT,
    ResultStatus,
    build_cryptobinding_request,
    build_result_tlv,
    derive_compound_keys,
    inner_session_key,
    mppe_keys_from_csk,
    parse_result,
    parse_tlvs,
    verify_cryptobinding_response,
)
from probe.eap.packet import (
    EapCode,
    EapPacket,
    EapType,
    ExpandedType,
    Vendor,
    expanded_packet,
)
from probe.eap.peap import (
    CAPABILITIES_VENDOR_TYPE,
    SOH_VENDOR_TYPE,
    MschapV2Peer,
    Phase2,
    compress,
    decompress,
)
from probe.eap.peer import EapPeer, EapPeerError, PeerConfig, TlsConfigError
from probe.credentials import load_client_credentials, load_trust
from probe.credentials import server_context_from_files as server_context
from probe.eap.tls import (
    EapTlsError,
    EapTlsSession,
    Flags,
    SessionState,
    TlsEngine,
    start_payload,
)
from probe.eap.validation import check_eku, name_matches, validate_server

P12_PASSWORD = "p12-Secret-Sauce-42"
PASSWORD = "Correct-Horse-9"
MAX_ROUNDS = 80


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> pki.Pki:
    return pki.init_pki(tmp_path_factory.mktemp("pki"), p12_password=P12_PASSWORD)


_TYPES = {"eap-tls": (EapType.TLS, None), "peap-mschapv2": (EapType.PEAP, EapType.MSCHAPV2),
          "peap-tls": (EapType.PEAP, EapType.TLS)}


def peer_config(method: str, identity: str, *, client_cert: object = None, client_key: object = None,
                key_password: object = None, pkcs12: object = None, pkcs12_password: object = None,
                ca_file: object = None, **kw: object) -> PeerConfig:
    """A PeerConfig from file names, loaded at the edge as the probe does (probe.credentials)."""
    outer, inner = _TYPES.get(method, (EapType.MD5_CHALLENGE, None))
    credentials = load_client_credentials(client_cert, client_key, key_password, pkcs12,  # type: ignore[arg-type]
                                          pkcs12_password)  # type: ignore[arg-type]
    return PeerConfig(outer=outer, inner=inner, method_name=method, identity=identity, credentials=credentials,
                      trust=load_trust(ca_file), **kw)  # type: ignore[arg-type]


def tls_config(lab: pki.Pki, user: str = "alice", **kw: object) -> PeerConfig:
    kw.setdefault("ca_file", lab.ca)
    kw.setdefault("server_name", "nps.lab.test")
    method = str(kw.pop("method", "eap-tls"))
    return peer_config(method, f"{user}@lab.test", client_cert=lab.users[user].cert,
                       client_key=lab.users[user].key, **kw)


def peap_config(lab: pki.Pki, **kw: object) -> PeerConfig:
    kw.setdefault("ca_file", lab.ca)
    kw.setdefault("server_name", "nps.lab.test")
    kw.setdefault("password", PASSWORD.encode())
    return peer_config("peap-mschapv2", "alice", **kw)


def server_ctx(lab: pki.Pki, *, version: str = "1.3", client_cert: str = "require",
               cert: Path | None = None, key: Path | None = None) -> SSL.Context:
    return server_context(cert_file=cert or lab.server_chain, key_file=key or lab.server_key, ca_file=lab.ca,
                          client_cert=client_cert, max_version=version)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- server scripts

Script = Generator[bytes, bytes, None]
"""A server: yields each EAP packet it sends, receives the peer's next packet."""


@dataclass
class Wire:
    """Everything that crossed, as EAP bytes; ``to_server[0]`` is the peer's start()."""

    to_peer: list[bytes] = field(default_factory=list)
    to_server: list[bytes] = field(default_factory=list)


def run(peer: EapPeer, script: Script) -> Wire:
    """Drive peer and server until the peer has nothing more to say (after Success/Failure)."""
    wire = Wire()
    message = peer.start()
    next(script)
    for _ in range(MAX_ROUNDS):
        wire.to_server.append(message)
        request = script.send(message)
        wire.to_peer.append(request)
        reply = peer.receive(request).reply
        if reply is None:
            return wire
        message = reply
    raise AssertionError("the conversation did not end")


class Server:
    """Shared helpers: identifiers and an outer EAP-TLS/PEAP exchange over one server session."""

    def __init__(self, session: EapTlsSession) -> None:
        self.outer = session
        self.identifier = 0
        self.expected_mppe: tuple[bytes, bytes] | None = None
        self.identity: str | None = None
        self.fragmented_in_tunnel = 0  # peer messages split over several outer fragments after phase 1

    def request(self, eap_type: int, data: bytes) -> bytes:
        self.identifier = (self.identifier + 1) & 0xFF
        return EapPacket.request(self.identifier, eap_type, data).to_bytes()

    def final(self, code: EapCode) -> bytes:
        self.identifier = (self.identifier + 1) & 0xFF
        return EapPacket(code, self.identifier, None).to_bytes()

    def response(self, wire: bytes, eap_type: int) -> EapPacket:
        packet = EapPacket.parse(wire)
        assert packet.code is EapCode.RESPONSE and packet.identifier == self.identifier
        assert packet.type == eap_type, f"expected type {eap_type}, got {packet!r}"
        return packet

    def tls_exchange(self, payload: bytes) -> Generator[bytes, bytes, bytes]:
        """Send Type-Data and keep going until the TLS layer has nothing to say; returns tunnel data."""
        while True:
            answer = yield self.request(self.outer.eap_type, payload)
            data = self.response(answer, self.outer.eap_type).data
            if self.outer.state is SessionState.TUNNEL and data[0] & Flags.MORE:
                self.fragmented_in_tunnel += 1
            step = self.outer.receive(data)
            if step.reply is None:
                return step.app_data
            payload = step.reply

    def take_identity(self, wire: bytes) -> None:
        packet = EapPacket.parse(wire)
        assert packet.code is EapCode.RESPONSE and packet.type == EapType.IDENTITY
        self.identifier = packet.identifier
        self.identity = packet.data.decode()


class EapTlsServer(Server):
    """RFC 5216/9190 server: Identity, Start, handshake, Success."""

    def script(self) -> Script:
        self.take_identity((yield b""))
        yield from self.tls_exchange(self.outer.start())
        assert self.outer.is_complete
        keys = split_mppe_keys(self.outer.msk(), Role.SERVER)
        self.expected_mppe = (keys.send_key, keys.recv_key)
        yield self.final(EapCode.SUCCESS)


@dataclass
class PeapOptions:
    """What the PEAP server does inside the tunnel."""

    inner: str = "mschapv2"                # or "tls"
    identity_header: bool = True           # FreeRADIUS style
    capabilities: bool = True
    soh: bool = True
    propose_mschapv2_first: bool = False   # FreeRADIUS's default for a PEAP-TLS peer
    cryptobinding: str = "valid"           # "valid" | "absent" | "tampered"
    password: str = PASSWORD               # what the server believes
    server_proof: Callable[[bytes], bytes] = lambda proof: proof


class PeapServer(Server):
    """A [MS-PEAP] server: phase 1, Identity, Capabilities/SoH, inner method, Result+Cryptobinding."""

    def __init__(self, session: EapTlsSession, options: PeapOptions, inner_ctx: SSL.Context | None = None) -> None:
        super().__init__(session)
        self.options = options
        self.inner_ctx = inner_ctx
        self.inner_msk: bytes | None = None
        self.inner_identity: bytes | None = None
        self.seen_plain: list[bytes] = []   # the peer's tunnel plaintext, in order
        self.refusal: bytes | None = None

    def tunnel(self, plain: bytes) -> Generator[bytes, bytes, bytes]:
        answer = yield from self.tls_exchange(self.outer.send_app(plain))
        self.seen_plain.append(answer)
        return answer

    def script(self) -> Script:
        self.take_identity((yield b""))
        handshake_end = yield from self.tls_exchange(self.outer.start())
        assert handshake_end == b""  # the peer's ACK of the tunnel
        options = self.options
        nak = bytes((EapType.NAK, EapType.MSCHAPV2 if options.inner == "mschapv2" else EapType.TLS))
        header = EapPacket.request(self.identifier + 1, EapType.IDENTITY).to_bytes()
        self.inner_identity = yield from self.tunnel(header if options.identity_header else b"\x01")
        if options.capabilities:
            caps = ExpandedType(Vendor.MICROSOFT, CAPABILITIES_VENDOR_TYPE, b"\x00\x00\x00\x01")
            assert (yield from self.tunnel(expanded_packet(EapCode.REQUEST, self.identifier + 1, caps).to_bytes())) == nak
        if options.soh:
            soh = ExpandedType(Vendor.MICROSOFT, SOH_VENDOR_TYPE, bytes.fromhex("00070000") + b"\x00\x00\x01\x37\x00\x02\x00\x00")
            assert (yield from self.tunnel(expanded_packet(EapCode.REQUEST, self.identifier + 1, soh).to_bytes())) == nak
        if options.propose_mschapv2_first:
            challenge = b"\x1a" + mschapv2.build_challenge(1, secrets.token_bytes(16), b"radius")
            assert (yield from self.tunnel(challenge)) == nak
        if options.inner == "mschapv2":
            ok = yield from self.mschapv2()
        else:
            ok = yield from self.inner_tls()
        yield from self.result(ok)

    def mschapv2(self) -> Generator[bytes, bytes, bool]:
        challenge = secrets.token_bytes(16)
        answer = yield from self.tunnel(b"\x1a" + mschapv2.build_challenge(7, challenge, b"nps"))
        assert answer[0] == EapType.MSCHAPV2
        response = mschapv2.parse_response(answer[1:])
        assert isinstance(response, mschapv2.Response)
        user = response.name.decode()
        if not mschapv2.check_nt_response(challenge, response.peer_challenge, user, self.options.password,
                                          response.nt_response):
            ack = yield from self.tunnel(b"\x1a" + mschapv2.build_failure_request(7, 691, message="bad password"))
            assert ack == b"\x1a\x04"
            return False
        proof = mschapv2.generate_authenticator_response(self.options.password, response.nt_response,
                                                         response.peer_challenge, challenge, user)
        ack = yield from self.tunnel(b"\x1a" + mschapv2.build_success_request(7, self.options.server_proof(proof), "hi"))
        assert ack == b"\x1a\x03"
        self.inner_msk = mschapv2.eap_mschapv2_msk(self.options.password, response.nt_response)
        return True

    def inner_tls(self) -> Generator[bytes, bytes, bool]:
        assert self.inner_ctx is not None
        inner = EapTlsSession(TlsEngine(self.inner_ctx, server=True), framed_mtu=400)
        payload = inner.start()
        while True:
            answer = yield from self.tunnel(b"\x0d" + payload)
            assert answer[0] == EapType.TLS
            step = inner.receive(answer[1:])
            if step.reply is None:
                break
            payload = step.reply
        assert inner.is_complete
        self.inner_msk = inner.msk()
        return True

    def result(self, ok: bool) -> Script:
        options = self.options
        if not ok:
            answer = yield from self.tunnel(self.tlv(build_result_tlv(ResultStatus.FAILURE)))
            assert parse_result(parse_tlvs(EapPacket.parse(answer).data)[0]) is ResultStatus.FAILURE
            yield self.final(EapCode.FAILURE)
            return
        tunnel_key = self.outer.key_material()
        assert self.inner_msk is not None
        keys = derive_compound_keys(tunnel_key[:60], inner_session_key(self.inner_msk))
        tlvs = build_result_tlv(ResultStatus.SUCCESS)
        nonce = secrets.token_bytes(32)
        if options.cryptobinding != "absent":
            binding = build_cryptobinding_request(keys, nonce)
            if options.cryptobinding == "tampered":
                binding = binding[:-1] + bytes((binding[-1] ^ 1,))
            tlvs += binding
        answer = yield from self.tunnel(self.tlv(tlvs))
        packet = EapPacket.parse(answer)
        assert packet.code is EapCode.RESPONSE and packet.type == EapType.TLV
        got = {tlv.tlv_type: tlv for tlv in parse_tlvs(packet.data)}
        assert parse_result(got[TLV_RESULT]) is ResultStatus.SUCCESS
        if options.cryptobinding == "valid":
            verify_cryptobinding_response(keys, got[TLV_CRYPTOBINDING], expected_nonce=nonce)
            mppe = mppe_keys_from_csk(keys, Role.SERVER)
        else:
            assert TLV_CRYPTOBINDING not in got
            mppe = split_mppe_keys(tunnel_key[:64], Role.SERVER)
        self.expected_mppe = (mppe.send_key, mppe.recv_key)
        yield self.final(EapCode.SUCCESS)

    def tlv(self, tlvs: bytes) -> bytes:
        return EapPacket.request(self.identifier + 1, EapType.TLV, tlvs).to_bytes()


def eap_tls_server(lab: pki.Pki, version: str = "1.3", mtu: int = 1500, **kw: object) -> EapTlsServer:
    return EapTlsServer(EapTlsSession(TlsEngine(server_ctx(lab, version=version, **kw), server=True),  # type: ignore[arg-type]
                                      framed_mtu=mtu))


def peap_server(lab: pki.Pki, options: PeapOptions | None = None, mtu: int = 1500, **kw: object) -> PeapServer:
    session = EapTlsSession(TlsEngine(server_ctx(lab, version="1.2", client_cert="none", **kw), server=True),  # type: ignore[arg-type]
                            eap_type=EapType.PEAP, framed_mtu=mtu)
    return PeapServer(session, options or PeapOptions(), server_ctx(lab, version="1.2"))


# --------------------------------------------------------------------------- (a) bytes


def test_start_is_identity_response_with_identifier_zero(lab: pki.Pki) -> None:
    assert EapPeer(peap_config(lab)).start() == b"\x02\x00\x00\x0e\x01anonymous"
    assert EapPeer(tls_config(lab)).start() == b"\x02\x00\x00\x13\x01alice@lab.test"
    assert EapPeer(peap_config(lab, outer_identity="x@lab.test")).start() == b"\x02\x00\x00\x0f\x01x@lab.test"


def test_inner_header_stripping_and_adding() -> None:
    outer = EapPacket.request(9, EapType.PEAP, b"")
    # FreeRADIUS: Identity request WITH its header; NPS: header-less.
    assert decompress(b"\x01\x05\x00\x05\x01", outer) == EapPacket.request(5, EapType.IDENTITY)
    assert decompress(b"\x01", outer) == EapPacket.request(9, EapType.IDENTITY)
    assert decompress(b"\x1a\x01\x07", outer) == EapPacket.request(9, EapType.MSCHAPV2, b"\x01\x07")
    tlv = b"\x01\x0a\x00\x0b\x21\x80\x03\x00\x02\x00\x01"
    assert decompress(tlv, outer) == EapPacket.request(10, EapType.TLV, b"\x80\x03\x00\x02\x00\x01")
    # Responses: header-less except TLV and expanded types.
    assert compress(EapPacket.response(5, EapType.IDENTITY, b"alice")) == b"\x01alice"
    assert compress(EapPacket.response(5, EapType.NAK, b"\x0d")) == b"\x03\x0d"
    assert compress(EapPacket.response(10, EapType.TLV, b"\x80\x03\x00\x02\x00\x01")) == \
        b"\x02\x0a\x00\x0b\x21\x80\x03\x00\x02\x00\x01"


@pytest.mark.parametrize("vendor_type", [CAPABILITIES_VENDOR_TYPE, SOH_VENDOR_TYPE])
def test_capabilities_and_soh_requests_are_naked_towards_mschapv2(vendor_type: int) -> None:
    phase2 = Phase2(MschapV2Peer("alice", PASSWORD), "alice", bytes(128), resumed=False)
    request = expanded_packet(EapCode.REQUEST, 3, ExpandedType(Vendor.MICROSOFT, vendor_type, b"\x00\x00\x00\x01"))
    assert phase2.process(request.to_bytes(), EapPacket.request(3, EapType.PEAP)) == b"\x03\x1a"


def test_endless_capabilities_requests_are_a_loop() -> None:
    phase2 = Phase2(MschapV2Peer("alice", PASSWORD), "alice", bytes(128), resumed=False)
    request = expanded_packet(EapCode.REQUEST, 3, ExpandedType(Vendor.MICROSOFT, CAPABILITIES_VENDOR_TYPE, b""))
    with pytest.raises(EapPeerError, match="more than 4 times"):
        for _ in range(10):
            phase2.process(request.to_bytes(), EapPacket.request(3, EapType.PEAP))


def test_other_methods_are_naked_and_notifications_answered(lab: pki.Pki) -> None:
    peer = EapPeer(tls_config(lab))
    assert peer.receive(EapPacket.request(1, EapType.MD5_CHALLENGE, b"\x10" + bytes(16)).to_bytes()).reply == \
        b"\x02\x01\x00\x06\x03\x0d"
    assert peer.receive(EapPacket.request(2, EapType.NOTIFICATION, b"Hello").to_bytes()).reply == b"\x02\x02\x00\x05\x02"
    assert peer.notifications == ["Hello"]
    peap = EapPeer(peap_config(lab))
    assert peap.receive(EapPacket.request(7, EapType.TLS, b"\x20").to_bytes()).reply == b"\x02\x07\x00\x06\x03\x19"


def test_unexpected_type_after_the_method_started(lab: pki.Pki) -> None:
    peer = EapPeer(tls_config(lab))
    peer.receive(EapPacket.request(1, EapType.TLS, start_payload()).to_bytes())
    with pytest.raises(EapPeerError) as caught:
        peer.receive(EapPacket.request(2, EapType.MD5_CHALLENGE, b"\x10" + bytes(16)).to_bytes())
    assert caught.value.kind == "eap" and "after eap-tls started" in caught.value.detail
    assert peer.state == "failure"


def test_endless_restarts_are_refused(lab: pki.Pki) -> None:
    peer = EapPeer(tls_config(lab))
    with pytest.raises(EapPeerError, match="more than 3 eap-tls Start messages"):
        for identifier in range(10):
            peer.receive(EapPacket.request(identifier, EapType.TLS, start_payload()).to_bytes())


def test_duplicate_request_gets_the_same_response(lab: pki.Pki) -> None:
    peer = EapPeer(tls_config(lab))
    start = EapPacket.request(1, EapType.TLS, start_payload()).to_bytes()
    assert peer.receive(start).reply == peer.receive(start).reply


def test_success_before_the_method_finished_is_refused(lab: pki.Pki) -> None:
    peer = EapPeer(tls_config(lab))
    with pytest.raises(EapPeerError, match="EAP-Success before eap-tls finished"):
        peer.receive(EapPacket.success(1).to_bytes())
    assert peer.state == "failure" and peer.expected_mppe() is None


def test_failure_ends_cleanly(lab: pki.Pki) -> None:
    peer = EapPeer(tls_config(lab))
    assert peer.receive(EapPacket.failure(1).to_bytes()).reply is None
    assert peer.state == "failure"
    with pytest.raises(EapPeerError, match="already ended"):
        peer.receive(EapPacket.request(2, EapType.IDENTITY).to_bytes())


def test_config_errors_name_the_file_not_the_password(lab: pki.Pki, tmp_path: Path) -> None:
    bad = tmp_path / "nope.pem"
    with pytest.raises(TlsConfigError, match="nope.pem"):
        EapPeer(tls_config(lab, ca_file=bad))
    with pytest.raises(TlsConfigError, match="alice.p12") as caught:
        EapPeer(peer_config("eap-tls", "alice", pkcs12=lab.users["alice"].p12,
                           pkcs12_password="wrong-Password-77"))
    assert "wrong-Password-77" not in str(caught.value)
    with pytest.raises(ValueError, match="needs a password"):
        EapPeer(peer_config("peap-mschapv2", "alice"))
    with pytest.raises(ValueError, match="unknown EAP method"):
        EapPeer(peer_config("pap", "alice"))
    config = peap_config(lab)
    assert PASSWORD not in repr(config) and PASSWORD not in repr(EapPeer(config))


# --------------------------------------------------------------------------- (b) EAP-TLS end to end


@pytest.mark.parametrize("version", ["1.2", "1.3"])
@pytest.mark.parametrize("mtu", [300, 1500])
def test_eap_tls_full_run(lab: pki.Pki, version: str, mtu: int) -> None:
    peer = EapPeer(tls_config(lab, tls_max=version, framed_mtu=mtu))
    server = eap_tls_server(lab, version, mtu)
    wire = run(peer, server.script())
    assert peer.state == "success" and peer.primary_auth_done
    assert server.identity == "alice@lab.test"
    assert peer.expected_mppe() == server.expected_mppe
    msk = server.outer.msk()
    assert peer.expected_mppe() == (msk[32:64], msk[0:32])  # (Send-Key, Recv-Key), server view
    assert peer.cryptobinding == "absent"
    assert all(len(packet) <= mtu - 4 for packet in wire.to_server + wire.to_peer)
    report = peer.tls_report(now=datetime.now(UTC))
    assert report["version"] == f"TLSv{version}" and report["validation"] == "ok" and not report["resumed"]
    assert report["server_cert"]["subject"] == "CN=nps.lab.test"  # type: ignore[index]
    assert report["server_cert"]["san_dns"] == ["nps.lab.test"]  # type: ignore[index]
    assert [c["subject"] for c in report["chain"]] == ["CN=nps.lab.test", f"CN={pki.CA_NAME}"]  # type: ignore[union-attr]
    assert report["client_cert"]["subject"] == "CN=alice"  # type: ignore[index]
    assert 700 <= report["client_cert"]["days_left"] <= 730  # type: ignore[index,operator]


def test_eap_tls_with_pkcs12_and_resumption(lab: pki.Pki) -> None:
    config = peer_config("eap-tls", "alice", pkcs12=lab.users["alice"].p12,
                        pkcs12_password=P12_PASSWORD, ca_file=lab.ca, server_name="nps.lab.test", tls_max="1.2")
    ctx = server_ctx(lab, version="1.2")
    first = EapPeer(config)
    run(first, EapTlsServer(EapTlsSession(TlsEngine(ctx, server=True))).script())
    saved = first.session_for_resumption()
    assert saved is not None
    config.session = saved
    again = EapPeer(config)
    server = EapTlsServer(EapTlsSession(TlsEngine(ctx, server=True)))
    run(again, server.script())
    assert again.state == "success" and again.tls_report()["resumed"] is True
    assert again.expected_mppe() == server.expected_mppe != first.expected_mppe()


def test_server_alert_is_a_clean_failure_with_words(lab: pki.Pki) -> None:
    peer = EapPeer(tls_config(lab, user="expired", tls_max="1.2"))
    server = eap_tls_server(lab, "1.2")

    def script() -> Script:
        handshake = server.script()
        message = yield next(handshake)
        try:
            while True:
                message = yield handshake.send(message)
        except EapTlsError as refused:  # the server session refused the expired certificate
            assert refused.reply is not None
            ack = yield server.request(EapType.TLS, refused.reply)
            assert EapPacket.parse(ack).data == b"\x00"
            yield server.final(EapCode.FAILURE)

    run(peer, script())
    assert peer.state == "failure" and not peer.primary_auth_done
    assert peer.failure_detail == "TLS server sent alert: certificate expired"


# --------------------------------------------------------------------------- PEAP end to end


@pytest.mark.parametrize("binding", ["valid", "absent"])
def test_peap_mschapv2_with_and_without_cryptobinding(lab: pki.Pki, binding: str) -> None:
    peer = EapPeer(peap_config(lab))
    server = peap_server(lab, PeapOptions(cryptobinding=binding), mtu=300)
    wire = run(peer, server.script())
    assert peer.state == "success" and peer.primary_auth_done
    assert peer.cryptobinding == binding
    assert peer.expected_mppe() == server.expected_mppe
    tls_msk = server.outer.key_material()[:64]
    if binding == "absent":
        assert peer.expected_mppe() == (tls_msk[32:64], tls_msk[0:32])
    else:
        assert peer.expected_mppe() != (tls_msk[32:64], tls_msk[0:32])
    assert server.identity == "anonymous" and server.inner_identity == b"\x01alice"
    assert not any(b"alice" in packet for packet in wire.to_server)  # the inner identity stays in the tunnel
    assert peer.tls_report()["version"] == "TLSv1.2"


def test_peap_header_less_identity_and_no_extensions(lab: pki.Pki) -> None:
    peer = EapPeer(peap_config(lab))
    server = peap_server(lab, PeapOptions(identity_header=False, capabilities=False, soh=False))
    run(peer, server.script())
    assert peer.state == "success" and server.inner_identity == b"\x01alice"


def test_peap_wrong_password_is_a_clean_failure(lab: pki.Pki) -> None:
    peer = EapPeer(peap_config(lab, password=b"wrong-one"))
    server = peap_server(lab, PeapOptions())
    run(peer, server.script())
    assert peer.state == "failure" and not peer.primary_auth_done
    assert peer.failure_detail == "MS-CHAPv2 failure E=691 (authentication failure): bad password"
    assert peer.expected_mppe() is None


def test_server_that_does_not_know_the_password(lab: pki.Pki) -> None:
    peer = EapPeer(peap_config(lab))
    forged = PeapOptions(server_proof=lambda proof: b"S=" + bytes(20).hex().upper().encode())
    with pytest.raises(EapPeerError) as caught:
        run(peer, peap_server(lab, forged).script())
    assert (caught.value.kind, caught.value.detail) == ("mschapv2", "server failed to prove knowledge of the password")
    assert not peer.primary_auth_done


def test_tampered_cryptobinding_is_invalid_and_refused_in_the_tunnel(lab: pki.Pki) -> None:
    peer = EapPeer(peap_config(lab))
    server = peap_server(lab, PeapOptions(cryptobinding="tampered"))
    with pytest.raises(EapPeerError) as caught:
        run(peer, server.script())
    assert caught.value.kind == "cryptobinding" and "Compound MAC" in caught.value.detail
    assert peer.cryptobinding == "invalid" and peer.primary_auth_done and peer.state == "failure"
    assert caught.value.reply is not None  # the Result TLV Failure, encrypted for the server
    step = server.outer.receive(EapPacket.parse(caught.value.reply).data)
    refusal = EapPacket.parse(step.app_data)
    assert refusal.type == EapType.TLV
    assert parse_result(parse_tlvs(refusal.data)[0]) is ResultStatus.FAILURE


@pytest.mark.parametrize("mtu", [300, 1500])
def test_peap_tls_naks_mschapv2_then_runs_inner_eap_tls(lab: pki.Pki, mtu: int) -> None:
    config = tls_config(lab, method="peap-tls", framed_mtu=mtu)
    peer = EapPeer(config)
    server = peap_server(lab, PeapOptions(inner="tls", propose_mschapv2_first=True), mtu=mtu)
    wire = run(peer, server.script())
    assert peer.state == "success" and peer.primary_auth_done and peer.cryptobinding == "valid"
    assert peer.expected_mppe() == server.expected_mppe
    assert server.identity == "anonymous"
    assert server.seen_plain[1:4] == [b"\x03\x0d"] * 3  # Capabilities, SoH, MSCHAPv2 proposal
    assert server.fragmented_in_tunnel == 0  # inner fragments fit one outer fragment (FreeRADIUS needs that)
    report = peer.tls_report()
    assert report["validation"] == "ok" and report["inner"]["validation"] == "ok"  # type: ignore[index]
    assert report["client_cert"]["subject"] == "CN=alice"  # type: ignore[index]
    assert all(len(packet) <= mtu - 4 for packet in wire.to_server + wire.to_peer)


# --------------------------------------------------------------------------- (c) fuzz

eap_garbage = st.one_of(
    st.binary(max_size=64),
    st.builds(lambda code, ident, kind, data: bytes((code, ident)) + (len(data) + 5).to_bytes(2, "big")
              + bytes((kind,)) + data,
              st.integers(0, 6), st.integers(0, 255),
              st.sampled_from([1, 2, 3, 4, 13, 25, 26, 33, 254, 0, 255]), st.binary(max_size=48)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(packets=st.lists(eap_garbage, max_size=6), method=st.sampled_from(["eap-tls", "peap-mschapv2"]),
       started=st.booleans())
def test_garbage_raises_only_eap_peer_error(lab: pki.Pki, packets: list[bytes], method: str, started: bool) -> None:
    peer = EapPeer(tls_config(lab) if method == "eap-tls" else peap_config(lab))
    if started:
        peer.receive(EapPacket.request(1, EapType.TLS if method == "eap-tls" else EapType.PEAP,
                                       start_payload()).to_bytes())
    for packet in packets:
        try:
            peer.receive(packet)
        except EapPeerError as exc:
            assert exc.kind in ("tls", "eap", "cryptobinding", "mschapv2")
            assert peer.state == "failure"
            return


@settings(max_examples=300, deadline=None)
@given(data=st.lists(st.one_of(
    st.binary(max_size=64),
    st.builds(lambda ident, kind, body: bytes((1, ident)) + (len(body) + 5).to_bytes(2, "big") + bytes((kind,)) + body,
              st.integers(0, 255), st.sampled_from([1, 2, 3, 26, 33, 254]), st.binary(max_size=80)),
    st.builds(lambda body: b"\x1a" + body, st.binary(max_size=60)),
), max_size=6))
def test_tunnel_garbage_raises_only_eap_peer_error(data: list[bytes]) -> None:
    phase2 = Phase2(MschapV2Peer("alice", PASSWORD), "alice", bytes(128), resumed=False)
    for plain in data:
        try:
            phase2.process(plain, EapPacket.request(4, EapType.PEAP))
        except EapPeerError as exc:
            assert exc.kind in ("tls", "eap", "cryptobinding", "mschapv2")
            return


# --------------------------------------------------------------------------- (d) validation


def test_untrusted_server_ca_stops_before_our_certificate_leaves(lab: pki.Pki) -> None:
    peer = EapPeer(tls_config(lab, tls_max="1.2"))
    server = eap_tls_server(lab, "1.2", cert=lab.untrusted_server_cert, key=lab.untrusted_server_key)
    with pytest.raises(EapPeerError) as caught:
        run(peer, server.script())
    assert caught.value.kind == "tls"
    assert caught.value.detail == ("server certificate not trusted: unable to get local issuer certificate "
                                   f"(CN=nps.lab.test, issuer CN={pki.UNTRUSTED_CA_NAME})")
    assert server.outer.engine.peer_chain() == []  # the server never saw our certificate
    assert peer.tls_report()["validation"] == f"failed: {caught.value.detail}"


def test_wrong_server_name(lab: pki.Pki) -> None:
    peer = EapPeer(peap_config(lab, server_name="vpn.example.com"))
    with pytest.raises(EapPeerError) as caught:
        run(peer, peap_server(lab).script())
    assert caught.value.detail == "server name mismatch: wanted vpn.example.com, certificate has nps.lab.test"


def test_insecure_reports_the_chain_and_what_would_fail(lab: pki.Pki) -> None:
    peer = EapPeer(peap_config(lab, insecure=True, server_name="vpn.example.com"))
    server = peap_server(lab, cert=lab.untrusted_server_cert, key=lab.untrusted_server_key)
    run(peer, server.script())
    assert peer.state == "success"
    report = peer.tls_report()
    assert report["validation"] == "skipped (--insecure)"
    assert report["server_cert"]["issuer"] == f"CN={pki.UNTRUSTED_CA_NAME}"  # type: ignore[index]
    warnings = report["warnings"]
    assert "server certificate validation skipped (--insecure)" in warnings  # type: ignore[operator]
    assert any(w.startswith("would fail: server certificate not trusted") for w in warnings)  # type: ignore[union-attr]
    assert any(w.startswith("would fail: server name mismatch") for w in warnings)  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def odd_servers(lab: pki.Pki, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """Server certificates from the lab CA: expired, wildcard, without EKU, clientAuth only, CN only."""
    ca_cert = x509.load_pem_x509_certificate(lab.ca.read_bytes())
    ca_key = serialization.load_pem_private_key(lab.ca_key.read_bytes(), None)
    now = datetime.now(UTC)
    valid = (now - timedelta(days=1), now + timedelta(days=30))
    kinds: dict[str, dict[str, object]] = {
        "expired": {"dns_names": ["nps.lab.test"], "ekus": [ExtendedKeyUsageOID.SERVER_AUTH],
                    "window": (now - timedelta(days=60), now - timedelta(days=2))},
        "wildcard": {"dns_names": ["*.lab.test"], "ekus": [ExtendedKeyUsageOID.SERVER_AUTH]},
        "noeku": {"dns_names": ["nps.lab.test"], "ekus": []},
        "clientauth": {"dns_names": ["nps.lab.test"], "ekus": [ExtendedKeyUsageOID.CLIENT_AUTH]},
        "cn-only": {"dns_names": [], "ekus": [ExtendedKeyUsageOID.SERVER_AUTH]},
    }
    directory = tmp_path_factory.mktemp("odd")
    out = {}
    for name, spec in kinds.items():
        window = spec.get("window", valid)
        issued = pki.issue_certificate("nps.lab.test", issuer_cert=ca_cert, issuer_key=ca_key,  # type: ignore[arg-type]
                                       not_before=window[0], not_after=window[1],  # type: ignore[index]
                                       ekus=spec["ekus"], dns_names=spec["dns_names"])  # type: ignore[arg-type]
        cert, key = directory / f"{name}.pem", directory / f"{name}.key"
        cert.write_bytes(issued.cert.public_bytes(serialization.Encoding.PEM))
        pki.save_private_key(key, issued.key)
        out[name] = (cert, key)
    return out


@pytest.mark.parametrize(("kind", "server_name", "problem"), [
    ("expired", "nps.lab.test", "server certificate expired: CN=nps.lab.test was valid until "),
    ("noeku", "nps.lab.test", "server certificate has no Extended Key Usage"),
    ("clientauth", "nps.lab.test",
     "server certificate is not for Server Authentication: its Extended Key Usage lists Client Authentication"),
    ("wildcard", "a.b.lab.test", "server name mismatch: wanted a.b.lab.test, certificate has *.lab.test"),
])
def test_certificate_policy_failures(lab: pki.Pki, odd_servers: dict[str, tuple[Path, Path]],
                                     kind: str, server_name: str, problem: str) -> None:
    cert, key = odd_servers[kind]
    peer = EapPeer(tls_config(lab, server_name=server_name))
    with pytest.raises(EapPeerError) as caught:
        run(peer, eap_tls_server(lab, cert=cert, key=key).script())
    assert caught.value.kind == "tls" and caught.value.detail.startswith(problem)


@pytest.mark.parametrize(("kind", "server_name"), [("wildcard", "vpn.lab.test"), ("cn-only", "NPS.lab.test.")])
def test_wildcard_and_cn_fallback_pass(lab: pki.Pki, odd_servers: dict[str, tuple[Path, Path]],
                                       kind: str, server_name: str) -> None:
    cert, key = odd_servers[kind]
    peer = EapPeer(tls_config(lab, server_name=server_name))
    run(peer, eap_tls_server(lab, cert=cert, key=key).script())
    assert peer.state == "success" and peer.tls_report()["validation"] == "ok"


@pytest.mark.parametrize(("pattern", "host", "matches"), [
    ("nps.lab.test", "NPS.Lab.Test", True),
    ("*.lab.test", "nps.lab.test", True),
    ("*.lab.test", "lab.test", False),
    ("*.lab.test", "a.nps.lab.test", False),
    ("*.test", "lab.test", False),
    ("nps*.lab.test", "nps1.lab.test", False),
    ("*.*.test", "a.b.test", False),
    ("nps.lab.test.", "nps.lab.test", True),
])
def test_rfc6125_name_rules(pattern: str, host: str, matches: bool) -> None:
    assert name_matches(pattern, host) is matches


def test_san_present_means_no_cn_fallback(odd_servers: dict[str, tuple[Path, Path]]) -> None:
    cert = x509.load_pem_x509_certificate(odd_servers["wildcard"][0].read_bytes())  # CN=nps.lab.test, SAN *.lab.test
    verdict = validate_server([cert], [], server_name="nps.lab.test", insecure=False)
    assert verdict.status == "ok"
    assert validate_server([cert], [], server_name="lab.test", insecure=False).failed
    assert check_eku(cert) is None


def test_no_server_name_is_a_warning(lab: pki.Pki) -> None:
    peer = EapPeer(tls_config(lab, server_name=None))
    run(peer, eap_tls_server(lab).script())
    assert "server name not checked (no server name configured)" in peer.tls_report()["warnings"]  # type: ignore[operator]


def test_a_chain_problem_names_the_certificate_openssl_meant() -> None:
    """OpenSSL's depth counts its own built chain: with an unrelated CA sent in between, the
    expired intermediate must still be the one named, found by its subject."""
    from datetime import datetime, timedelta, timezone

    from probe.eap.validation import validate_server
    from probe.pki import SERVER_AUTH, issue_certificate

    now = datetime.now(timezone.utc)
    root = issue_certificate("Root", is_ca=True, not_before=now - timedelta(days=900), not_after=now + timedelta(days=900))
    inter = issue_certificate("Intermediate", is_ca=True, issuer_cert=root.cert, issuer_key=root.key,
                              not_before=now - timedelta(days=800), not_after=now - timedelta(days=1))
    other = issue_certificate("Unrelated", is_ca=True, not_before=now - timedelta(days=10),
                              not_after=now + timedelta(days=3650))
    leaf = issue_certificate("nps.lab.test", issuer_cert=inter.cert, issuer_key=inter.key, ekus=(SERVER_AUTH,),
                             dns_names=("nps.lab.test",), not_before=now - timedelta(days=30),
                             not_after=now + timedelta(days=300))
    v = validate_server([leaf.cert, other.cert, inter.cert], ["certificate has expired (depth 1: CN=Intermediate)"],
                        server_name="nps.lab.test", insecure=False)
    assert v.failed and "CN=Intermediate" in v.reason and "Unrelated" not in v.reason, v.reason
