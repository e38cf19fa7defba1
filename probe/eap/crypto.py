"""Key-derivation primitives shared by the EAP methods (sans-IO, no clock).

At run time both roles take their EAP keys from OpenSSL's exporter
(probe/eap/tls.py). The TLS pseudo-random functions here are the independent
reference: written from the RFCs (2246/4346 for TLS 1.0/1.1, 5246 for TLS
1.2) and proven against published vectors, they are what the tests use to
prove that the exporter gives the RFC 5216 / RFC 9190 keys (SHA-256 and
SHA-384 suites alike). MD4 and the MPPE key split are used at run time.

MD4 lives here too: OpenSSL 3 no longer offers it through hashlib, and
MS-CHAPv2 (RFC 2759) cannot work without it.
"""

from __future__ import annotations

import enum
import hmac
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = [
    "EAP_TLS_KEY_LABEL",
    "EAP_TLS13_EXPORTER_LABEL",
    "EapKeys",
    "Exporter",
    "MppeKeys",
    "Prf",
    "Role",
    "md4",
    "p_hash",
    "prf_for_session",
    "rfc5216_key_material",
    "rfc5216_msk",
    "rfc9190_msk",
    "split_mppe_keys",
    "tls10_prf",
    "tls12_prf_sha256",
    "tls12_prf_sha384",
]

#: RFC 5216 section 2.3 label for the TLS 1.0-1.2 key block ("client EAP encryption").
EAP_TLS_KEY_LABEL = b"client EAP encryption"
#: RFC 9190 section 2.3 exporter label for EAP-TLS with TLS 1.3.
EAP_TLS13_EXPORTER_LABEL = b"EXPORTER_EAP_TLS_Key_Material"
_EAP_TYPE_TLS = 13
_KEY_BLOCK_LEN = 128  # MSK (64) || EMSK (64)
_MSK_LEN = 64

#: A TLS PRF: ``prf(secret, label, seed, length) -> bytes``.
Prf = Callable[[bytes, bytes, bytes, int], bytes]
#: A keying-material exporter: ``export(label, length, context) -> bytes``
#: (pyOpenSSL: ``lambda l, n, c: conn.export_keying_material(l, n, c)``).
Exporter = Callable[[bytes, int, bytes], bytes]


class Role(enum.Enum):
    """Which end of the EAP conversation derives a key.

    MPPE keys are directional: the peer's send key is the server's receive
    key. RADIUS carries the *authenticator's* view (the NAS is on the server
    side of the link), so an Access-Accept's MS-MPPE-Recv-Key equals the
    SERVER role's ``recv_key``.
    """

    PEER = "peer"
    SERVER = "server"


@dataclass(frozen=True)
class MppeKeys:
    """A direction-resolved key pair; the repr never shows key bytes."""

    send_key: bytes = field(repr=False)
    recv_key: bytes = field(repr=False)


@dataclass(frozen=True)
class EapKeys:
    """The MSK and EMSK an EAP method exports (RFC 5247); repr hides them."""

    msk: bytes = field(repr=False)
    emsk: bytes = field(repr=False)


# --------------------------------------------------------------------------
# MD4 (RFC 1320)
# --------------------------------------------------------------------------

_MASK32 = 0xFFFFFFFF


def _rotl(value: int, shift: int) -> int:
    value &= _MASK32
    return ((value << shift) | (value >> (32 - shift))) & _MASK32


def _md4_pad(data: bytes) -> bytes:
    """Append the RFC 1320 padding: 0x80, zeros to 56 mod 64, 64-bit LE bit count."""
    bit_len = (8 * len(data)) & 0xFFFFFFFFFFFFFFFF
    padding = b"\x80" + b"\x00" * ((55 - len(data)) % 64)
    return data + padding + struct.pack("<Q", bit_len)


def _md4_block(state: tuple[int, int, int, int], block: bytes) -> tuple[int, int, int, int]:
    """Run the three MD4 rounds of RFC 1320 section 3.4 over one 64-byte block."""
    x = struct.unpack("<16I", block)
    a, b, c, d = state

    def f(u: int, v: int, w: int) -> int:
        return (u & v) | (~u & w)

    def g(u: int, v: int, w: int) -> int:
        return (u & v) | (u & w) | (v & w)

    def h(u: int, v: int, w: int) -> int:
        return u ^ v ^ w

    for i in (0, 4, 8, 12):
        a = _rotl(a + f(b, c, d) + x[i], 3)
        d = _rotl(d + f(a, b, c) + x[i + 1], 7)
        c = _rotl(c + f(d, a, b) + x[i + 2], 11)
        b = _rotl(b + f(c, d, a) + x[i + 3], 19)
    for i in (0, 1, 2, 3):
        a = _rotl(a + g(b, c, d) + x[i] + 0x5A827999, 3)
        d = _rotl(d + g(a, b, c) + x[i + 4] + 0x5A827999, 5)
        c = _rotl(c + g(d, a, b) + x[i + 8] + 0x5A827999, 9)
        b = _rotl(b + g(c, d, a) + x[i + 12] + 0x5A827999, 13)
    for i in (0, 2, 1, 3):
        a = _rotl(a + h(b, c, d) + x[i] + 0x6ED9EBA1, 3)
        d = _rotl(d + h(a, b, c) + x[i + 8] + 0x6ED9EBA1, 9)
        c = _rotl(c + h(d, a, b) + x[i + 4] + 0x6ED9EBA1, 11)
        b = _rotl(b + h(c, d, a) + x[i + 12] + 0x6ED9EBA1, 15)
    return (
        (state[0] + a) & _MASK32,
        (state[1] + b) & _MASK32,
        (state[2] + c) & _MASK32,
        (state[3] + d) & _MASK32,
    )


def md4(data: bytes) -> bytes:
    """MD4 digest (RFC 1320); needed by NtPasswordHash, absent from OpenSSL 3."""
    state = (0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476)
    padded = _md4_pad(bytes(data))
    for offset in range(0, len(padded), 64):
        state = _md4_block(state, padded[offset : offset + 64])
    return struct.pack("<4I", *state)


# --------------------------------------------------------------------------
# TLS PRFs
# --------------------------------------------------------------------------


def p_hash(hash_name: str, secret: bytes, seed: bytes, length: int) -> bytes:
    """P_hash of RFC 5246 section 5: HMAC chain A(i) expanded to ``length`` bytes."""
    if length < 0:
        raise ValueError("length must not be negative")
    out = bytearray()
    a = seed
    while len(out) < length:
        a = hmac.digest(secret, a, hash_name)
        out += hmac.digest(secret, a + seed, hash_name)
    return bytes(out[:length])


def tls10_prf(secret: bytes, label: bytes, seed: bytes, length: int) -> bytes:
    """TLS 1.0/1.1 PRF (RFC 2246 section 5): P_MD5 over S1 xor P_SHA1 over S2.

    S1 and S2 are the two halves of the secret; with an odd length they
    share the middle byte.
    """
    half = (len(secret) + 1) // 2
    s1, s2 = secret[:half], secret[len(secret) - half :]
    md5_part = p_hash("md5", s1, label + seed, length)
    sha_part = p_hash("sha1", s2, label + seed, length)
    return bytes(x ^ y for x, y in zip(md5_part, sha_part))


def tls12_prf_sha256(secret: bytes, label: bytes, seed: bytes, length: int) -> bytes:
    """TLS 1.2 PRF with SHA-256, the default for TLS 1.2 cipher suites."""
    return p_hash("sha256", secret, label + seed, length)


def tls12_prf_sha384(secret: bytes, label: bytes, seed: bytes, length: int) -> bytes:
    """TLS 1.2 PRF with SHA-384, used by the *_SHA384 suites (e.g. AES256-GCM-SHA384)."""
    return p_hash("sha384", secret, label + seed, length)


def prf_for_session(protocol_version: str, cipher_name: str) -> Prf:
    """Pick the PRF a TLS 1.0-1.2 session used, from pyOpenSSL's names.

    ``protocol_version`` is ``Connection.get_protocol_version_name()``
    ("TLSv1", "TLSv1.1", "TLSv1.2"); ``cipher_name`` is
    ``Connection.get_cipher_name()``. TLS 1.2 suites ending in SHA384 use
    the SHA-384 PRF; every other TLS 1.2 suite uses SHA-256. TLS 1.3 has
    no PRF of this kind (use :func:`rfc9190_msk`), so it is refused.
    """
    if protocol_version in ("TLSv1", "TLSv1.1"):
        return tls10_prf
    if protocol_version == "TLSv1.2":
        return tls12_prf_sha384 if cipher_name.upper().endswith("SHA384") else tls12_prf_sha256
    raise ValueError(f"no TLS PRF for protocol {protocol_version!r}")


# --------------------------------------------------------------------------
# EAP-TLS key material (RFC 5216, RFC 9190)
# --------------------------------------------------------------------------


def rfc5216_key_material(
    master_secret: bytes,
    client_random: bytes,
    server_random: bytes,
    prf: Prf,
    length: int = _KEY_BLOCK_LEN,
) -> bytes:
    """``PRF(master, "client EAP encryption", client.random || server.random)``.

    PEAP's tunnel key is the first 60 bytes of this same stream; EAP-TLS's
    MSK/EMSK are the first 128.
    """
    if len(client_random) != 32 or len(server_random) != 32:
        raise ValueError("TLS randoms are 32 bytes each")
    return prf(master_secret, EAP_TLS_KEY_LABEL, client_random + server_random, length)


def rfc5216_msk(master_secret: bytes, client_random: bytes, server_random: bytes, prf: Prf) -> EapKeys:
    """EAP-TLS (TLS <= 1.2) MSK = key block[0:64], EMSK = key block[64:128]."""
    block = rfc5216_key_material(master_secret, client_random, server_random, prf)
    return EapKeys(msk=block[:_MSK_LEN], emsk=block[_MSK_LEN:])


def rfc9190_msk(export: Exporter, eap_type: int = _EAP_TYPE_TLS) -> EapKeys:
    """EAP-TLS with TLS 1.3 (RFC 9190 section 2.3).

    Key_Material = TLS-Exporter("EXPORTER_EAP_TLS_Key_Material", Type-Code,
    128), MSK its first 64 bytes, EMSK the next 64. The context is the one
    EAP type octet: 0x0D for EAP-TLS (RFC 9427 reuses the label with 0x19
    for PEAP, hence the parameter).
    """
    if not 0 <= eap_type <= 255:
        raise ValueError("eap_type is one octet")
    block = export(EAP_TLS13_EXPORTER_LABEL, _KEY_BLOCK_LEN, bytes([eap_type]))
    if len(block) != _KEY_BLOCK_LEN:
        raise ValueError(f"exporter returned {len(block)} bytes, expected {_KEY_BLOCK_LEN}")
    return EapKeys(msk=block[:_MSK_LEN], emsk=block[_MSK_LEN:])


def split_mppe_keys(key_material: bytes, role: Role) -> MppeKeys:
    """Split 64 bytes into 32-byte MPPE keys for one role.

    [MS-PEAP] 3.1.5.7 (CSK with cryptobinding, or the RFC 5216 key material
    without): the first 32 bytes are the peer's send key and the server's
    receive key; the next 32 the peer's receive key and the server's send
    key. EAP-TLS uses the same split of its MSK (RFC 2716/5216).
    """
    if len(key_material) < 64:
        raise ValueError("need at least 64 bytes of key material")
    first, second = key_material[:32], key_material[32:64]
    if role is Role.PEER:
        return MppeKeys(send_key=first, recv_key=second)
    return MppeKeys(send_key=second, recv_key=first)

