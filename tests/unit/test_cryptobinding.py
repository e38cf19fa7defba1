"""PEAP cryptobinding and EAP-TLV framing against [MS-PEAP] section 4.4.

What [MS-PEAP] 4.4 publishes, and what is tested with it:
  4.4.1.3.2.3  IPMK|CMK (T1..T3), the server's Compound MAC and whole
               Cryptobinding request TLV      -> build + verify, byte-exact
  4.4.2.3.2.3  the peer's Compound MAC and whole response TLV (same CMK)
                                             -> build + verify, byte-exact
  4.4.3        PRF+(IPMK, "Session Key Generating Function\\0") T1..T7 and
               the server's Recv/Send keys   -> PRF+ and the MPPE split
The example's TK and ISK inputs (4.4.1.3.2.1/2) were not in the reference
store, so the TK -> IPMK|CMK step is checked by construction (label
without NUL, as hostapd's eap_peap.c does) and by the two roles agreeing.
"""

from __future__ import annotations

import struct

import pytest

from probe.eap.crypto import Role
from probe.eap.cryptobinding import (
    TLV_CRYPTOBINDING,
    TLV_RESULT,
    CompoundKeys,
    Cryptobinding,
    CryptobindingError,
    ResultStatus,
    SubType,
    Tlv,
    TlvError,
    build_cryptobinding_request,
    build_cryptobinding_response,
    build_result_tlv,
    build_tlv,
    compound_mac,
    compound_session_key,
    derive_compound_keys,
    fast_reconnect_keys,
    inner_session_key,
    mppe_keys_from_csk,
    parse_cryptobinding,
    parse_result,
    parse_tlvs,
    prf_plus,
    verify_cryptobinding_request,
    verify_cryptobinding_response,
)
from probe.eap.mschapv2 import eap_mschapv2_msk, mppe_keys


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# [MS-PEAP] 4.4.1.3.2.3
T1 = h("3A 91 1C 25 54 73 E8 3E 9A 0C C3 33 AE 1F 8A 35 CD C7 41 63")
T2 = h("E7 F6 0F 6C 65 EF 71 C2 64 42 AA AC A2 B6 F1 EB 4F 25 EC A3")
T3 = h("33 55 35 3B 69 20 D0 74 C7 82 E4 75 DF B0 99 9D 4D B4 67 EB")
KEYS = CompoundKeys(ipmk=T1 + T2, cmk=T3)
REQUEST_NONCE = h("BD A7 A5 99 FA 81 65 21 AD 30 64 C2 BD DB D1 6E AA 94 9E 7D 98 A8 D7 94 31 47 CF 42 5D 85 DA 7B")
REQUEST_MAC = h("0C BF 10 5E 91 75 57 48 22 4F BB 83 00 06 26 91 1C FB 1B 0F")
REQUEST_TLV = h("00 0C 00 38 00 00 00 00") + REQUEST_NONCE + REQUEST_MAC

# [MS-PEAP] 4.4.2.3.2.3
RESPONSE_TLV = h(
    "00 0C 00 38 00 00 00 01 6C 6B A3 87 84 23 74 57"
    "CC C9 0B 1A 90 8C BD F4 71 1B 69 99 4D 0C FE 8D"
    "3D B4 4E CB CD AD 37 E9 42 E0 86 07 1D 1C 8B 8C"
    "8E 45 8F 70 21 F0 6A 6E AB 16 B6 46"
)

# [MS-PEAP] 4.4.3
CSK_T = [
    h("6A 02 D7 82 20 1B C7 13 8B F8 EF F7 33 B4 96 97 0D 7C AB 30"),
    h("0A C9 57 72 78 E1 DD D5 AE F7 66 97 17 52 D4 E5 84 A1 C8 95"),
    h("03 9B 4D 05 E3 BC 9A 84 84 DD C2 AA 6E 2C E1 62 76 5C 40 68"),
    h("BF F6 5A 45 10 E3 05 74 85 DB 98 B7 99 D8 6E 66 76 3C 64 D4"),
    h("98 89 B4 DD 1B 27 3D C8 A2 CA 73 D6 0D 11 AF B2 2C 52 BA AD"),
    h("D3 51 E0 CB 7B B2 E7 2C 7D 93 73 85 7E 03 C1 4A 32 C8 F7 E5"),
    h("95 9F 46 68 0E 86 E6 5C 89 F8 80 C8 A6 DA 00 56 3A FB 19 C0"),
]
SERVER_RECV_KEY = h("6A 02 D7 82 20 1B C7 13 8B F8 EF F7 33 B4 96 97 0D 7C AB 30 0A C9 57 72 78 E1 DD D5 AE F7 66 97")
SERVER_SEND_KEY = h("17 52 D4 E5 84 A1 C8 95 03 9B 4D 05 E3 BC 9A 84 84 DD C2 AA 6E 2C E1 62 76 5C 40 68 BF F6 5A 45")


def only(data: bytes) -> Tlv:
    (tlv,) = parse_tlvs(data)
    return tlv


# --------------------------------------------------------------------------
# [MS-PEAP] 4.4 vectors
# --------------------------------------------------------------------------


def test_prf_plus_matches_ms_peap_4_4_3_iterations() -> None:
    seed = b"Session Key Generating Function\x00"
    assert seed.hex(" ").upper() == (
        "53 65 73 73 69 6F 6E 20 4B 65 79 20 47 65 6E 65 72 61 74 69 6E 67 20 46 75 6E 63 74 69 6F 6E 00"
    )
    assert prf_plus(KEYS.ipmk, seed, 140) == b"".join(CSK_T)
    assert compound_session_key(KEYS) == b"".join(CSK_T)[:128]


def test_mppe_keys_from_csk_match_ms_peap_4_4_3() -> None:
    server = mppe_keys_from_csk(KEYS, Role.SERVER)
    assert server.recv_key == SERVER_RECV_KEY
    assert server.send_key == SERVER_SEND_KEY
    peer = mppe_keys_from_csk(KEYS, Role.PEER)
    assert peer.recv_key == SERVER_SEND_KEY and peer.send_key == SERVER_RECV_KEY


def test_server_request_matches_ms_peap_4_4_1_byte_for_byte() -> None:
    assert compound_mac(KEYS.cmk, REQUEST_TLV) == REQUEST_MAC
    assert build_cryptobinding_request(KEYS, REQUEST_NONCE) == REQUEST_TLV


def test_peer_verifies_the_ms_peap_4_4_1_request() -> None:
    binding = verify_cryptobinding_request(KEYS, only(REQUEST_TLV))
    assert binding.subtype is SubType.REQUEST
    assert binding.nonce == REQUEST_NONCE
    assert binding.compound_mac == REQUEST_MAC


def test_peer_response_matches_ms_peap_4_4_2_byte_for_byte() -> None:
    # The 4.4.2 example carries its own nonce; building a response to a
    # request with that nonce must reproduce the published TLV exactly.
    request = parse_cryptobinding(only(REQUEST_TLV))
    example_request = Cryptobinding(0, 0, SubType.REQUEST, RESPONSE_TLV[8:40], request.compound_mac, REQUEST_TLV)
    assert build_cryptobinding_response(KEYS, example_request) == RESPONSE_TLV


def test_server_verifies_the_ms_peap_4_4_2_response() -> None:
    binding = verify_cryptobinding_response(KEYS, only(RESPONSE_TLV))
    assert binding.subtype is SubType.RESPONSE
    # The published response's nonce is not the published request's; a
    # server that insists on equality must say so.
    with pytest.raises(CryptobindingError, match="nonce"):
        verify_cryptobinding_response(KEYS, only(RESPONSE_TLV), expected_nonce=REQUEST_NONCE)


def test_peer_response_echoes_the_request_nonce() -> None:
    request = verify_cryptobinding_request(KEYS, only(REQUEST_TLV))
    response = build_cryptobinding_response(KEYS, request)
    assert response[8:40] == REQUEST_NONCE
    verify_cryptobinding_response(KEYS, only(response), expected_nonce=REQUEST_NONCE)


# --------------------------------------------------------------------------
# Tampering and malformed TLVs
# --------------------------------------------------------------------------


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


@pytest.mark.parametrize("index", [4, 7, 8, 39, 40, 59])  # reserved, subtype, nonce ends, MAC ends
def test_a_flipped_bit_anywhere_in_the_value_is_rejected(index: int) -> None:
    tampered = _flip(REQUEST_TLV, index)
    with pytest.raises(CryptobindingError):
        verify_cryptobinding_request(KEYS, only(tampered))


def test_wrong_cmk_is_rejected() -> None:
    wrong = CompoundKeys(ipmk=KEYS.ipmk, cmk=_flip(KEYS.cmk, 0))
    with pytest.raises(CryptobindingError, match="Compound MAC"):
        verify_cryptobinding_request(wrong, only(REQUEST_TLV))


def test_subtype_must_match_the_direction() -> None:
    with pytest.raises(CryptobindingError, match="expected a Cryptobinding request"):
        verify_cryptobinding_request(KEYS, only(RESPONSE_TLV))
    with pytest.raises(CryptobindingError, match="expected a Cryptobinding response"):
        verify_cryptobinding_response(KEYS, only(REQUEST_TLV))


def test_outer_tlvs_enter_the_mac() -> None:
    with_outer = build_cryptobinding_request(KEYS, REQUEST_NONCE, outer_tlvs=b"\x00\x01\x00\x00")
    assert with_outer != REQUEST_TLV
    with pytest.raises(CryptobindingError):
        verify_cryptobinding_request(KEYS, only(with_outer))
    verify_cryptobinding_request(KEYS, only(with_outer), outer_tlvs=b"\x00\x01\x00\x00")


@pytest.mark.parametrize(
    ("tlv", "reason"),
    [
        (Tlv(TLV_CRYPTOBINDING, True, REQUEST_TLV[4:]), "M bit"),
        (Tlv(TLV_CRYPTOBINDING, False, REQUEST_TLV[4:-1]), "56 bytes"),
        (Tlv(TLV_CRYPTOBINDING, False, REQUEST_TLV[4:] + b"\x00"), "56 bytes"),
        (Tlv(TLV_RESULT, False, REQUEST_TLV[4:]), "expected a Cryptobinding TLV"),
        (Tlv(TLV_CRYPTOBINDING, False, b"\x00\x01" + REQUEST_TLV[6:]), "version 1"),
        (Tlv(TLV_CRYPTOBINDING, False, b"\x00\x00\x00\x02" + REQUEST_TLV[8:]), "SubType 2"),
    ],
)
def test_parse_cryptobinding_is_strict(tlv: Tlv, reason: str) -> None:
    with pytest.raises(CryptobindingError, match=reason):
        parse_cryptobinding(tlv)


# --------------------------------------------------------------------------
# Key hierarchy across roles
# --------------------------------------------------------------------------

TUNNEL_KEY = bytes(range(100, 160))  # 60 bytes, stands in for PRF(master, "client EAP encryption", ...)[:60]
NT_RESPONSE = h("82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF")  # RFC 2759 9.2


def test_isk_for_inner_mschapv2_is_the_same_from_both_roles() -> None:
    # [MS-PEAP] 3.1.5.5.2.2: Peer ISK = InnerMPPESendKey | InnerMPPERecvKey,
    # Server ISK = InnerMPPERecvKey | InnerMPPESendKey, each from its own view.
    peer = mppe_keys("clientPass", NT_RESPONSE, Role.PEER)
    server = mppe_keys("clientPass", NT_RESPONSE, Role.SERVER)
    peer_isk = peer.send_key + peer.recv_key
    server_isk = server.recv_key + server.send_key
    assert peer_isk == server_isk == inner_session_key(eap_mschapv2_msk("clientPass", NT_RESPONSE))


def test_isk_without_inner_keys_is_zeros_and_short_keys_are_padded() -> None:
    assert inner_session_key(None) == bytes(32)
    assert inner_session_key(b"") == bytes(32)
    assert inner_session_key(b"\x01" * 16) == b"\x01" * 16 + bytes(16)
    assert inner_session_key(bytes(range(64))) == bytes(range(32))


def test_compound_keys_use_the_ipmk_label_without_nul_and_temp_key_tk_0_40() -> None:
    isk = bytes(range(32))
    keys = derive_compound_keys(TUNNEL_KEY, isk)
    out = prf_plus(TUNNEL_KEY[:40], b"Inner Methods Compound Keys" + isk, 60)
    assert keys == CompoundKeys(ipmk=out[:40], cmk=out[40:])
    # Only TempKey = TK[0:40] enters; the rest of TK does not.
    assert derive_compound_keys(TUNNEL_KEY[:40] + bytes(20), isk) == keys
    assert derive_compound_keys(TUNNEL_KEY, bytes(32)) != keys


def test_full_exchange_between_roles_binds_inner_and_outer_keys() -> None:
    peer_keys = derive_compound_keys(TUNNEL_KEY, inner_session_key(eap_mschapv2_msk("clientPass", NT_RESPONSE)))
    server_msk = mppe_keys("clientPass", NT_RESPONSE, Role.SERVER)
    server_keys = derive_compound_keys(TUNNEL_KEY, server_msk.recv_key + server_msk.send_key)
    nonce = bytes(range(32))

    request_tlv = build_cryptobinding_request(server_keys, nonce)
    request = verify_cryptobinding_request(peer_keys, only(request_tlv))
    response_tlv = build_cryptobinding_response(peer_keys, request)
    verify_cryptobinding_response(server_keys, only(response_tlv), expected_nonce=nonce)

    peer_mppe = mppe_keys_from_csk(peer_keys, Role.PEER)
    server_mppe = mppe_keys_from_csk(server_keys, Role.SERVER)
    assert peer_mppe.send_key == server_mppe.recv_key and peer_mppe.recv_key == server_mppe.send_key

    # A man in the middle with another inner session cannot produce the MAC.
    other = derive_compound_keys(TUNNEL_KEY, inner_session_key(None))
    with pytest.raises(CryptobindingError):
        verify_cryptobinding_request(other, only(request_tlv))


def test_fast_reconnect_takes_ipmk_and_cmk_straight_from_tk() -> None:
    keys = fast_reconnect_keys(TUNNEL_KEY)
    assert keys.ipmk == TUNNEL_KEY[:40] and keys.cmk == TUNNEL_KEY[40:60]


def test_key_reprs_hide_key_bytes() -> None:
    assert T1[:6].hex() not in repr(KEYS).lower()
    assert T3[:6].hex() not in repr(KEYS).lower()


# --------------------------------------------------------------------------
# Generic TLVs and the Result TLV
# --------------------------------------------------------------------------


def test_result_tlv_bytes_and_round_trip() -> None:
    assert build_result_tlv(ResultStatus.SUCCESS) == h("80 03 00 02 00 01")
    assert build_result_tlv(ResultStatus.FAILURE) == h("80 03 00 02 00 02")
    assert parse_result(only(h("80 03 00 02 00 01"))) is ResultStatus.SUCCESS
    assert parse_result(only(h("00 03 00 02 00 02"))) is ResultStatus.FAILURE


@pytest.mark.parametrize(
    ("tlv", "reason"),
    [
        (Tlv(TLV_RESULT, True, h("00 03")), "neither Success"),
        (Tlv(TLV_RESULT, True, h("00")), "2 bytes"),
        (Tlv(TLV_RESULT, True, h("00 01 00")), "2 bytes"),
        (Tlv(TLV_CRYPTOBINDING, True, h("00 01")), "expected a Result TLV"),
    ],
)
def test_parse_result_is_strict(tlv: Tlv, reason: str) -> None:
    with pytest.raises(TlvError, match=reason):
        parse_result(tlv)


def test_parse_tlvs_reads_a_windows_style_result_plus_cryptobinding() -> None:
    payload = build_result_tlv(ResultStatus.SUCCESS) + REQUEST_TLV
    result, binding = parse_tlvs(payload)
    assert result == Tlv(TLV_RESULT, True, h("00 01"))
    assert binding.tlv_type == TLV_CRYPTOBINDING and not binding.mandatory and len(binding.value) == 56


def test_parse_tlvs_ignores_the_r_bit_and_keeps_the_m_bit() -> None:
    assert parse_tlvs(h("C0 07 00 01 AA")) == [Tlv(7, True, b"\xaa")]
    assert parse_tlvs(h("40 07 00 00")) == [Tlv(7, False, b"")]
    assert parse_tlvs(b"") == []


@pytest.mark.parametrize("cut", range(1, 66))
def test_parse_tlvs_rejects_every_truncation(cut: int) -> None:
    payload = build_result_tlv(ResultStatus.SUCCESS) + REQUEST_TLV
    if cut == 6:  # exactly the first TLV: a complete, valid sequence
        assert len(parse_tlvs(payload[:cut])) == 1
        return
    with pytest.raises(TlvError):
        parse_tlvs(payload[:cut])


def test_build_tlv_limits() -> None:
    assert build_tlv(0x3FFF, b"") == h("3F FF 00 00")
    with pytest.raises(TlvError):
        build_tlv(0x4000, b"")
    with pytest.raises(TlvError):
        build_tlv(3, bytes(0x10000))
    assert struct.unpack("!H", build_tlv(12, bytes(56))[2:4]) == (56,)
