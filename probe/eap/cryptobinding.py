"""PEAPv0 cryptobinding and EAP-TLV framing per [MS-PEAP] (sans-IO, no clock).

Why: a Windows NPS server always sends a Cryptobinding TLV with its Result
TLV and, when it enforces cryptobinding, fails a peer that does not answer
it correctly. With cryptobinding the MS-MPPE keys in the Access-Accept come
from the Compound Session Key, not from the TLS key block, so the probe's
key check depends on this module too. Both roles live here: the probe is
the peer, the embedded NPS emulator is the server.

Key hierarchy ([MS-PEAP] 3.1.5.5.2, 3.1.5.7):

    TK       = first 60 bytes of PRF(master, "client EAP encryption", randoms)
    TempKey  = TK[0:40]
    ISK      = first 32 bytes of the inner MSK (32 zero bytes without one);
               for inner MSCHAPv2 that is peer send key | peer receive key
    IPMK|CMK = PRF+(TempKey, "Inner Methods Compound Keys" || ISK, 60)
    MAC      = HMAC-SHA1(CMK, TLV with MAC zeroed || 0x19 || outer TLVs)
    CSK      = PRF+(IPMK, "Session Key Generating Function" || 0x00, 128)

PRF+ is Tn = HMAC-SHA1(K, Tn-1 || S || n || 0x00 || 0x00), n from 1. The
IPMK label has no terminating NUL, the CSK label has one; the [MS-PEAP] 4.4
vectors in the tests pin both.
"""

from __future__ import annotations

import enum
import hmac
import struct
from dataclasses import dataclass, field

from probe.eap.crypto import MppeKeys, Role, split_mppe_keys
from probe.eap.packet import EapError

__all__ = [
    "CRYPTOBINDING_TLV_LEN",
    "EAP_TYPE_PEAP",
    "EAP_TYPE_TLV",
    "TLV_CRYPTOBINDING",
    "TLV_NAK",
    "TLV_RESULT",
    "CompoundKeys",
    "Cryptobinding",
    "CryptobindingError",
    "ResultStatus",
    "SubType",
    "Tlv",
    "TlvError",
    "build_cryptobinding_request",
    "build_cryptobinding_response",
    "build_result_tlv",
    "build_tlv",
    "compound_mac",
    "compound_session_key",
    "derive_compound_keys",
    "fast_reconnect_keys",
    "inner_session_key",
    "mppe_keys_from_csk",
    "parse_cryptobinding",
    "parse_result",
    "parse_tlvs",
    "prf_plus",
    "verify_cryptobinding_request",
    "verify_cryptobinding_response",
]

EAP_TYPE_PEAP = 25
EAP_TYPE_TLV = 33

TLV_RESULT = 3
TLV_NAK = 4
TLV_CRYPTOBINDING = 12

#: Whole Cryptobinding TLV on the wire: 4-byte header + 56-byte value.
CRYPTOBINDING_TLV_LEN = 60
_CB_VALUE_LEN = 56
_CB_VALUE = struct.Struct("!BBBB32s20s")  # Reserved, Version, RecvVersion, SubType, Nonce, MAC
_TLV_HEADER = struct.Struct("!HH")
_MANDATORY = 0x8000
_TYPE_MASK = 0x3FFF
_MAC_OFFSET = 40  # 4 header + 4 fixed + 32 nonce
_MAC_LEN = 20
_NONCE_LEN = 32
_TK_LEN = 60
_TEMP_KEY_LEN = 40
_ISK_LEN = 32
_IPMK_LEN = 40
_CSK_LEN = 128

_IPMK_LABEL = b"Inner Methods Compound Keys"
_CSK_LABEL = b"Session Key Generating Function\x00"


class TlvError(EapError):
    """A malformed EAP-TLV payload: truncation, bad length or bad value."""


class CryptobindingError(EapError):
    """A Cryptobinding TLV that is malformed or whose Compound MAC does not verify."""


class SubType(enum.IntEnum):
    """Cryptobinding SubType: the server sends requests, the peer responses."""

    REQUEST = 0
    RESPONSE = 1


class ResultStatus(enum.IntEnum):
    """Result TLV status values ([MS-PEAP] 2.2.8.1.2)."""

    SUCCESS = 1
    FAILURE = 2


@dataclass(frozen=True)
class Tlv:
    """One EAP-TLV: type without the M/R bits, the M bit, and the value."""

    tlv_type: int
    mandatory: bool
    value: bytes


@dataclass(frozen=True)
class Cryptobinding:
    """A decoded Cryptobinding TLV value; ``raw`` is the whole 60-byte TLV."""

    version: int
    received_version: int
    subtype: SubType
    nonce: bytes
    compound_mac: bytes
    raw: bytes = field(repr=False)


@dataclass(frozen=True)
class CompoundKeys:
    """IPMK (40 bytes) and CMK (20 bytes); the repr never shows them."""

    ipmk: bytes = field(repr=False)
    cmk: bytes = field(repr=False)


# --------------------------------------------------------------------------
# Generic TLV framing
# --------------------------------------------------------------------------


def build_tlv(tlv_type: int, value: bytes, mandatory: bool = False) -> bytes:
    """Encode one TLV: M bit, R bit (always 0), 14-bit type, 16-bit length."""
    if not 0 <= tlv_type <= _TYPE_MASK:
        raise TlvError(f"TLV type {tlv_type} does not fit in 14 bits")
    if len(value) > 0xFFFF:
        raise TlvError("TLV value longer than 65535 bytes")
    head = tlv_type | (_MANDATORY if mandatory else 0)
    return _TLV_HEADER.pack(head, len(value)) + bytes(value)


def parse_tlvs(data: bytes) -> list[Tlv]:
    """Decode a sequence of TLVs (the EAP-TLV Type-Data), strictly.

    Every byte must belong to a complete TLV: a short header or a value
    running past the end raises :class:`TlvError` rather than being
    silently dropped. The R bit is ignored as [MS-PEAP] requires.
    """
    data = bytes(data)
    tlvs: list[Tlv] = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < _TLV_HEADER.size:
            raise TlvError(f"TLV header truncated at offset {offset}: {len(data) - offset} of 4 bytes")
        head, length = _TLV_HEADER.unpack_from(data, offset)
        start = offset + _TLV_HEADER.size
        if start + length > len(data):
            raise TlvError(
                f"TLV type {head & _TYPE_MASK} at offset {offset} claims {length} bytes, "
                f"{len(data) - start} remain"
            )
        tlvs.append(Tlv(head & _TYPE_MASK, bool(head & _MANDATORY), data[start : start + length]))
        offset = start + length
    return tlvs


def build_result_tlv(status: ResultStatus) -> bytes:
    """Result TLV (type 3, 2-byte status) with the M bit set, as Windows and hostapd send it."""
    return build_tlv(TLV_RESULT, struct.pack("!H", ResultStatus(status)), mandatory=True)


def parse_result(tlv: Tlv) -> ResultStatus:
    """Decode a Result TLV's status; anything but Success(1)/Failure(2) is an error."""
    if tlv.tlv_type != TLV_RESULT:
        raise TlvError(f"expected a Result TLV (3), got type {tlv.tlv_type}")
    if len(tlv.value) != 2:
        raise TlvError(f"Result TLV value must be 2 bytes, got {len(tlv.value)}")
    (status,) = struct.unpack("!H", tlv.value)
    try:
        return ResultStatus(status)
    except ValueError:
        raise TlvError(f"Result TLV status {status} is neither Success (1) nor Failure (2)") from None


# --------------------------------------------------------------------------
# Key hierarchy
# --------------------------------------------------------------------------


def prf_plus(key: bytes, seed: bytes, length: int) -> bytes:
    """[MS-PEAP] PRF+: Tn = HMAC-SHA1(key, Tn-1 || seed || n || 0x00 || 0x00)."""
    if not 0 <= length <= 255 * 20:
        raise ValueError("PRF+ output length out of range")
    out = bytearray()
    previous = b""
    counter = 1
    while len(out) < length:
        previous = hmac.digest(key, previous + seed + bytes([counter, 0, 0]), "sha1")
        out += previous
        counter += 1
    return bytes(out[:length])


def inner_session_key(inner_msk: bytes | None) -> bytes:
    """ISK: the first 32 bytes of the inner method's MSK, zero-padded; zeros without one.

    [MS-PEAP] 3.1.5.5.2.2 builds it from the inner MPPE keys (peer: send |
    recv; server: recv | send). Both orders are the inner MSK's first 32
    bytes for MSCHAPv2 and for EAP-TLS, which is what hostapd uses.
    """
    if not inner_msk:
        return b"\x00" * _ISK_LEN
    return bytes(inner_msk[:_ISK_LEN]).ljust(_ISK_LEN, b"\x00")


def derive_compound_keys(tunnel_key: bytes, isk: bytes) -> CompoundKeys:
    """IPMK|CMK = PRF+(TK[0:40], "Inner Methods Compound Keys" || ISK, 60)."""
    if len(tunnel_key) < _TK_LEN:
        raise ValueError(f"tunnel key must be at least {_TK_LEN} bytes")
    if len(isk) != _ISK_LEN:
        raise ValueError(f"ISK must be {_ISK_LEN} bytes")
    out = prf_plus(tunnel_key[:_TEMP_KEY_LEN], _IPMK_LABEL + isk, _IPMK_LEN + _MAC_LEN)
    return CompoundKeys(ipmk=out[:_IPMK_LEN], cmk=out[_IPMK_LEN:])


def fast_reconnect_keys(tunnel_key: bytes) -> CompoundKeys:
    """On a resumed session with no inner method: IPMK = TK[0:40], CMK = TK[40:60]."""
    if len(tunnel_key) < _TK_LEN:
        raise ValueError(f"tunnel key must be at least {_TK_LEN} bytes")
    return CompoundKeys(ipmk=tunnel_key[:_IPMK_LEN], cmk=tunnel_key[_IPMK_LEN:_TK_LEN])


def compound_session_key(keys: CompoundKeys) -> bytes:
    """CSK = PRF+(IPMK, "Session Key Generating Function\\0", 128) ([MS-PEAP] 3.1.5.7)."""
    return prf_plus(keys.ipmk, _CSK_LABEL, _CSK_LEN)


def mppe_keys_from_csk(keys: CompoundKeys, role: Role) -> MppeKeys:
    """MPPE keys after cryptobinding: CSK[0:32] is peer send / server receive."""
    return split_mppe_keys(compound_session_key(keys), role)


# --------------------------------------------------------------------------
# Cryptobinding TLV
# --------------------------------------------------------------------------


def compound_mac(cmk: bytes, tlv: bytes, outer_tlvs: bytes = b"") -> bytes:
    """HMAC-SHA1(CMK, the 60-byte TLV with its MAC zeroed || 0x19 || outer TLVs).

    The MAC field of ``tlv`` is zeroed here, so a received TLV can be passed
    as is. PEAPv0 has no outer TLVs.
    """
    if len(tlv) != CRYPTOBINDING_TLV_LEN:
        raise CryptobindingError(f"Cryptobinding TLV must be {CRYPTOBINDING_TLV_LEN} bytes, got {len(tlv)}")
    zeroed = bytes(tlv[:_MAC_OFFSET]) + b"\x00" * _MAC_LEN
    return hmac.digest(cmk, zeroed + bytes([EAP_TYPE_PEAP]) + outer_tlvs, "sha1")


def _pack_cryptobinding(cmk: bytes, subtype: SubType, nonce: bytes, outer_tlvs: bytes) -> bytes:
    if len(nonce) != _NONCE_LEN:
        raise CryptobindingError(f"nonce must be {_NONCE_LEN} bytes")
    value = _CB_VALUE.pack(0, 0, 0, subtype, nonce, b"\x00" * _MAC_LEN)
    unsigned = build_tlv(TLV_CRYPTOBINDING, value)
    return unsigned[:_MAC_OFFSET] + compound_mac(cmk, unsigned, outer_tlvs)


def parse_cryptobinding(tlv: Tlv) -> Cryptobinding:
    """Decode a Cryptobinding TLV: type 12, M bit clear, value exactly 56 bytes."""
    if tlv.tlv_type != TLV_CRYPTOBINDING:
        raise CryptobindingError(f"expected a Cryptobinding TLV (12), got type {tlv.tlv_type}")
    if tlv.mandatory:
        raise CryptobindingError("Cryptobinding TLV must not have the M bit set")
    if len(tlv.value) != _CB_VALUE_LEN:
        raise CryptobindingError(f"Cryptobinding value must be {_CB_VALUE_LEN} bytes, got {len(tlv.value)}")
    _reserved, version, received_version, subtype, nonce, mac = _CB_VALUE.unpack(tlv.value)
    if version != 0:
        raise CryptobindingError(f"Cryptobinding version {version}, only 0 is defined")
    try:
        kind = SubType(subtype)
    except ValueError:
        raise CryptobindingError(f"Cryptobinding SubType {subtype} is neither request nor response") from None
    return Cryptobinding(version, received_version, kind, nonce, mac, build_tlv(TLV_CRYPTOBINDING, tlv.value))


def _verify(keys: CompoundKeys, binding: Cryptobinding, expected: SubType, outer_tlvs: bytes) -> None:
    if binding.subtype is not expected:
        raise CryptobindingError(f"expected a Cryptobinding {expected.name.lower()}, got {binding.subtype.name.lower()}")
    mine = compound_mac(keys.cmk, binding.raw, outer_tlvs)
    if not hmac.compare_digest(mine, binding.compound_mac):
        raise CryptobindingError("Compound MAC does not verify: tunnel and inner keys are not bound")


def build_cryptobinding_request(keys: CompoundKeys, nonce: bytes, outer_tlvs: bytes = b"") -> bytes:
    """Server: the 60-byte Cryptobinding request TLV for ``nonce`` (32 random bytes)."""
    return _pack_cryptobinding(keys.cmk, SubType.REQUEST, nonce, outer_tlvs)


def verify_cryptobinding_request(keys: CompoundKeys, tlv: Tlv, outer_tlvs: bytes = b"") -> Cryptobinding:
    """Peer: decode the server's request and check its Compound MAC ([MS-PEAP] 3.2.5.3)."""
    binding = parse_cryptobinding(tlv)
    _verify(keys, binding, SubType.REQUEST, outer_tlvs)
    return binding


def build_cryptobinding_response(keys: CompoundKeys, request: Cryptobinding, outer_tlvs: bytes = b"") -> bytes:
    """Peer: the response TLV, carrying the request's nonce unchanged.

    [MS-PEAP] 3.2.5.3 has the peer populate its structure with "the nonce
    supplied in the corresponding cryptobinding request"; hostapd's peer
    echoes it the same way. (No "+1" rule exists in [MS-PEAP]; that is
    EAP-FAST's.)
    """
    return _pack_cryptobinding(keys.cmk, SubType.RESPONSE, request.nonce, outer_tlvs)


def verify_cryptobinding_response(
    keys: CompoundKeys, tlv: Tlv, expected_nonce: bytes | None = None, outer_tlvs: bytes = b""
) -> Cryptobinding:
    """Server: decode the peer's response and check its Compound MAC ([MS-PEAP] 3.3.5.3).

    [MS-PEAP] computes the MAC over the nonce found in the response and
    does not demand that it equal the request's (its own 4.4 example uses
    a different one), so the nonce is compared only when
    ``expected_nonce`` is given.
    """
    binding = parse_cryptobinding(tlv)
    _verify(keys, binding, SubType.RESPONSE, outer_tlvs)
    if expected_nonce is not None and not hmac.compare_digest(binding.nonce, expected_nonce):
        raise CryptobindingError("Cryptobinding response nonce differs from the request's")
    return binding
