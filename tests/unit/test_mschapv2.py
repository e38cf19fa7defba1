"""MS-CHAPv2 and its MPPE keys against RFC 2759 9.2/9.3 and RFC 3079 3.5.3.

The RFC 2759 values are from the RFC text itself (section 9.2 "Hash
Example", 9.3 "Example of DES Key Generation"). The RFC 3079 3.5.3
MasterKey/SendStartKey128 values are quoted identically by many
independent implementations' test suites (the RFC text was not in the
reference store); they also chain from the RFC 2759 NT-Response here.
"""

from __future__ import annotations

import struct

import pytest

from probe.eap.crypto import Role
from probe.eap.mschapv2 import (
    OP_CHALLENGE,
    OP_RESPONSE,
    Challenge,
    FailureAck,
    FailureRequest,
    MschapV2Error,
    Response,
    SuccessAck,
    SuccessRequest,
    build_challenge,
    build_failure_ack,
    build_failure_request,
    build_response,
    build_success_ack,
    build_success_request,
    challenge_hash,
    challenge_response,
    check_authenticator_response,
    check_nt_response,
    des_key_with_parity,
    eap_mschapv2_msk,
    generate_authenticator_response,
    generate_nt_response,
    get_asymmetric_start_key,
    get_master_key,
    hash_nt_password_hash,
    mppe_keys,
    nt_password_hash,
    parse_request,
    parse_response,
)

# RFC 2759 section 9.2
USER = "User"
PASSWORD = "clientPass"
AUTH_CHALLENGE = bytes.fromhex("5B5D7C7D7B3F2F3E3C2C602132262628")
PEER_CHALLENGE = bytes.fromhex("21402324255E262A28295F2B3A337C7E")
CHALLENGE = bytes.fromhex("D02E4386BCE91226")
PASSWORD_HASH = bytes.fromhex("44EBBA8D5312B8D611474411F56989AE")
NT_RESPONSE = bytes.fromhex("82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF")
PASSWORD_HASH_HASH = bytes.fromhex("41C00C584BD2D91C4017A2A12FA59F3F")
AUTH_RESPONSE = b"S=407A5589115FD0D6209F510FE9C04566932CDA56"

# RFC 3079 section 3.5.3
MASTER_KEY = bytes.fromhex("FDECE3717A8C838CB388E527AE3CDD31")
SEND_START_KEY_128 = bytes.fromhex("8B7CDC149B993A1BA118CB153F56DCCB")


# --------------------------------------------------------------------------
# RFC 2759
# --------------------------------------------------------------------------


def test_rfc2759_unicode_password_is_utf16le() -> None:
    assert PASSWORD.encode("utf-16-le").hex(" ").upper() == "63 00 6C 00 69 00 65 00 6E 00 74 00 50 00 61 00 73 00 73 00"


def test_rfc2759_password_hash_and_hash_hash() -> None:
    assert nt_password_hash(PASSWORD) == PASSWORD_HASH
    assert hash_nt_password_hash(PASSWORD_HASH) == PASSWORD_HASH_HASH


def test_rfc2759_challenge_hash() -> None:
    assert challenge_hash(PEER_CHALLENGE, AUTH_CHALLENGE, USER) == CHALLENGE


def test_rfc2759_challenge_response_and_nt_response() -> None:
    assert challenge_response(CHALLENGE, PASSWORD_HASH) == NT_RESPONSE
    assert generate_nt_response(AUTH_CHALLENGE, PEER_CHALLENGE, USER, PASSWORD) == NT_RESPONSE


def test_rfc2759_authenticator_response() -> None:
    got = generate_authenticator_response(PASSWORD, NT_RESPONSE, PEER_CHALLENGE, AUTH_CHALLENGE, USER)
    assert got == AUTH_RESPONSE


def test_rfc2759_des_key_parity_example() -> None:
    # Section 9.3: password "MyPw".
    pw_hash = nt_password_hash("MyPw")
    assert pw_hash == bytes.fromhex("FC156AF7EDCD6C0EDDE3337D427F4EAC")
    assert des_key_with_parity(pw_hash[:7]) == bytes.fromhex("FD0B5B5E7F6E34D9")
    assert des_key_with_parity(pw_hash[7:14]) == bytes.fromhex("0E6E796737EA08FE")


def test_des_keys_have_odd_parity_for_every_byte_value() -> None:
    for value in range(256):
        for byte in des_key_with_parity(bytes([value]) * 7):
            assert bin(byte).count("1") % 2 == 1


def test_domain_prefix_is_excluded_from_challenge_hash() -> None:
    # RFC 2759 8.2: "excluding any prepended domain name".
    assert challenge_hash(PEER_CHALLENGE, AUTH_CHALLENGE, "CORP\\User") == CHALLENGE
    assert generate_nt_response(AUTH_CHALLENGE, PEER_CHALLENGE, b"CORP\\User", PASSWORD) == NT_RESPONSE


def test_check_authenticator_response_accepts_only_the_right_value() -> None:
    args = (PASSWORD, NT_RESPONSE, PEER_CHALLENGE, AUTH_CHALLENGE, USER)
    assert check_authenticator_response(*args, AUTH_RESPONSE)
    assert check_authenticator_response(*args, AUTH_RESPONSE.lower().replace(b"s=", b"S="))
    tampered = AUTH_RESPONSE[:-1] + b"7"
    assert not check_authenticator_response(*args, tampered)
    assert not check_authenticator_response("wrongPass", *args[1:], AUTH_RESPONSE)
    assert not check_authenticator_response(*args, AUTH_RESPONSE[:-2])


def test_check_nt_response_server_side() -> None:
    assert check_nt_response(AUTH_CHALLENGE, PEER_CHALLENGE, USER, PASSWORD, NT_RESPONSE)
    assert not check_nt_response(AUTH_CHALLENGE, PEER_CHALLENGE, USER, "clientPasS", NT_RESPONSE)
    assert not check_nt_response(AUTH_CHALLENGE, PEER_CHALLENGE, "Other", PASSWORD, NT_RESPONSE)


def test_length_errors_never_echo_secrets() -> None:
    secret = "hunter2-secret"
    with pytest.raises(MschapV2Error) as excinfo:
        generate_nt_response(AUTH_CHALLENGE[:15], PEER_CHALLENGE, USER, secret)
    assert secret not in str(excinfo.value)
    with pytest.raises(MschapV2Error) as excinfo:
        check_nt_response(AUTH_CHALLENGE, PEER_CHALLENGE, USER, secret, NT_RESPONSE[:23])
    assert secret not in str(excinfo.value)


# --------------------------------------------------------------------------
# RFC 3079
# --------------------------------------------------------------------------


def test_rfc3079_master_key() -> None:
    assert get_master_key(PASSWORD_HASH_HASH, NT_RESPONSE) == MASTER_KEY


def test_rfc3079_send_start_key_128_is_the_server_send_key() -> None:
    # 3.5.3 derives SendStartKey128 with IsServer = TRUE; the same magic
    # gives the client's receive key, which is the point of the scheme.
    assert get_asymmetric_start_key(MASTER_KEY, 16, is_send=True, is_server=True) == SEND_START_KEY_128
    assert get_asymmetric_start_key(MASTER_KEY, 16, is_send=False, is_server=False) == SEND_START_KEY_128
    assert get_asymmetric_start_key(MASTER_KEY, 8, is_send=True, is_server=True) == SEND_START_KEY_128[:8]


def test_mppe_keys_mirror_between_roles() -> None:
    peer = mppe_keys(PASSWORD, NT_RESPONSE, Role.PEER)
    server = mppe_keys(PASSWORD, NT_RESPONSE, Role.SERVER)
    assert peer.recv_key == server.send_key == SEND_START_KEY_128
    assert peer.send_key == server.recv_key != SEND_START_KEY_128
    assert SEND_START_KEY_128.hex() not in repr(peer).lower()


def test_eap_mschapv2_msk_is_peer_send_then_peer_recv() -> None:
    peer = mppe_keys(PASSWORD, NT_RESPONSE, Role.PEER)
    msk = eap_mschapv2_msk(PASSWORD, NT_RESPONSE)
    assert len(msk) == 64
    assert msk == peer.send_key + peer.recv_key + bytes(32)


# --------------------------------------------------------------------------
# EAP-MSCHAPv2 packets
# --------------------------------------------------------------------------


def test_challenge_bytes_match_the_draft_layout() -> None:
    # OpCode 1, MS-CHAPv2-ID, MS-Length (from OpCode to end), Value-Size 16, value, name.
    wire = build_challenge(7, AUTH_CHALLENGE, b"nps")
    assert wire == bytes([1, 7]) + struct.pack("!H", 4 + 1 + 16 + 3) + b"\x10" + AUTH_CHALLENGE + b"nps"
    assert parse_request(wire) == Challenge(7, AUTH_CHALLENGE, b"nps")


def test_response_bytes_match_the_draft_layout() -> None:
    wire = build_response(7, PEER_CHALLENGE, NT_RESPONSE, b"User")
    value = PEER_CHALLENGE + bytes(8) + NT_RESPONSE + b"\x00"
    assert wire == bytes([2, 7]) + struct.pack("!H", 4 + 1 + 49 + 4) + b"\x31" + value + b"User"
    assert parse_response(wire) == Response(7, PEER_CHALLENGE, NT_RESPONSE, 0, b"User")


def test_success_request_round_trip_with_and_without_message() -> None:
    wire = build_success_request(9, AUTH_RESPONSE, "Welcome")
    assert wire[4:] == AUTH_RESPONSE + b" M=Welcome"
    assert parse_request(wire) == SuccessRequest(9, AUTH_RESPONSE, "Welcome")
    bare = build_success_request(9, AUTH_RESPONSE)
    assert parse_request(bare) == SuccessRequest(9, AUTH_RESPONSE, "")


def test_failure_request_round_trip() -> None:
    wire = build_failure_request(3, 691, retry=True, challenge=AUTH_CHALLENGE, message="Authentication failed")
    assert wire[4:] == b"E=691 R=1 C=" + AUTH_CHALLENGE.hex().upper().encode() + b" V=3 M=Authentication failed"
    assert parse_request(wire) == FailureRequest(3, 691, True, AUTH_CHALLENGE, 3, "Authentication failed")


def test_failure_request_from_a_minimal_server() -> None:
    body = b"E=648 R=0 V=3"
    wire = bytes([4, 1]) + struct.pack("!H", 4 + len(body)) + body
    assert parse_request(wire) == FailureRequest(1, 648, False, None, 3, "")


def test_acks_are_single_octets_both_ways() -> None:
    assert build_success_ack() == b"\x03" and build_failure_ack() == b"\x04"
    assert parse_response(b"\x03") == SuccessAck()
    assert parse_response(b"\x04") == FailureAck()


def test_full_exchange_both_roles() -> None:
    """Server challenge -> peer response -> server success -> peer verifies."""
    challenge = parse_request(build_challenge(1, AUTH_CHALLENGE, b"srv"))
    assert isinstance(challenge, Challenge)
    nt = generate_nt_response(challenge.challenge, PEER_CHALLENGE, USER, PASSWORD)
    response = parse_response(build_response(challenge.ms_id, PEER_CHALLENGE, nt, USER.encode()))
    assert isinstance(response, Response)
    assert check_nt_response(AUTH_CHALLENGE, response.peer_challenge, response.name, PASSWORD, response.nt_response)
    s_value = generate_authenticator_response(PASSWORD, response.nt_response, response.peer_challenge, AUTH_CHALLENGE, response.name)
    success = parse_request(build_success_request(response.ms_id, s_value))
    assert isinstance(success, SuccessRequest)
    assert check_authenticator_response(PASSWORD, nt, PEER_CHALLENGE, AUTH_CHALLENGE, USER, success.authenticator_response)


def _packet(op: int, ms_id: int, body: bytes) -> bytes:
    """Frame ``body`` with a correct MS-Length, so only the body is malformed."""
    return bytes([op, ms_id]) + struct.pack("!H", 4 + len(body)) + body


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (b"", "truncated"),
        (b"\x01\x01\x00", "truncated"),
        (bytes([1, 1, 0, 30]) + b"\x10" + AUTH_CHALLENGE, "MS-Length"),
        (bytes([1, 1, 0, 20]) + b"\x10" + AUTH_CHALLENGE + b"x", "MS-Length"),
        (_packet(OP_CHALLENGE, 1, b""), "Value-Size octet"),
        (_packet(OP_CHALLENGE, 1, b"\x0f" + AUTH_CHALLENGE), "Value-Size is 15"),
        (_packet(OP_CHALLENGE, 1, b"\x10" + AUTH_CHALLENGE[:10]), "truncated"),
        (_packet(OP_RESPONSE, 1, b""), "OpCode 2"),
        (_packet(3, 1, b"S=407A"), "40 hex"),
        (_packet(3, 1, b"S=" + b"G" * 40), "not hexadecimal"),
        (_packet(3, 1, AUTH_RESPONSE + b" X=1"), "after the S="),
        (_packet(4, 1, b"R=0 V=3 M="), "numeric E="),
        (_packet(4, 1, b"E=691 C=1234 M="), "16 bytes"),
        (_packet(4, 1, b"E=691 E=692 M="), "bad field"),
    ],
)
def test_parse_request_rejects_malformed_packets(wire: bytes, reason: str) -> None:
    with pytest.raises(MschapV2Error, match=reason):
        parse_request(wire)


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (b"", "truncated"),
        (b"\x03\x00", "exactly one octet"),
        (_packet(4, 1, b""), "exactly one octet"),
        (_packet(OP_CHALLENGE, 1, b"\x10" + AUTH_CHALLENGE), "OpCode 1"),
        (_packet(OP_RESPONSE, 1, b"\x31" + bytes(48)), "truncated: 48 of 49"),
        (_packet(OP_RESPONSE, 1, b"\x31" + PEER_CHALLENGE + b"\x01" + bytes(7) + NT_RESPONSE + b"\x00"), "reserved"),
    ],
)
def test_parse_response_rejects_malformed_packets(wire: bytes, reason: str) -> None:
    with pytest.raises(MschapV2Error, match=reason):
        parse_response(wire)


def test_builders_refuse_bad_inputs() -> None:
    with pytest.raises(MschapV2Error):
        build_challenge(256, AUTH_CHALLENGE, b"")
    with pytest.raises(MschapV2Error):
        build_response(1, PEER_CHALLENGE, NT_RESPONSE[:20], b"")
    with pytest.raises(MschapV2Error):
        build_success_request(1, b"S=1234")
