"""EAP-TLS framing, TLS engine and session: both roles over our own code, in memory.

Every handshake here is a real OpenSSL handshake between an EAP peer session
and an EAP server session; every message crosses as an EAP packet (encoded and
parsed again) so size limits are checked on the wire form.
"""

from __future__ import annotations

import hashlib
import hmac
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from OpenSSL import SSL

from probe import pki
from probe.eap.packet import EapCode, EapError, EapPacket, EapType
from probe.eap.tls import (
    EapTlsError,
    EapTlsSession,
    EapTlsStep,
    Flags,
    Fragmenter,
    Reassembler,
    SessionState,
    TlsConfigError,
    TlsEngine,
    TlsPayload,
    ack_payload,
    fragment_size_for_mtu,
    parse_payload,
    start_payload,
)
from probe.credentials import client_context_from_files as client_context  # files are read at the edge
from probe.credentials import server_context_from_files as server_context

P12_PASSWORD = "p12-Secret-Sauce-42"
KEY_PASSPHRASE = "key-Passphrase-Zebra-7"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> pki.Pki:
    """A throw-away PKI from probe.pki: lab CA, server, alice (RSA), ecdsa-user, untrusted user and CA."""
    return pki.init_pki(tmp_path_factory.mktemp("pki"), p12_password=P12_PASSWORD, key_passphrase=KEY_PASSPHRASE)


def peer_ctx(lab: pki.Pki, user: str = "alice", *, max_version: str = "1.3", **kwargs: object) -> SSL.Context:
    kwargs.setdefault("ca_file", lab.ca)
    return client_context(cert_file=lab.users[user].cert, key_file=lab.users[user].key,
                          max_version=max_version, **kwargs)  # type: ignore[arg-type]


def server_ctx(lab: pki.Pki, *, max_version: str = "1.3", **kwargs: object) -> SSL.Context:
    return server_context(cert_file=lab.server_chain, key_file=lab.server_key, ca_file=lab.ca,
                          max_version=max_version, **kwargs)  # type: ignore[arg-type]


@dataclass
class Transcript:
    """Every Type-Data that crossed, by direction, plus EAP wire sizes."""

    to_peer: list[bytes] = field(default_factory=list)
    to_server: list[bytes] = field(default_factory=list)
    wire_sizes: list[int] = field(default_factory=list)

    def all_payloads(self) -> Iterator[bytes]:
        yield from self.to_peer
        yield from self.to_server


def over_the_wire(code: EapCode, identifier: int, eap_type: int, payload: bytes, log: Transcript) -> bytes:
    """Encode as an EAP packet and parse it back, as the peer state machine will."""
    wire = EapPacket(code, identifier, eap_type, payload).to_bytes()
    log.wire_sizes.append(len(wire))
    return EapPacket.parse(wire).data


def converse(peer: EapTlsSession, server: EapTlsSession, *, rounds: int = 60) -> Transcript:
    """Run the exchange until the server session has nothing more to send (EAP-Success is next)."""
    log = Transcript()
    request = server.start()
    for identifier in range(rounds):
        log.to_peer.append(request)
        reply = peer.receive(over_the_wire(EapCode.REQUEST, identifier, peer.eap_type, request, log)).reply
        assert reply is not None, "the EAP-TLS peer always answers a request"
        log.to_server.append(reply)
        step = server.receive(over_the_wire(EapCode.RESPONSE, identifier, peer.eap_type, reply, log))
        if step.reply is None:
            return log
        request = step.reply
    raise AssertionError("the exchange did not finish")


def sessions(lab: pki.Pki, version: str, *, user: str = "alice", mtu: int = 1500,
             keylog: list[bytes] | None = None, **peer_kwargs: object) -> tuple[EapTlsSession, EapTlsSession]:
    sink = keylog.append if keylog is not None else None
    peer = EapTlsSession(TlsEngine(peer_ctx(lab, user, max_version=version, keylog=sink, **peer_kwargs),
                                   server=False), framed_mtu=mtu)
    server = EapTlsSession(TlsEngine(server_ctx(lab, max_version=version), server=True), framed_mtu=mtu)
    return peer, server


def deliver(first: bytes, sender: EapTlsSession, receiver: EapTlsSession) -> EapTlsStep:
    """Carry one possibly fragmented message across, the receiver ACKing each M fragment."""
    payload = first
    while True:
        step = receiver.receive(payload)
        if not parse_payload(payload).flags & Flags.MORE:
            return step
        assert step.reply is not None and parse_payload(step.reply).is_ack
        next_payload = sender.receive(step.reply).reply
        assert next_payload is not None
        payload = next_payload


# --------------------------------------------------------------------------- framing


def test_parse_payload_with_length() -> None:
    payload = parse_payload(bytes.fromhex("c0" "00000010") + b"abc")
    assert payload.flags == Flags.LENGTH | Flags.MORE
    assert payload.tls_length == 16 and payload.data == b"abc" and payload.version == 0


def test_peap_version_bits_and_start() -> None:
    payload = parse_payload(start_payload(1))
    assert payload.flags == Flags.START and payload.version == 1 and payload.data == b""
    assert ack_payload(1) == b"\x01"
    assert parse_payload(b"\x01").is_ack


@pytest.mark.parametrize(("wire", "message"), [(b"", "without a Flags byte"), (b"\x80\x00\x00", "2 of 4")])
def test_parse_payload_rejects_short_input(wire: bytes, message: str) -> None:
    with pytest.raises(EapTlsError, match=message):
        parse_payload(wire)


def test_fragmenter_sets_l_on_the_first_fragment_and_m_on_all_but_the_last() -> None:
    fragmenter = Fragmenter(10)
    message = bytes(range(25))
    first = fragmenter.start(message)
    assert first == bytes.fromhex("c0" "00000019") + message[:10]
    assert fragmenter.pending
    assert fragmenter.next_fragment() == b"\x40" + message[10:20]
    assert fragmenter.next_fragment() == b"\x00" + message[20:]
    assert not fragmenter.pending
    with pytest.raises(RuntimeError):
        fragmenter.next_fragment()


def test_unfragmented_message_still_carries_l() -> None:
    assert Fragmenter(100, version=0).start(b"hello") == bytes.fromhex("80" "00000005") + b"hello"


@pytest.mark.parametrize(("mtu", "size"), [(1500, 1486), (1344, 1330), (300, 286), (100, 86)])
def test_fragment_size_rule(mtu: int, size: int) -> None:
    assert fragment_size_for_mtu(mtu) == size


@pytest.mark.parametrize("mtu", [99, 0, -1, 3073, 65536, True])
def test_silly_framed_mtu_is_rejected(mtu: int) -> None:
    with pytest.raises(ValueError, match="Framed-MTU"):
        fragment_size_for_mtu(mtu)


def test_reassembler_joins_fragments() -> None:
    reassembler = Reassembler()
    fragmenter = Fragmenter(7)
    message = b"0123456789abcdefghij"
    pieces = [fragmenter.start(message)]
    while fragmenter.pending:
        pieces.append(fragmenter.next_fragment())
    results = [reassembler.add(parse_payload(piece)) for piece in pieces]
    assert results[:-1] == [None] * (len(pieces) - 1)
    assert results[-1] == message
    assert not reassembler.in_progress


def test_announced_gigabyte_is_refused_without_allocating() -> None:
    reassembler = Reassembler()
    tracemalloc.start()
    try:
        with pytest.raises(EapTlsError, match="announced TLS message length 1073741824 exceeds the 65536-byte limit"):
            reassembler.add(parse_payload(b"\xc0" + (1 << 30).to_bytes(4, "big") + b"x" * 100))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_cap_applies_without_l() -> None:
    reassembler = Reassembler(max_message_size=20)
    assert reassembler.add(parse_payload(b"\x40" + b"a" * 15)) is None  # M without L: tolerated
    with pytest.raises(EapTlsError, match="exceeds the 20-byte limit"):
        reassembler.add(parse_payload(b"\x40" + b"a" * 15))


@pytest.mark.parametrize(
    ("fragments", "message"),
    [
        ([b"\xc0\x00\x00\x00\x08abcd", b"\x00abc"], "7 bytes but 8 were announced"),
        ([b"\xc0\x00\x00\x00\x05abcd", b"\x00abc"], "more than the announced 5"),
        ([b"\xc0\x00\x00\x00\x08abcd", b"\x80\x00\x00\x00\x09abcd"], "changed from 8 to 9"),
        ([b"\xc0\x00\x00\x00\x08abcd", b"\x40"], "empty EAP-TLS fragment"),
        ([b"\x80\x00\x00\x00\x03ab"], "2 bytes but 3 were announced"),
    ],
)
def test_reassembler_is_strict_about_lengths(fragments: list[bytes], message: str) -> None:
    reassembler = Reassembler()
    with pytest.raises(EapTlsError, match=message):
        for fragment in fragments:
            reassembler.add(parse_payload(fragment))


def test_l_may_repeat_on_later_fragments() -> None:
    reassembler = Reassembler()
    assert reassembler.add(parse_payload(b"\xc0\x00\x00\x00\x06abc")) is None
    assert reassembler.add(parse_payload(b"\x80\x00\x00\x00\x06def")) == b"abcdef"


# --------------------------------------------------------------------------- full handshakes


def tls12_prf(secret: bytes, label: bytes, seed: bytes, length: int, digest: str) -> bytes:
    """RFC 5246 section 5 P_hash, written out independently of OpenSSL."""
    out, a = b"", label + seed
    while len(out) < length:
        a = hmac.new(secret, a, digest).digest()
        out += hmac.new(secret, a + label + seed, digest).digest()
    return out[:length]


def hkdf_expand_label(secret: bytes, label: bytes, context: bytes, length: int, algorithm: hashes.HashAlgorithm) -> bytes:
    full = b"tls13 " + label
    info = length.to_bytes(2, "big") + bytes((len(full),)) + full + bytes((len(context),)) + context
    return HKDFExpand(algorithm, length, info).derive(secret)


def tls13_exporter(exporter_secret: bytes, label: bytes, context: bytes, length: int, digest: str) -> bytes:
    """RFC 8446 7.5 from the EXPORTER_SECRET key log line."""
    algorithm = hashes.SHA384() if digest == "sha384" else hashes.SHA256()
    empty_hash = hashlib.new(digest, b"").digest()
    derived = hkdf_expand_label(exporter_secret, label, empty_hash, algorithm.digest_size, algorithm)
    return hkdf_expand_label(derived, b"exporter", hashlib.new(digest, context).digest(), length, algorithm)


def keylog_secret(lines: list[bytes], name: bytes) -> bytes:
    for line in lines:
        parts = line.split()
        if parts[0] == name:
            return bytes.fromhex(parts[2].decode())
    raise AssertionError(f"{name!r} not in the key log")


def expected_msk(session: EapTlsSession, keylog: list[bytes]) -> bytes:
    """The MSK by the RFC formulas, from the key log (independent of export_keying_material)."""
    digest = "sha384" if "SHA384" in (session.engine.cipher or "") else "sha256"
    if session.engine.version == "TLSv1.3":
        secret = keylog_secret(keylog, b"EXPORTER_SECRET")
        return tls13_exporter(secret, b"EXPORTER_EAP_TLS_Key_Material", b"\x0d", 128, digest)[:64]
    master = keylog_secret(keylog, b"CLIENT_RANDOM")
    randoms = (session.engine.client_random or b"") + (session.engine.server_random or b"")
    return tls12_prf(master, b"client EAP encryption", randoms, 128, digest)[:64]


def check_framing(log: Transcript, mtu: int) -> None:
    """L on every first fragment, M on all but the last, an ACK for each M, sizes within the MTU."""
    assert max(log.wire_sizes) <= mtu - 4  # the 4-byte EAPOL header is part of the Framed-MTU
    for sent, answers in ((log.to_peer, log.to_server), (log.to_server, log.to_peer[1:])):
        in_message = False
        for index, raw in enumerate(sent):
            payload = parse_payload(raw)
            if payload.data and not in_message:
                assert payload.flags & Flags.LENGTH, "first fragment without L"
            if in_message:
                assert not payload.flags & Flags.LENGTH
            if payload.flags & Flags.MORE:
                assert parse_payload(answers[index]).is_ack, "fragment not acknowledged"
            in_message = bool(payload.flags & Flags.MORE)


@pytest.mark.parametrize("version", ["1.2", "1.3"])
@pytest.mark.parametrize("user", ["alice", "ecdsa-user"])
@pytest.mark.parametrize("mtu", [1500, 1344, 300])
def test_full_handshake_both_roles(lab: pki.Pki, version: str, user: str, mtu: int) -> None:
    keylog: list[bytes] = []
    peer, server = sessions(lab, version, user=user, mtu=mtu, keylog=keylog)
    log = converse(peer, server)

    assert peer.is_complete and server.is_complete
    assert peer.engine.version == server.engine.version == f"TLSv{version}"
    assert len(peer.msk()) == 64
    assert peer.msk() == server.msk() == expected_msk(peer, keylog)
    assert peer.emsk() == server.emsk() != peer.msk()
    assert peer.session_id() == server.session_id() and peer.session_id()[0] == 0x0D
    check_framing(log, mtu)
    if mtu == 300:
        assert sum(1 for raw in log.all_payloads() if parse_payload(raw).flags & Flags.MORE) >= 8
    assert log.to_server[-1] == b"\x00", "the peer's last word is an empty EAP-TLS response"
    assert peer.engine.peer_chain()[0].subject.rfc4514_string() == "CN=nps.lab.test"
    assert server.engine.peer_chain()[0].subject.rfc4514_string() == f"CN={user}"


def test_tls13_commitment_message_is_the_servers_last_word(lab: pki.Pki) -> None:
    peer, server = sessions(lab, "1.3")
    log = converse(peer, server)
    # The server's last request carries the commitment; the peer moved from WAIT_COMMITMENT to DONE on it.
    last_request = parse_payload(log.to_peer[-1])
    assert last_request.data and not last_request.flags & Flags.MORE
    assert peer.state is SessionState.DONE


def test_tls13_peer_rejects_application_data_instead_of_commitment(lab: pki.Pki) -> None:
    # A tunnel-mode server (PEAP semantics) never sends 0x00: it sends real data after the handshake.
    peer = EapTlsSession(TlsEngine(peer_ctx(lab, max_version="1.3"), server=False))
    server = EapTlsSession(TlsEngine(server_ctx(lab, max_version="1.3"), server=True), eap_type=EapType.PEAP)
    request = server.start()
    while server.state is not SessionState.TUNNEL:
        reply = peer.receive(request).reply
        assert reply is not None
        step = server.receive(reply)
        request = step.reply if step.reply is not None else b""
    assert peer.state is SessionState.WAIT_COMMITMENT
    if request:  # the server's session tickets, the tail of the handshake
        assert deliver(request, server, peer).reply == b"\x00"
    with pytest.raises(EapTlsError, match="expected the TLS 1.3 commitment message 0x00") as caught:
        peer.receive(server.send_app(b"inner identity request"))
    assert caught.value.state == "wait_commitment"
    assert peer.state is SessionState.FAILED


def test_keylog_lines_are_nss_format(lab: pki.Pki) -> None:
    keylog: list[bytes] = []
    peer, server = sessions(lab, "1.2", keylog=keylog)
    converse(peer, server)
    label, client_random, master = keylog[0].split()
    assert label == b"CLIENT_RANDOM"
    assert bytes.fromhex(client_random.decode()) == peer.engine.client_random
    assert len(bytes.fromhex(master.decode())) == 48


# --------------------------------------------------------------------------- failures


def test_untrusted_client_certificate_fails_on_the_server(lab: pki.Pki) -> None:
    for version in ("1.2", "1.3"):
        peer, server = sessions(lab, version, user="untrusted")
        with pytest.raises(EapTlsError) as caught:
            converse(peer, server)
        error = caught.value
        assert error.reason.startswith("certificate verify failed: unable to get local issuer certificate")
        assert "CN=untrusted" in error.reason
        assert error.state == "handshake" and server.state is SessionState.FAILED
        # The alert our server produced reaches the peer, which reports it in words.
        assert error.reply is not None
        with pytest.raises(EapTlsError, match="server sent alert: unknown ca"):
            peer.receive(error.reply)


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_untrusted_server_ca_fails_on_the_peer(lab: pki.Pki, version: str) -> None:
    peer, server = sessions(lab, version, ca_file=lab.untrusted_ca)
    with pytest.raises(EapTlsError, match="certificate verify failed: self-signed certificate in certificate chain") \
            as caught:
        converse(peer, server)
    assert peer.state is SessionState.FAILED
    assert caught.value.reply is not None
    with pytest.raises(EapTlsError, match="client sent alert: unknown ca"):
        server.receive(caught.value.reply)


def test_verification_off_captures_chain_and_problems(lab: pki.Pki) -> None:
    peer, server = sessions(lab, "1.2", ca_file=lab.untrusted_ca, verify=False)
    converse(peer, server)
    assert peer.is_complete
    assert [c.subject.rfc4514_string() for c in peer.engine.peer_chain()] == [
        "CN=nps.lab.test", f"CN={pki.CA_NAME}"]
    assert any("self-signed certificate in certificate chain" in p for p in peer.engine.verify_problems)


def test_version_mismatch_is_reported_in_words(lab: pki.Pki) -> None:
    peer = EapTlsSession(TlsEngine(peer_ctx(lab, min_version="1.3", max_version="1.3"), server=False))
    server = EapTlsSession(TlsEngine(server_ctx(lab, max_version="1.2"), server=True))
    with pytest.raises(EapTlsError, match="unsupported protocol") as caught:
        converse(peer, server)
    assert caught.value.reply is not None
    with pytest.raises(EapTlsError, match="server sent alert: protocol version"):
        peer.receive(caught.value.reply)


def test_peer_needs_start_first(lab: pki.Pki) -> None:
    peer, _ = sessions(lab, "1.2")
    with pytest.raises(EapTlsError, match="expected a Start message first") as caught:
        peer.receive(b"\x80\x00\x00\x00\x01x")
    assert caught.value.state == "idle"
    with pytest.raises(EapTlsError, match="already failed"):
        peer.receive(start_payload())


def test_data_instead_of_ack_is_refused(lab: pki.Pki) -> None:
    peer, server = sessions(lab, "1.3", mtu=300)
    first = peer.receive(server.start()).reply
    assert first is not None and parse_payload(first).flags & Flags.MORE
    with pytest.raises(EapTlsError, match="expected an ACK for our fragment"):
        peer.receive(b"\x80\x00\x00\x00\x01x")


def test_second_start_is_refused(lab: pki.Pki) -> None:
    peer, server = sessions(lab, "1.2")
    peer.receive(server.start())
    with pytest.raises(EapTlsError, match="unexpected EAP-TLS Start"):
        peer.receive(start_payload())


# --------------------------------------------------------------------------- resumption


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_session_resumption(lab: pki.Pki, version: str) -> None:
    client = peer_ctx(lab, max_version=version)
    server = server_ctx(lab, max_version=version)
    first_peer = EapTlsSession(TlsEngine(client, server=False))
    first_log = converse(first_peer, EapTlsSession(TlsEngine(server, server=True)))
    assert not first_peer.engine.session_reused
    saved = first_peer.engine.session
    assert saved is not None

    peer = EapTlsSession(TlsEngine(client, server=False, session=saved))
    again = EapTlsSession(TlsEngine(server, server=True))
    log = converse(peer, again)
    assert peer.engine.session_reused and again.engine.session_reused
    assert peer.is_complete and again.is_complete
    assert peer.msk() == again.msk() != first_peer.msk()
    assert len(log.to_peer) < len(first_log.to_peer)


# --------------------------------------------------------------------------- tunnel (PEAP) mode


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_tunnel_mode_carries_application_data_both_ways(lab: pki.Pki, version: str) -> None:
    peer = EapTlsSession(TlsEngine(peer_ctx(lab, max_version=version), server=False),
                         eap_type=EapType.PEAP, framed_mtu=300, version=0)
    server = EapTlsSession(TlsEngine(server_context(cert_file=lab.server_chain, key_file=lab.server_key,
                                                    client_cert="none", max_version=version), server=True),
                           eap_type=EapType.PEAP, framed_mtu=300)
    request = server.start()
    step = None
    for _ in range(30):
        reply = peer.receive(request).reply
        assert reply is not None
        step = server.receive(reply)
        if step.reply is None:
            break
        request = step.reply
    assert step is not None and step.reply is None and step.app_data == b""
    assert peer.state is SessionState.TUNNEL and server.state is SessionState.TUNNEL

    inner = bytes(range(256)) * 20  # 5 KiB: many fragments at MTU 300
    received = deliver(server.send_app(inner), server, peer)
    assert received.reply is None and received.app_data == inner

    got = server.receive(peer.send_app(b"inner response"))
    assert got.reply is None and got.app_data == b"inner response"
    assert peer.msk() == server.msk()


# --------------------------------------------------------------------------- configuration


def test_pkcs12_client_credentials_work(lab: pki.Pki) -> None:
    client = client_context(pkcs12_file=lab.users["alice"].p12, pkcs12_password=P12_PASSWORD, ca_file=lab.ca)
    peer = EapTlsSession(TlsEngine(client, server=False))
    server = EapTlsSession(TlsEngine(server_ctx(lab), server=True))
    converse(peer, server)
    assert server.engine.peer_chain()[0].subject.rfc4514_string() == "CN=alice"


def test_wrong_pkcs12_password_is_named_but_not_shown(lab: pki.Pki) -> None:
    wrong = "Not-The-Password-99"
    with pytest.raises(TlsConfigError) as caught:
        client_context(pkcs12_file=lab.users["alice"].p12, pkcs12_password=wrong)
    text = f"{caught.value} {caught.value!r} {caught.value.__context__!r} {caught.value.__cause__!r}"
    assert str(lab.users["alice"].p12) in str(caught.value) and "wrong password" in str(caught.value)
    assert wrong not in text and P12_PASSWORD not in text


def test_encrypted_key_with_wrong_passphrase(lab: pki.Pki) -> None:
    user = lab.users["alice"]
    assert user.encrypted_key is not None
    wrong = "Wrong-Passphrase-11"
    with pytest.raises(TlsConfigError, match="password is wrong") as caught:
        client_context(cert_file=user.cert, key_file=user.encrypted_key, key_password=wrong)
    assert wrong not in str(caught.value) and KEY_PASSPHRASE not in str(caught.value)
    with pytest.raises(TlsConfigError, match="encrypted and no password"):
        client_context(cert_file=user.cert, key_file=user.encrypted_key)
    client_context(cert_file=user.cert, key_file=user.encrypted_key, key_password=KEY_PASSPHRASE)


def test_key_that_does_not_match_the_certificate(lab: pki.Pki) -> None:
    with pytest.raises(TlsConfigError, match="does not match the certificate"):
        client_context(cert_file=lab.users["alice"].cert, key_file=lab.users["ecdsa-user"].key)


def test_unreadable_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(TlsConfigError, match=f"CA file {missing}: cannot read"):
        client_context(ca_file=missing)


def test_ca_file_that_is_not_pem(lab: pki.Pki, tmp_path: Path) -> None:
    der = tmp_path / "ca.der"
    der.write_bytes(pki.x509.load_pem_x509_certificate(lab.ca.read_bytes()).public_bytes(
        serialization.Encoding.DER))
    with pytest.raises(TlsConfigError, match=f"CA file {der}: not a PEM certificate file"):
        client_context(ca_file=der)


@pytest.mark.parametrize(("low", "high", "message"), [
    ("1.2", "1.4", "unknown TLS version '1.4'"),
    ("TLSv1.2", "1.3", "unknown TLS version 'TLSv1.2'"),
    ("1.3", "1.2", "min version 1.3 is above max version 1.2"),
])
def test_bad_tls_versions(low: str, high: str, message: str) -> None:
    with pytest.raises(TlsConfigError, match=message):
        client_context(min_version=low, max_version=high, verify=False)


def test_server_needs_credentials_and_a_ca_to_verify(lab: pki.Pki) -> None:
    with pytest.raises(TlsConfigError, match="needs a certificate and key"):
        server_context()
    with pytest.raises(TlsConfigError, match="needs a CA file"):
        server_context(cert_file=lab.server_chain, key_file=lab.server_key)


def test_tls10_still_negotiates_when_allowed(lab: pki.Pki) -> None:
    peer = EapTlsSession(TlsEngine(peer_ctx(lab, min_version="1.0", max_version="1.0"), server=False))
    server = EapTlsSession(TlsEngine(server_ctx(lab, min_version="1.0", max_version="1.0"), server=True))
    converse(peer, server)
    assert peer.engine.version == "TLSv1" and peer.msk() == server.msk()


# --------------------------------------------------------------------------- fuzzing


@pytest.fixture(scope="module")
def contexts(lab: pki.Pki) -> tuple[SSL.Context, SSL.Context]:
    return peer_ctx(lab), server_ctx(lab)


fragments = st.lists(
    st.one_of(
        st.binary(max_size=40),
        st.builds(lambda flags, length, data: TlsPayload(Flags(flags), 0, length, data).to_bytes(),
                  st.sampled_from([0x80, 0xC0, 0x40, 0x00, 0x20, 0xA0]),
                  st.one_of(st.integers(0, 70000), st.just(1 << 30)), st.binary(max_size=40)),
    ),
    max_size=8,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=fragments, as_server=st.booleans())
def test_garbage_raises_only_eap_errors(contexts: tuple[SSL.Context, SSL.Context], garbage: list[bytes],
                                        as_server: bool) -> None:
    client, server = contexts
    session = EapTlsSession(TlsEngine(server if as_server else client, server=as_server), framed_mtu=100)
    if as_server:
        session.start()
    else:
        session.receive(start_payload())
    for payload in garbage:
        try:
            session.receive(payload)
        except EapError:
            assert session.state is SessionState.FAILED
            return
