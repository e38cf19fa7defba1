"""MS-CHAPv2 (RFC 2759), its MPPE keys (RFC 3079) and EAP-MSCHAPv2 framing.

Sans-IO: bytes and strings in, bytes out; no sockets, no clock. Both roles
are here because the probe is the peer and the embedded NPS emulator is the
server, and each must check the other with the same arithmetic.

EAP-MSCHAPv2 framing follows draft-kamath-pppext-eap-mschapv2 (and
[MS-CHAP] 2.2): the EAP Type-Data (after the Type octet 26) holds an
MS-CHAPv2 packet whose MS-Length counts from the OpCode to the end; the
peer acknowledges Success/Failure with the bare OpCode octet.

Secrets (passwords, hashes, keys) never appear in exception text or reprs.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from probe.eap.crypto import MppeKeys, Role, md4
from probe.eap.packet import EapError

__all__ = [
    "EAP_TYPE_MSCHAPV2",
    "OP_CHALLENGE",
    "OP_CHANGE_PASSWORD",
    "OP_FAILURE",
    "OP_RESPONSE",
    "OP_SUCCESS",
    "Challenge",
    "FailureAck",
    "FailureRequest",
    "MschapV2Error",
    "Response",
    "SuccessAck",
    "SuccessRequest",
    "build_challenge",
    "build_failure_ack",
    "build_failure_request",
    "build_response",
    "build_success_ack",
    "build_success_request",
    "challenge_hash",
    "challenge_response",
    "check_authenticator_response",
    "check_nt_response",
    "des_key_with_parity",
    "eap_mschapv2_msk",
    "generate_authenticator_response",
    "generate_nt_response",
    "get_asymmetric_start_key",
    "get_master_key",
    "hash_nt_password_hash",
    "mppe_keys",
    "nt_password_hash",
    "parse_request",
    "parse_response",
]

EAP_TYPE_MSCHAPV2 = 26

OP_CHALLENGE = 1
OP_RESPONSE = 2
OP_SUCCESS = 3
OP_FAILURE = 4
OP_CHANGE_PASSWORD = 7

_CHALLENGE_LEN = 16
_NT_RESPONSE_LEN = 24
_RESPONSE_VALUE_LEN = 49  # peer challenge 16 | reserved 8 | NT-Response 24 | flags 1
_HEADER = struct.Struct("!BBH")  # OpCode, MS-CHAPv2-ID, MS-Length
_AUTH_RESPONSE_LEN = 42  # "S=" + 40 hex digits

# RFC 2759 section 8.7 magic constants.
_MAGIC1 = b"Magic server to client signing constant"
_MAGIC2 = b"Pad to make it do more than one iteration"
# RFC 3079 section 3.4 magic constants.
_MASTER_MAGIC = b"This is the MPPE Master Key"
_MAGIC_CLIENT_SEND = (
    b"On the client side, this is the send key; on the server side, it is the receive key."
)
_MAGIC_CLIENT_RECV = (
    b"On the client side, this is the receive key; on the server side, it is the send key."
)
_SHS_PAD1 = b"\x00" * 40
_SHS_PAD2 = b"\xf2" * 40


class MschapV2Error(EapError):
    """A malformed EAP-MSCHAPv2 packet or an out-of-range MS-CHAPv2 input."""


# --------------------------------------------------------------------------
# RFC 2759 section 8: hashes and responses
# --------------------------------------------------------------------------


def _require_len(name: str, value: bytes, length: int) -> None:
    if len(value) != length:
        raise MschapV2Error(f"{name} must be {length} bytes, got {len(value)}")


def _username_bytes(username: str | bytes) -> bytes:
    """The user name as ChallengeHash hashes it: ASCII/UTF-8 without any domain.

    RFC 2759 8.2: only the user name, "excluding any prepended domain name"
    (``DOMAIN\\user`` -> ``user``), enters the hash.
    """
    raw = username.encode("utf-8") if isinstance(username, str) else bytes(username)
    return raw.rsplit(b"\\", 1)[-1]


def nt_password_hash(password: str) -> bytes:
    """NtPasswordHash (RFC 2759 8.3): MD4 over the UTF-16LE password."""
    return md4(password.encode("utf-16-le"))


def hash_nt_password_hash(password_hash: bytes) -> bytes:
    """HashNtPasswordHash (RFC 2759 8.4): MD4 of the 16-byte NT hash."""
    _require_len("password hash", password_hash, 16)
    return md4(password_hash)


def challenge_hash(peer_challenge: bytes, authenticator_challenge: bytes, username: str | bytes) -> bytes:
    """ChallengeHash (RFC 2759 8.2): first 8 bytes of SHA1(peer || auth || user)."""
    _require_len("peer challenge", peer_challenge, _CHALLENGE_LEN)
    _require_len("authenticator challenge", authenticator_challenge, _CHALLENGE_LEN)
    digest = hashlib.sha1(peer_challenge + authenticator_challenge + _username_bytes(username)).digest()
    return digest[:8]


def des_key_with_parity(key7: bytes) -> bytes:
    """Spread 56 key bits over 8 bytes and set odd parity (RFC 2759 9.3).

    Each output byte carries 7 key bits in its high bits; the low bit makes
    the count of set bits odd, as DES engines expect.
    """
    _require_len("DES key", key7, 7)
    bits = int.from_bytes(key7, "big")
    out = bytearray()
    for i in range(8):
        seven = (bits >> (49 - 7 * i)) & 0x7F
        byte = seven << 1
        parity = 1 if bin(byte).count("1") % 2 == 0 else 0
        out.append(byte | parity)
    return bytes(out)


def _des_encrypt(clear: bytes, key7: bytes) -> bytes:
    """DesEncrypt (RFC 2759 8.6): single DES-ECB as 3DES with K1=K2=K3."""
    key8 = des_key_with_parity(key7)
    encryptor = Cipher(TripleDES(key8 * 3), modes.ECB()).encryptor()
    return encryptor.update(clear) + encryptor.finalize()


def challenge_response(challenge: bytes, password_hash: bytes) -> bytes:
    """ChallengeResponse (RFC 2759 8.5): three DES blocks keyed by the zero-padded hash."""
    _require_len("challenge", challenge, 8)
    _require_len("password hash", password_hash, 16)
    z = password_hash + b"\x00" * 5
    return b"".join(_des_encrypt(challenge, z[i : i + 7]) for i in (0, 7, 14))


def generate_nt_response(
    authenticator_challenge: bytes, peer_challenge: bytes, username: str | bytes, password: str
) -> bytes:
    """GenerateNTResponse (RFC 2759 8.1): the 24-byte NT-Response the peer sends."""
    challenge = challenge_hash(peer_challenge, authenticator_challenge, username)
    return challenge_response(challenge, nt_password_hash(password))


def check_nt_response(
    authenticator_challenge: bytes,
    peer_challenge: bytes,
    username: str | bytes,
    password: str,
    nt_response: bytes,
) -> bool:
    """Server side: does the peer's NT-Response prove the password? Constant time."""
    _require_len("NT-Response", nt_response, _NT_RESPONSE_LEN)
    expected = generate_nt_response(authenticator_challenge, peer_challenge, username, password)
    return hmac.compare_digest(expected, nt_response)


def generate_authenticator_response(
    password: str,
    nt_response: bytes,
    peer_challenge: bytes,
    authenticator_challenge: bytes,
    username: str | bytes,
) -> bytes:
    """GenerateAuthenticatorResponse (RFC 2759 8.7): ``b"S="`` + 40 upper-case hex digits."""
    _require_len("NT-Response", nt_response, _NT_RESPONSE_LEN)
    password_hash_hash = hash_nt_password_hash(nt_password_hash(password))
    digest = hashlib.sha1(password_hash_hash + nt_response + _MAGIC1).digest()
    challenge = challenge_hash(peer_challenge, authenticator_challenge, username)
    digest = hashlib.sha1(digest + challenge + _MAGIC2).digest()
    return b"S=" + digest.hex().upper().encode("ascii")


def check_authenticator_response(
    password: str,
    nt_response: bytes,
    peer_challenge: bytes,
    authenticator_challenge: bytes,
    username: str | bytes,
    received: bytes,
) -> bool:
    """CheckAuthenticatorResponse (RFC 2759 8.8), compared in constant time.

    Hex case is normalised first: the RFC prints upper case but the value
    is a number, and a server sending lower case has still proven itself.
    """
    expected = generate_authenticator_response(
        password, nt_response, peer_challenge, authenticator_challenge, username
    )
    return hmac.compare_digest(expected, bytes(received).upper())


# --------------------------------------------------------------------------
# RFC 3079 section 3: MPPE keys
# --------------------------------------------------------------------------


def get_master_key(password_hash_hash: bytes, nt_response: bytes) -> bytes:
    """GetMasterKey (RFC 3079 3.4): SHA1(hash-hash || NT-Response || magic)[:16]."""
    _require_len("password hash hash", password_hash_hash, 16)
    _require_len("NT-Response", nt_response, _NT_RESPONSE_LEN)
    return hashlib.sha1(password_hash_hash + nt_response + _MASTER_MAGIC).digest()[:16]


def get_asymmetric_start_key(master_key: bytes, key_length: int, is_send: bool, is_server: bool) -> bytes:
    """GetAsymmetricStartKey (RFC 3079 3.4).

    The client's send key and the server's receive key share one magic
    string, so a key computed by either end for the same direction agrees.
    """
    _require_len("master key", master_key, 16)
    if key_length not in (8, 16):
        raise MschapV2Error("MPPE start keys are 8 or 16 bytes")
    client_sends = is_send != is_server
    magic = _MAGIC_CLIENT_SEND if client_sends else _MAGIC_CLIENT_RECV
    return hashlib.sha1(master_key + _SHS_PAD1 + magic + _SHS_PAD2).digest()[:key_length]


def _master_key_for(password: str, nt_response: bytes) -> bytes:
    return get_master_key(hash_nt_password_hash(nt_password_hash(password)), nt_response)


def mppe_keys(password: str, nt_response: bytes, role: Role) -> MppeKeys:
    """The 128-bit MPPE send/receive start keys for one role (RFC 3079 3.4)."""
    master = _master_key_for(password, nt_response)
    is_server = role is Role.SERVER
    return MppeKeys(
        send_key=get_asymmetric_start_key(master, 16, True, is_server),
        recv_key=get_asymmetric_start_key(master, 16, False, is_server),
    )


def eap_mschapv2_msk(password: str, nt_response: bytes) -> bytes:
    """The 64-byte EAP-MSCHAPv2 MSK, the same from either role.

    MSK = peer send key | peer receive key (= server receive | server send,
    what hostapd and Windows export), zero-padded to the 64 bytes RFC 3748
    asks of an MSK. Its first 32 bytes are PEAP's inner session key
    ([MS-PEAP] 3.1.5.5.2.2: Peer ISK = InnerMPPESendKey | InnerMPPERecvKey).
    """
    keys = mppe_keys(password, nt_response, Role.PEER)
    return keys.send_key + keys.recv_key + b"\x00" * 32


# --------------------------------------------------------------------------
# EAP-MSCHAPv2 packets (the EAP Type-Data after Type 26)
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Challenge:
    """Server -> peer: OpCode 1 with the 16-byte authenticator challenge."""

    ms_id: int
    challenge: bytes
    name: bytes


@dataclass(frozen=True)
class Response:
    """Peer -> server: OpCode 2 with the 49-byte Response value."""

    ms_id: int
    peer_challenge: bytes
    nt_response: bytes
    flags: int
    name: bytes


@dataclass(frozen=True)
class SuccessRequest:
    """Server -> peer: OpCode 3, message ``S=<authenticator response> M=<text>``."""

    ms_id: int
    authenticator_response: bytes
    message: str


@dataclass(frozen=True)
class FailureRequest:
    """Server -> peer: OpCode 4, message ``E=.. R=.. C=.. V=.. M=..``.

    ``retry`` (R=1) allows another try; ``challenge`` (C=) is the new
    authenticator challenge for it; both are optional on the wire.
    """

    ms_id: int
    error: int
    retry: bool
    challenge: bytes | None
    version: int | None
    message: str


@dataclass(frozen=True)
class SuccessAck:
    """Peer -> server: the bare Success OpCode, acknowledging a good S=."""


@dataclass(frozen=True)
class FailureAck:
    """Peer -> server: the bare Failure OpCode, acknowledging a Failure."""


def _ms_id(ms_id: int) -> int:
    if not 0 <= ms_id <= 255:
        raise MschapV2Error("MS-CHAPv2-ID is one octet")
    return ms_id


def _frame(op: int, ms_id: int, body: bytes) -> bytes:
    length = _HEADER.size + len(body)
    if length > 0xFFFF:
        raise MschapV2Error("EAP-MSCHAPv2 packet too long")
    return _HEADER.pack(op, _ms_id(ms_id), length) + body


def _unframe(data: bytes) -> tuple[int, int, bytes]:
    """Split and check the 4-byte header; MS-Length must equal the data length."""
    if len(data) < _HEADER.size:
        raise MschapV2Error(f"EAP-MSCHAPv2 packet truncated: {len(data)} bytes, header needs 4")
    op, ms_id, ms_length = _HEADER.unpack_from(data)
    if ms_length != len(data):
        raise MschapV2Error(f"MS-Length {ms_length} does not match the {len(data)} bytes received")
    return op, ms_id, data[_HEADER.size :]


def _value_and_name(body: bytes, expected_size: int, what: str) -> tuple[bytes, bytes]:
    if not body:
        raise MschapV2Error(f"{what} has no Value-Size octet")
    if body[0] != expected_size:
        raise MschapV2Error(f"{what} Value-Size is {body[0]}, expected {expected_size}")
    if len(body) < 1 + expected_size:
        raise MschapV2Error(f"{what} value truncated: {len(body) - 1} of {expected_size} bytes")
    return body[1 : 1 + expected_size], body[1 + expected_size :]


def build_challenge(ms_id: int, challenge: bytes, name: bytes) -> bytes:
    """Server: OpCode 1, Value-Size 16, the challenge, then the server name."""
    _require_len("authenticator challenge", challenge, _CHALLENGE_LEN)
    return _frame(OP_CHALLENGE, ms_id, bytes([_CHALLENGE_LEN]) + challenge + name)


def build_response(ms_id: int, peer_challenge: bytes, nt_response: bytes, name: bytes, flags: int = 0) -> bytes:
    """Peer: OpCode 2 with peer challenge, 8 reserved zeros, NT-Response, flags, name."""
    _require_len("peer challenge", peer_challenge, _CHALLENGE_LEN)
    _require_len("NT-Response", nt_response, _NT_RESPONSE_LEN)
    if not 0 <= flags <= 255:
        raise MschapV2Error("flags is one octet")
    value = peer_challenge + b"\x00" * 8 + nt_response + bytes([flags])
    return _frame(OP_RESPONSE, ms_id, bytes([_RESPONSE_VALUE_LEN]) + value + name)


def build_success_request(ms_id: int, authenticator_response: bytes, message: str = "") -> bytes:
    """Server: OpCode 3 carrying ``S=<40 hex>`` and, when given, `` M=<message>``."""
    _check_authenticator_response_format(authenticator_response)
    text = authenticator_response + (b" M=" + message.encode("utf-8") if message else b"")
    return _frame(OP_SUCCESS, ms_id, text)


def build_failure_request(
    ms_id: int,
    error: int = 691,
    retry: bool = False,
    challenge: bytes | None = None,
    version: int = 3,
    message: str = "",
) -> bytes:
    """Server: OpCode 4, ``E=<error> R=<0|1> [C=<32 hex>] V=<version> M=<message>``.

    691 is ERROR_AUTHENTICATION_FAILURE, 648 ERROR_PASSWD_EXPIRED.
    """
    parts = [f"E={error}", f"R={int(retry)}"]
    if challenge is not None:
        _require_len("failure challenge", challenge, _CHALLENGE_LEN)
        parts.append(f"C={challenge.hex().upper()}")
    parts.append(f"V={version}")
    parts.append(f"M={message}")
    return _frame(OP_FAILURE, ms_id, " ".join(parts).encode("utf-8"))


def build_success_ack() -> bytes:
    """Peer: the one-octet Success-Response."""
    return bytes([OP_SUCCESS])


def build_failure_ack() -> bytes:
    """Peer: the one-octet Failure-Response."""
    return bytes([OP_FAILURE])


def _check_authenticator_response_format(value: bytes) -> None:
    if len(value) != _AUTH_RESPONSE_LEN or not value.startswith(b"S="):
        raise MschapV2Error("authenticator response must be 'S=' followed by 40 hex digits")
    try:
        bytes.fromhex(value[2:].decode("ascii"))
    except ValueError:
        raise MschapV2Error("authenticator response is not hexadecimal") from None


def _parse_success(ms_id: int, body: bytes) -> SuccessRequest:
    auth = body[:_AUTH_RESPONSE_LEN]
    _check_authenticator_response_format(auth)
    rest = body[_AUTH_RESPONSE_LEN:]
    if rest and not rest.startswith(b" M="):
        raise MschapV2Error("Success message: unexpected text after the S= value")
    return SuccessRequest(ms_id, auth, rest[3:].decode("utf-8", "replace"))


def _parse_failure(ms_id: int, body: bytes) -> FailureRequest:
    text = body.decode("utf-8", "replace")
    head, _, message = text.partition("M=")
    fields: dict[str, str] = {}
    for token in head.split():
        key, sep, value = token.partition("=")
        if not sep or key in fields:
            raise MschapV2Error(f"Failure message: bad field {token[:8]!r}")
        fields[key] = value
    try:
        error = int(fields["E"])
        retry = fields.get("R", "0") == "1"
        version = int(fields["V"]) if "V" in fields else None
        challenge = bytes.fromhex(fields["C"]) if "C" in fields else None
    except (KeyError, ValueError):
        raise MschapV2Error("Failure message needs a numeric E= and well-formed R/C/V fields") from None
    if challenge is not None and len(challenge) != _CHALLENGE_LEN:
        raise MschapV2Error("Failure C= challenge must be 16 bytes")
    return FailureRequest(ms_id, error, retry, challenge, version, message)


def parse_request(data: bytes) -> Challenge | SuccessRequest | FailureRequest:
    """Peer side: decode the Type-Data of an EAP-Request/MSCHAPv2."""
    op, ms_id, body = _unframe(bytes(data))
    if op == OP_CHALLENGE:
        challenge, name = _value_and_name(body, _CHALLENGE_LEN, "Challenge")
        return Challenge(ms_id, challenge, name)
    if op == OP_SUCCESS:
        return _parse_success(ms_id, body)
    if op == OP_FAILURE:
        return _parse_failure(ms_id, body)
    raise MschapV2Error(f"unexpected OpCode {op} in an EAP-MSCHAPv2 request")


def parse_response(data: bytes) -> Response | SuccessAck | FailureAck:
    """Server side: decode the Type-Data of an EAP-Response/MSCHAPv2."""
    data = bytes(data)
    if data == bytes([OP_SUCCESS]):
        return SuccessAck()
    if data == bytes([OP_FAILURE]):
        return FailureAck()
    if data[:1] in (bytes([OP_SUCCESS]), bytes([OP_FAILURE])):
        raise MschapV2Error("Success/Failure acknowledgement must be exactly one octet")
    op, ms_id, body = _unframe(data)
    if op != OP_RESPONSE:
        raise MschapV2Error(f"unexpected OpCode {op} in an EAP-MSCHAPv2 response")
    value, name = _value_and_name(body, _RESPONSE_VALUE_LEN, "Response")
    if value[16:24] != b"\x00" * 8:
        raise MschapV2Error("Response reserved octets must be zero")
    return Response(ms_id, value[:16], value[24:48], value[48], name)

