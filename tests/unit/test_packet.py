"""The wire codec, with RFC 2865 bytes and pyrad as an independent implementation."""

from __future__ import annotations

import hashlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyrad.dictionary import Dictionary
from pyrad.packet import AuthPacket

from probe.radius import packet as pk
from probe.radius.dictionary import dictionary_dir

# RFC 2865 section 7.1 "User Telnet to Specified Host" (secret xyzzy5461).
RFC_SECRET = b"xyzzy5461"
RFC_REQUEST = bytes.fromhex(
    "01 00 00 38 0f 40 3f 94 73 97 80 57 bd 83 d5 cb"
    "98 f4 22 7a 01 06 6e 65 6d 6f 02 12 0d be 70 8d"
    "93 d4 13 ce 31 96 e4 3f 78 2a 0a ee 04 06 c0 a8"
    "01 10 05 06 00 00 00 03"
)
RFC_ACCEPT = bytes.fromhex(
    "02 00 00 26 86 fe 22 0e 76 24 ba 2a 10 05 f6 bf"
    "9b 55 e0 b2 06 06 00 00 00 01 0f 06 00 00 00 00"
    "0e 06 c0 a8 01 03"
)
RFC_AUTH = RFC_REQUEST[4:20]


def rfc_request_attrs() -> list[pk.Attr]:
    return [
        (pk.USER_NAME, b"nemo"),
        pk.password_attr(b"arctangent", RFC_SECRET, RFC_AUTH),
        (4, bytes([192, 168, 1, 16])),
        (5, struct.pack("!I", 3)),
    ]


def test_rfc2865_access_request_bytes() -> None:
    built = pk.build_request(0, RFC_AUTH, rfc_request_attrs(), RFC_SECRET, message_authenticator=False)
    assert built.raw == RFC_REQUEST


def test_rfc2865_password_decrypts() -> None:
    req = pk.parse_packet(RFC_REQUEST)
    assert pk.decrypt_user_password(req.get(pk.USER_PASSWORD), RFC_SECRET, req.authenticator) == b"arctangent"


def test_rfc2865_accept_verifies_and_is_unsigned() -> None:
    request = pk.parse_packet(RFC_REQUEST)
    reply = pk.verify_reply(RFC_ACCEPT, request, RFC_SECRET)
    assert reply.code == pk.ACCESS_ACCEPT
    assert reply.message_authenticator == "absent"
    assert reply.packet.attributes == [(6, b"\x00\x00\x00\x01"), (15, b"\x00" * 4), (14, bytes([192, 168, 1, 3]))]


def test_rfc2865_accept_with_other_secret_is_bad_authenticator() -> None:
    request = pk.parse_packet(RFC_REQUEST)
    with pytest.raises(pk.PacketError) as err:
        pk.verify_reply(RFC_ACCEPT, request, b"not-the-secret")
    assert err.value.kind == "bad_authenticator"
    assert "not-the-secret" not in str(err.value)


def test_server_built_reply_equals_rfc_reply() -> None:
    request = pk.parse_packet(RFC_REQUEST)
    attrs = [(6, b"\x00\x00\x00\x01"), (15, b"\x00" * 4), (14, bytes([192, 168, 1, 3]))]
    assert pk.build_reply(pk.ACCESS_ACCEPT, request, attrs, RFC_SECRET, message_authenticator=False) == RFC_ACCEPT


# -- Message-Authenticator, cross-checked with pyrad ------------------------


@pytest.fixture(scope="module")
def pyrad_dict() -> Dictionary:
    return Dictionary(str(dictionary_dir() / "dictionary"))


def test_message_authenticator_is_first_and_pyrad_verifies_it(pyrad_dict: Dictionary) -> None:
    auth = bytes(range(16))
    built = pk.build_request(7, auth, [(pk.USER_NAME, b"alice"), (4, b"\x7f\x00\x00\x01")], b"s3cret")
    assert built.raw[20] == pk.MESSAGE_AUTHENTICATOR and built.raw[21] == 18
    theirs = AuthPacket(packet=built.raw, secret=b"s3cret", dict=pyrad_dict)
    assert theirs.verify_message_authenticator()
    wrong = AuthPacket(packet=built.raw, secret=b"other", dict=pyrad_dict)
    assert not wrong.verify_message_authenticator()


def test_signed_reply_valid_and_tampered(pyrad_dict: Dictionary) -> None:
    request = pk.build_request(9, bytes(16), [(pk.USER_NAME, b"bob")], b"k")
    raw = pk.build_reply(pk.ACCESS_CHALLENGE, request, [(pk.STATE, b"st"), *pk.eap_message_attrs(b"\x01" * 10)], b"k")
    reply = pk.verify_reply(raw, request, b"k")
    assert reply.message_authenticator == "valid"
    assert raw[20] == pk.MESSAGE_AUTHENTICATOR
    # Flip one byte of the Message-Authenticator and fix the Response Authenticator:
    # only the M-A check can catch it.
    bad = bytearray(raw)
    bad[25] ^= 1
    bad[4:20] = hashlib.md5(bytes(bad[:4]) + request.authenticator + bytes(bad[20:]) + b"k").digest()
    with pytest.raises(pk.PacketError) as err:
        pk.verify_reply(bytes(bad), request, b"k")
    assert err.value.kind == "bad_authenticator" and "Message-Authenticator" in err.value.detail


def test_request_message_authenticator_states() -> None:
    signed = pk.build_request(1, bytes(16), [(pk.USER_NAME, b"a")], b"k")
    unsigned = pk.build_request(1, bytes(16), [(pk.USER_NAME, b"a")], b"k", message_authenticator=False)
    assert pk.request_message_authenticator(pk.parse_packet(signed.raw), b"k") == "valid"
    assert pk.request_message_authenticator(pk.parse_packet(signed.raw), b"x") == "invalid"
    assert pk.request_message_authenticator(pk.parse_packet(unsigned.raw), b"k") == "absent"


def test_reply_identifier_mismatch_is_malformed() -> None:
    request = pk.build_request(3, bytes(16), [(pk.USER_NAME, b"a")], b"k")
    other = pk.build_request(4, bytes(16), [(pk.USER_NAME, b"a")], b"k")
    raw = pk.build_reply(pk.ACCESS_ACCEPT, other, [], b"k")
    with pytest.raises(pk.PacketError) as err:
        pk.verify_reply(raw, request, b"k")
    assert err.value.kind == "malformed"


# -- strict lengths ------------------------------------------------------------


def _reply_with_attr_area(area: bytes, declared_len: int | None = None) -> bytes:
    length = 20 + len(area) if declared_len is None else declared_len
    return struct.pack("!BBH", 2, 0, length) + bytes(16) + area


@pytest.mark.parametrize(
    "area, fragment",
    [
        (b"\x12\x0aabc", "claims 10 bytes"),  # attribute runs past the end
        (b"\x12\x01", "length 1"),  # length below 2
        (b"\x12", "cut after its type byte"),
        (b"\x12\x00abc", "length 0"),
    ],
)
def test_truncated_or_overlong_attribute_is_malformed(area: bytes, fragment: str) -> None:
    with pytest.raises(pk.PacketError) as err:
        pk.parse_packet(_reply_with_attr_area(area))
    assert err.value.kind == "malformed" and fragment in err.value.detail


def test_length_field_longer_than_datagram_is_malformed() -> None:
    with pytest.raises(pk.PacketError, match="Length field says 40"):
        pk.parse_packet(_reply_with_attr_area(b"\x12\x05abc", declared_len=40))


def test_bytes_past_length_are_padding() -> None:
    raw = _reply_with_attr_area(b"\x12\x05abc") + b"\xff\xff"
    pkt = pk.parse_packet(raw)
    assert pkt.attributes == [(18, b"abc")] and len(pkt.raw) == 25


def test_short_header_and_bad_length_field() -> None:
    with pytest.raises(pk.PacketError, match="shorter than the 20-byte header"):
        pk.parse_packet(b"\x02\x00\x00")
    with pytest.raises(pk.PacketError, match="outside 20..4096"):
        pk.parse_packet(struct.pack("!BBH", 2, 0, 19) + bytes(16))


def test_malformed_vsa_is_malformed() -> None:
    with pytest.raises(pk.PacketError, match="bad length"):
        pk.split_vsa(struct.pack("!I", 311) + b"\x10\x09abc")


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=300))
def test_any_bytes_parse_or_raise_packet_error(data: bytes) -> None:
    try:
        pkt = pk.parse_packet(data)
    except pk.PacketError:
        return
    assert pk.encode_attributes(pkt.attributes) == pkt.raw[20:]


# -- EAP-Message split / join --------------------------------------------------


@pytest.mark.parametrize("size", [1, 253, 254, 506, 1000, 1500])
def test_eap_message_split_and_join(size: int) -> None:
    eap = bytes(i % 251 for i in range(size))
    attrs = pk.eap_message_attrs(eap)
    assert all(len(v) <= 253 for _, v in attrs)
    assert len(attrs) == -(-size // 253)
    request = pk.build_request(1, bytes(16), [(pk.USER_NAME, b"u"), *attrs], b"k")
    assert pk.parse_packet(request.raw).eap() == eap


def test_no_eap_message_joins_to_none() -> None:
    assert pk.join_eap_message([(pk.USER_NAME, b"u")]) is None


def test_oversized_attribute_value_is_refused() -> None:
    with pytest.raises(ValueError, match="outside 1..253"):
        pk.encode_attributes([(pk.EAP_MESSAGE, bytes(254))])


# -- MS-MPPE keys (RFC 2548 salt encryption), cross-checked with pyrad ---------


def test_mppe_keys_decrypt_as_pyrad_decrypts_them(pyrad_dict: Dictionary) -> None:
    secret = b"mppe-secret"
    request = pk.build_request(5, bytes(range(16, 32)), [(pk.USER_NAME, b"u")], secret)
    send_key, recv_key = bytes(range(32)), bytes(range(100, 132))
    attrs = [
        pk.vsa(311, pk.MS_MPPE_SEND_KEY, pk.salt_encrypt(send_key, secret, request.authenticator, b"\x80\x01")),
        pk.vsa(311, pk.MS_MPPE_RECV_KEY, pk.salt_encrypt(recv_key, secret, request.authenticator, b"\x80\x02")),
    ]
    raw = pk.build_reply(pk.ACCESS_ACCEPT, request, attrs, secret)
    reply = pk.verify_reply(raw, request, secret)
    assert pk.mppe_keys(reply.packet, request.authenticator, secret) == (send_key, recv_key)
    theirs = AuthPacket(packet=raw, secret=secret, dict=pyrad_dict)
    theirs.authenticator = request.authenticator
    theirs.request_authenticator = request.authenticator  # pyrad needs it for salt decryption
    assert theirs["MS-MPPE-Send-Key"][0] == send_key
    assert theirs["MS-MPPE-Recv-Key"][0] == recv_key


def test_mppe_keys_with_wrong_secret_do_not_match() -> None:
    auth = bytes(16)
    hidden = pk.salt_encrypt(b"K" * 32, b"right", auth, b"\x81\x00")
    try:
        got = pk.salt_decrypt(hidden, b"wrong", auth)
    except pk.PacketError:
        return  # a garbage length byte is detected as malformed
    assert got != b"K" * 32


def test_salted_value_bad_shape_is_malformed() -> None:
    with pytest.raises(pk.PacketError, match="salt \\+ n\\*16"):
        pk.salt_decrypt(b"\x80\x00" + bytes(15), b"k", bytes(16))
    with pytest.raises(pk.PacketError, match="top bit"):
        pk.salt_decrypt(b"\x00\x00" + bytes(16), b"k", bytes(16))


def test_mppe_absent_is_none() -> None:
    request = pk.build_request(5, bytes(16), [(pk.USER_NAME, b"u")], b"k")
    reply = pk.verify_reply(pk.build_reply(pk.ACCESS_ACCEPT, request, [], b"k"), request, b"k")
    assert pk.mppe_keys(reply.packet, request.authenticator, b"k") is None


@pytest.mark.parametrize("password", [b"", b"x", b"0123456789abcdef", b"0123456789abcdef!", bytes(range(1, 129))])
def test_user_password_round_trip(password: bytes) -> None:
    hidden = pk.encrypt_user_password(password, b"k", bytes(16))
    assert len(hidden) % 16 == 0 and len(hidden) >= 16
    assert pk.decrypt_user_password(hidden, b"k", bytes(16)) == password
