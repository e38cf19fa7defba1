"""PEAPv0 phase 2 rules both roles follow ([MS-PEAP] 3.1.5.5-3.1.5.7, 3.2.5, 3.3.5), written once.

The probe's peer (:mod:`probe.eap.peap`) and the emulator's server
(:mod:`probe.emulator.peap_server`) both build on this module, so they cannot
enforce different rules:

* **Compression** ([MS-PEAP] 3.1.5.6): inner packets travel without the EAP
  Code/Identifier/Length header, except the EAP-TLV Extensions method (33)
  and the expanded-type methods (254: Capabilities, SoH). A header-less
  packet takes the outer packet's Code and Identifier. FreeRADIUS sends its
  inner Identity request WITH a header; :func:`decompress` accepts both.
* **The TLV set** of a Result exchange (:func:`read_tlvs`): exactly one Result
  TLV, at most one Cryptobinding TLV, and no unknown TLV with the M bit set
  ([MS-PEAP] 2.2.8: an unknown mandatory TLV must be rejected).
* **Compound keys** (:func:`compound_keys`): IPMK/CMK from TK = the first 60
  bytes of the TLS key block and the inner MSK, or, after a fast reconnect
  that ran no inner method, TK itself ([MS-PEAP] 3.1.5.5.2.2).
* **Which MS-MPPE keys** the Access-Accept carries (:func:`session_mppe`): the
  CSK halves once a Cryptobinding TLV was verified, else the TLS key block's.

Pure: bytes in, values out. Protocol problems raise :class:`PeapError`
(an :class:`probe.eap.packet.EapError`, never a ValueError).
"""

from __future__ import annotations

from dataclasses import dataclass

from probe.eap.crypto import MppeKeys, Role, split_mppe_keys
from probe.eap.cryptobinding import (
    TLV_CRYPTOBINDING,
    TLV_RESULT,
    CompoundKeys,
    ResultStatus,
    Tlv,
    TlvError,
    build_result_tlv,
    derive_compound_keys,
    fast_reconnect_keys,
    inner_session_key,
    mppe_keys_from_csk,
    parse_result,
    parse_tlvs,
)
from probe.eap.packet import HEADER_LENGTH, EapCode, EapError, EapPacket, EapType, Vendor, parse_expanded

__all__ = [
    "CAPABILITIES_VENDOR_TYPE",
    "HEADER_KEPT",
    "KNOWN_TLVS",
    "SOH_VENDOR_TYPE",
    "TUNNEL_KEY_LENGTH",
    "PeapError",
    "TlvSet",
    "compound_keys",
    "compress",
    "decompress",
    "microsoft_extension",
    "read_tlvs",
    "result_packet",
    "session_mppe",
]

CAPABILITIES_VENDOR_TYPE = 0x22
"""[MS-PEAP] 2.2.8.3 Capabilities Negotiation Method (vendor 0x137)."""
SOH_VENDOR_TYPE = 0x21
"""[MS-PEAP] 2.2.8.2 SoH EAP Extensions Method (vendor 0x137)."""

TUNNEL_KEY_LENGTH = 60
"""TK: the first 60 bytes of PRF(master, "client EAP encryption", randoms) ([MS-PEAP] 3.1.5.5.2.1)."""
MSK_LENGTH = 64

HEADER_KEPT: tuple[EapType, ...] = (EapType.TLV, EapType.EXPANDED)
"""Inner types that keep their EAP header in the tunnel."""

KNOWN_TLVS = (TLV_RESULT, TLV_CRYPTOBINDING)
"""The TLVs of a PEAPv0 Result exchange; any other TLV with the M bit is refused."""


class PeapError(EapError):
    """A phase-2 packet or TLV set that breaks [MS-PEAP]; the text says what is wrong."""


# ---------------------------------------------------------------------------
# Compression ([MS-PEAP] 3.1.5.6)


def compress(packet: EapPacket) -> bytes:
    """The inner packet as it travels in the tunnel: header-less unless TLV or expanded."""
    wire = packet.to_bytes()
    return wire if packet.type in HEADER_KEPT else wire[HEADER_LENGTH:]


def decompress(data: bytes, code: EapCode, identifier: int) -> EapPacket:
    """Decrypted tunnel data -> the inner EAP packet, for a tunnel packet of ``code``/``identifier``.

    A full header is recognised when its Code is ``code``, its Length field
    covers the data exactly and its type is TLV or expanded (always sent with
    one) or Identity (FreeRADIUS). Anything else is header-less and gets
    ``code`` and ``identifier``. (A header-less Identity would have to start
    with a NUL to be mistaken for a header.)
    """
    if _has_header(data, code):
        return EapPacket.parse(data)
    if not data:
        raise PeapError("empty inner EAP packet in the PEAP tunnel")
    if data[0] == 0:
        raise PeapError("header-less inner EAP packet with the reserved Type 0")
    return EapPacket(code, identifier, data[0], bytes(data[1:]))


def _has_header(data: bytes, code: EapCode) -> bool:
    """Is ``data`` a whole EAP packet of ``code`` with its header?"""
    if len(data) <= HEADER_LENGTH or data[0] != code:
        return False
    declared = int.from_bytes(data[2:4], "big")
    return declared == len(data) and data[HEADER_LENGTH] in (*HEADER_KEPT, EapType.IDENTITY)


def microsoft_extension(packet: EapPacket) -> str | None:
    """Name [MS-PEAP]'s expanded-type requests: "capabilities", "soh", or None for anything else."""
    if packet.type != EapType.EXPANDED:
        return None
    expanded = parse_expanded(packet)
    if expanded.vendor_id != Vendor.MICROSOFT:
        return None
    return {CAPABILITIES_VENDOR_TYPE: "capabilities", SOH_VENDOR_TYPE: "soh"}.get(expanded.vendor_type)


# ---------------------------------------------------------------------------
# The TLV set of a Result exchange


@dataclass(frozen=True)
class TlvSet:
    """A valid Result exchange message: its Result status and its Cryptobinding TLV, if any."""

    result: ResultStatus
    cryptobinding: Tlv | None


def read_tlvs(data: bytes) -> TlvSet:
    """Parse and validate an EAP-TLV Type-Data (either direction); :class:`PeapError` when it breaks the rules."""
    try:
        tlvs = parse_tlvs(data)
        results = [parse_result(tlv) for tlv in tlvs if tlv.tlv_type == TLV_RESULT]
    except TlvError as exc:
        raise PeapError(f"malformed EAP-TLV message: {exc}") from None
    unknown = [tlv.tlv_type for tlv in tlvs if tlv.mandatory and tlv.tlv_type not in KNOWN_TLVS]
    if unknown:
        raise PeapError(f"EAP-TLV message with unknown mandatory TLV type {unknown[0]}")
    bindings = [tlv for tlv in tlvs if tlv.tlv_type == TLV_CRYPTOBINDING]
    if len(results) != 1 or len(bindings) > 1:
        raise PeapError(f"EAP-TLV message needs one Result TLV (got {len(results)}) "
                        f"and at most one Cryptobinding TLV (got {len(bindings)})")
    return TlvSet(results[0], bindings[0] if bindings else None)


def result_packet(code: EapCode, identifier: int, status: ResultStatus, binding: bytes = b"") -> EapPacket:
    """An EAP-TLV Request or Response with a Result TLV (and an encoded Cryptobinding TLV)."""
    return EapPacket(code, identifier, EapType.TLV, build_result_tlv(status) + binding)


# ---------------------------------------------------------------------------
# Keys


def compound_keys(tunnel_key: bytes, inner_msk: bytes | None, *, inner_method_ran: bool) -> CompoundKeys:
    """IPMK/CMK for the Cryptobinding TLV.

    ``tunnel_key`` is the TLS key block (at least TK's 60 bytes). After a fast
    reconnect no inner method ran and IPMK|CMK = TK ([MS-PEAP] 3.1.5.5.2.2);
    otherwise they come from TK and the ISK (the first 32 bytes of the inner
    MSK; zeros when the inner method has none).
    """
    tk = tunnel_key[:TUNNEL_KEY_LENGTH]
    if not inner_method_ran:
        return fast_reconnect_keys(tk)
    return derive_compound_keys(tk, inner_session_key(inner_msk))


def session_mppe(tunnel_key: bytes, bound: CompoundKeys | None) -> MppeKeys:
    """The MS-MPPE keys of the Access-Accept (server view).

    With a verified Cryptobinding exchange (``bound``: its compound keys) they
    are the CSK halves ([MS-PEAP] 3.1.5.7); without one, the TLS key block's
    MSK halves, as for EAP-TLS.
    """
    if bound is not None:
        return mppe_keys_from_csk(bound, Role.SERVER)
    return split_mppe_keys(tunnel_key[:MSK_LENGTH], Role.SERVER)
