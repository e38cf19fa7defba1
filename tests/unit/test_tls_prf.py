"""TLS PRFs and EAP-TLS key derivation, proven two ways.

1. Published vectors: the TLS 1.2 P_SHA256/P_SHA384 vectors posted to the
   IETF TLS list (msg03416, reproduced in Botan, GnuTLS, netty ...), the
   TLS 1.0 PRF vectors of GnuTLS's tests/tls10-prf.c, and RFC 1320 for MD4.
2. Real handshakes: two pyOpenSSL memory-BIO Connections run TLS and
   OpenSSL's own exporter must equal our PRF over the session's master
   secret and randoms - for a SHA-256 and a SHA-384 suite, and (when the
   local OpenSSL still permits it) TLS 1.0.
"""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL

from probe.eap.crypto import (
    EAP_TLS_KEY_LABEL,
    MppeKeys,
    Role,
    md4,
    prf_for_session,
    rfc5216_key_material,
    rfc5216_msk,
    rfc9190_msk,
    split_mppe_keys,
    tls10_prf,
    tls12_prf_sha256,
    tls12_prf_sha384,
)

# --------------------------------------------------------------------------
# Published vectors
# --------------------------------------------------------------------------

MD4_RFC1320 = [
    (b"", "31d6cfe0d16ae931b73c59d7e0c089c0"),
    (b"a", "bde52cb31de33e46245e05fbdbd6fb24"),
    (b"abc", "a448017aaf21d8525fc10ae87aa6729d"),
    (b"message digest", "d9130a8164549fe818874806e1c7014b"),
    (b"abcdefghijklmnopqrstuvwxyz", "d79e1c308aa5bbcdeea8ed63df412da9"),
    (b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "043f8582f241db351ce627e153e7f0e4"),
    (b"1234567890" * 8, "e33b4ddc9c38f2199c3e7b164fcc0536"),
]


@pytest.mark.parametrize(("message", "digest"), MD4_RFC1320)
def test_md4_rfc1320_suite(message: bytes, digest: str) -> None:
    assert md4(message).hex() == digest


def test_md4_block_boundaries_are_padded_correctly() -> None:
    # 55, 56 and 64 bytes are where the padding spills into a second block;
    # the 62- and 80-byte RFC inputs above cross it, these pin the edges
    # against each other (a wrong pad makes neighbours collide or repeat).
    digests = {md4(b"x" * n) for n in (55, 56, 63, 64, 65)}
    assert len(digests) == 5


def test_tls12_prf_sha256_ietf_vector() -> None:
    out = tls12_prf_sha256(
        bytes.fromhex("9bbe436ba940f017b17652849a71db35"),
        b"test label",
        bytes.fromhex("a0ba9f936cda311827a6f796ffd5198c"),
        100,
    )
    assert out.hex() == (
        "e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a"
        "6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab"
        "4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff701"
        "87347b66"
    )


def test_tls12_prf_sha384_ietf_vector() -> None:
    out = tls12_prf_sha384(
        bytes.fromhex("b80b733d6ceefcdc71566ea48e5567df"),
        b"test label",
        bytes.fromhex("cd665cf6a8447dd6ff8b27555edb7465"),
        148,
    )
    assert out.hex() == (
        "7b0c18e9ced410ed1804f2cfa34a336a1c14dffb4900bb5fd7942107e81c83cd"
        "e9ca0faa60be9fe34f82b1233c9146a0e534cb400fed2700884f9dc236f80edd"
        "8bfa961144c9e8d792eca722a7b32fc3d416d473ebc2c5fd4abfdad05d918425"
        "9b5bf8cd4d90fa0d31e2dec479e4f1a26066f2eea9a69236a3e52655c9e9aee6"
        "91c8f3a26854308d5eaa3be85e0990703d73e56f"
    )


# GnuTLS tests/tls10-prf.c: (secret, seed, expected) with label "test label".
TLS10_VECTORS = [
    (
        "263bdbbb6f6d4c664e058d0aa9d321be",
        "b920573b199601024f04d6dc61966e65",
        "6617993765fa6ca703d19ec70dd5dd160ffcc07725fafb714a9f815a2a30bfb7e3bbfb7eee574b3b613eb7fe80eec9691d8c1b0e"
        "2d9b3c8b4b02b6b6d6db88e2094623ef6240607eda7abe3c846e82a3",
    ),
    ("bf31fe6c78ebf0ff9ce8bb5dd9d1f83d", "7fc4583d19871d962760f358a18696c8", "8318f382c49fd5af7d6fdb4cbb31dfef"),
    (
        "0addfc84435b9ac1ef523ef44791a784bf55757dea17837c1a72beec1bdb1850",
        "74e849d11ad8a98d9bc2291dbceec26ff9",
        "3c221520c48bcb3a0eb3734a",
    ),
    (
        "4074939b440a08a285bc7208485c531f0bbd4c101d71bdba33ec066791e4678c",
        "8aff0c770c1d60455ee48f220c9adb471e5fee27c88c1f33",
        "3a9aee040bbf3cf7009210e64bbdad1775ccf1b46b3a965d5f15168e9ddaa7cc6a7c0c117848",
    ),
]


@pytest.mark.parametrize(("secret", "seed", "expected"), TLS10_VECTORS)
def test_tls10_prf_gnutls_vectors(secret: str, seed: str, expected: str) -> None:
    out = tls10_prf(bytes.fromhex(secret), b"test label", bytes.fromhex(seed), len(expected) // 2)
    assert out.hex() == expected


def test_tls10_prf_odd_secret_shares_the_middle_byte() -> None:
    # RFC 2246 5: with an odd-length secret S1 and S2 overlap by one byte.
    # Flipping that middle byte must change both halves' contribution; a
    # split that drops it would leave the output unchanged.
    base = bytes(range(1, 8))
    flipped = base[:3] + bytes([base[3] ^ 0xFF]) + base[4:]
    assert tls10_prf(base, b"l", b"s", 32) != tls10_prf(flipped, b"l", b"s", 32)


def test_prf_for_session_picks_sha384_only_for_sha384_suites() -> None:
    assert prf_for_session("TLSv1.2", "ECDHE-RSA-AES256-GCM-SHA384") is tls12_prf_sha384
    assert prf_for_session("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256") is tls12_prf_sha256
    assert prf_for_session("TLSv1.2", "AES128-SHA") is tls12_prf_sha256
    assert prf_for_session("TLSv1", "AES128-SHA") is tls10_prf
    with pytest.raises(ValueError):
        prf_for_session("TLSv1.3", "TLS_AES_128_GCM_SHA256")


def test_split_mppe_keys_roles_mirror_each_other() -> None:
    material = bytes(range(64))
    peer = split_mppe_keys(material, Role.PEER)
    server = split_mppe_keys(material, Role.SERVER)
    assert peer == MppeKeys(send_key=material[:32], recv_key=material[32:])
    assert peer.send_key == server.recv_key and peer.recv_key == server.send_key
    assert material[:8].hex() not in repr(peer)


def test_rfc9190_rejects_a_short_export() -> None:
    with pytest.raises(ValueError):
        rfc9190_msk(lambda label, length, context: b"\x00" * 64)


# --------------------------------------------------------------------------
# Real handshakes between two memory-BIO connections
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server_identity() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A throwaway self-signed ECDSA certificate for the in-memory server."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "prf-test.invalid")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _contexts(
    identity: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], version: int, cipher: bytes | None
) -> tuple[SSL.Context, SSL.Context]:
    server_ctx = SSL.Context(SSL.TLS_METHOD)
    client_ctx = SSL.Context(SSL.TLS_METHOD)
    for ctx in (server_ctx, client_ctx):
        ctx.set_min_proto_version(version)
        ctx.set_max_proto_version(version)
        if cipher is not None:
            ctx.set_cipher_list(cipher)
    server_ctx.use_certificate(identity[0])
    server_ctx.use_privatekey(identity[1])
    return client_ctx, server_ctx


def _handshake(client_ctx: SSL.Context, server_ctx: SSL.Context) -> tuple[SSL.Connection, SSL.Connection]:
    """Pump bytes between two memory-BIO connections until both finish (bounded)."""
    client = SSL.Connection(client_ctx, None)
    server = SSL.Connection(server_ctx, None)
    client.set_connect_state()
    server.set_accept_state()
    done = {"client": False, "server": False}
    for _ in range(50):
        for name, conn, other in (("client", client, server), ("server", server, client)):
            if not done[name]:
                try:
                    conn.do_handshake()
                    done[name] = True
                except SSL.WantReadError:
                    pass
            while True:
                try:
                    other.bio_write(conn.bio_read(65536))
                except SSL.WantReadError:
                    break
        if all(done.values()):
            return client, server
    raise AssertionError("in-memory TLS handshake did not finish in 50 rounds")


@pytest.mark.parametrize(
    ("cipher", "expected_prf"),
    [
        (b"ECDHE-ECDSA-AES128-GCM-SHA256", tls12_prf_sha256),
        (b"ECDHE-ECDSA-AES256-GCM-SHA384", tls12_prf_sha384),
    ],
)
def test_tls12_key_material_matches_openssl_exporter(server_identity, cipher, expected_prf) -> None:
    client, server = _handshake(*_contexts(server_identity, SSL.TLS1_2_VERSION, cipher))
    assert client.get_cipher_name() == cipher.decode()
    prf = prf_for_session(client.get_protocol_version_name(), client.get_cipher_name())
    assert prf is expected_prf

    ours = rfc5216_key_material(client.master_key(), client.client_random(), client.server_random(), prf)
    assert ours == client.export_keying_material(EAP_TLS_KEY_LABEL, 128)
    assert ours == server.export_keying_material(EAP_TLS_KEY_LABEL, 128)

    keys = rfc5216_msk(client.master_key(), client.client_random(), client.server_random(), prf)
    assert keys.msk + keys.emsk == ours and len(keys.msk) == 64


def test_sha256_prf_on_a_sha384_session_disagrees_with_openssl(server_identity) -> None:
    # The classic mistake PROTOCOL-NOTES warns about: hand-rolling SHA-256
    # for an AES256-GCM-SHA384 session. It must visibly fail.
    client, _ = _handshake(*_contexts(server_identity, SSL.TLS1_2_VERSION, b"ECDHE-ECDSA-AES256-GCM-SHA384"))
    wrong = rfc5216_key_material(client.master_key(), client.client_random(), client.server_random(), tls12_prf_sha256)
    assert wrong != client.export_keying_material(EAP_TLS_KEY_LABEL, 128)


def test_tls10_key_material_matches_openssl_exporter(server_identity) -> None:
    try:
        contexts = _contexts(server_identity, SSL.TLS1_VERSION, b"DEFAULT:@SECLEVEL=0")
        client, _ = _handshake(*contexts)
    except (SSL.Error, AssertionError) as exc:
        pytest.skip(f"local OpenSSL refuses TLS 1.0: {exc}")
    assert client.get_protocol_version_name() == "TLSv1"
    prf = prf_for_session("TLSv1", client.get_cipher_name())
    ours = rfc5216_key_material(client.master_key(), client.client_random(), client.server_random(), prf)
    assert ours == client.export_keying_material(EAP_TLS_KEY_LABEL, 128)


def test_rfc9190_msk_agrees_on_both_ends_of_a_tls13_session(server_identity) -> None:
    client, server = _handshake(*_contexts(server_identity, SSL.TLS1_3_VERSION, None))
    assert client.get_protocol_version_name() == "TLSv1.3"

    def exporter(conn: SSL.Connection):
        return lambda label, length, context: conn.export_keying_material(label, length, context)

    peer_keys = rfc9190_msk(exporter(client))
    server_keys = rfc9190_msk(exporter(server))
    assert peer_keys == server_keys
    assert len(peer_keys.msk) == 64 and len(peer_keys.emsk) == 64 and peer_keys.msk != peer_keys.emsk
    # The 0x0D context is part of the derivation: PEAP's 0x19 gives other keys.
    assert rfc9190_msk(exporter(client), eap_type=25).msk != peer_keys.msk
    raw = client.export_keying_material(b"EXPORTER_EAP_TLS_Key_Material", 128, b"\x0d")
    assert peer_keys.msk == raw[:64] and peer_keys.emsk == raw[64:]
