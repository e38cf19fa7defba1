"""EAP packet codec: byte vectors for every rule, and fuzzing for the error contract."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from probe.eap.packet import (
    EapCode,
    EapError,
    EapPacket,
    EapType,
    ExpandedType,
    Vendor,
    expanded_packet,
    identity_request,
    identity_response,
    nak,
    parse_expanded,
    parse_identity,
    parse_nak,
)


def test_identity_response_bytes() -> None:
    packet = identity_response(7, "alice")
    assert packet.to_bytes() == bytes.fromhex("0207000a01") + b"alice"
    assert parse_identity(EapPacket.parse(packet.to_bytes())) == "alice"


def test_identity_request_round_trip() -> None:
    wire = bytes.fromhex("0101000501")
    packet = EapPacket.parse(wire)
    assert packet == identity_request(1)
    assert packet.code is EapCode.REQUEST and packet.type is EapType.IDENTITY
    assert packet.to_bytes() == wire


def test_unknown_type_stays_an_int() -> None:
    packet = EapPacket.parse(bytes.fromhex("02030007c8abcd"))
    assert packet.type == 200 and not isinstance(packet.type, EapType)
    assert packet.data == b"\xab\xcd"


@pytest.mark.parametrize(("wire", "code"), [("03090004", EapCode.SUCCESS), ("04090004", EapCode.FAILURE)])
def test_success_failure_are_four_bytes(wire: str, code: EapCode) -> None:
    packet = EapPacket.parse(bytes.fromhex(wire))
    assert packet.code is code and packet.type is None and packet.identifier == 9
    assert packet.to_bytes() == bytes.fromhex(wire)


def test_success_with_a_type_byte_is_rejected() -> None:
    with pytest.raises(EapError, match="exactly 4 bytes"):
        EapPacket.parse(bytes.fromhex("0309000501"))


def test_truncated_packet_names_the_problem() -> None:
    with pytest.raises(EapError, match=r"says 10 bytes but 8 were received \(truncated\)"):
        EapPacket.parse(bytes.fromhex("0201000a01616263"))


def test_overlong_packet_names_the_problem() -> None:
    with pytest.raises(EapError, match=r"says 6 bytes but 8 were received \(trailing bytes\)"):
        EapPacket.parse(bytes.fromhex("0201000601616263"))


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        ("", "truncated EAP header"),
        ("0201", "truncated EAP header"),
        ("07010004", "unknown EAP Code 7"),
        ("01010004", "without a Type field"),
        ("0101000500", "reserved Type 0"),
    ],
)
def test_malformed_headers(wire: str, message: str) -> None:
    with pytest.raises(EapError, match=message):
        EapPacket.parse(bytes.fromhex(wire))


def test_nak_lists_desired_types_in_order() -> None:
    packet = nak(3, [EapType.PEAP, EapType.TLS])
    assert packet.to_bytes() == bytes.fromhex("02030007" "03" "19" "0d")
    assert parse_nak(packet) == (EapType.PEAP, EapType.TLS)


def test_nak_without_alternative_is_a_zero() -> None:
    packet = nak(3, [])
    assert packet.data == b"\x00"
    assert parse_nak(packet) == ()


def test_nak_refuses_non_methods() -> None:
    with pytest.raises(ValueError, match="type 1 cannot be proposed"):
        nak(1, [EapType.IDENTITY])


def test_empty_nak_on_the_wire_is_an_error() -> None:
    with pytest.raises(EapError, match="without any desired type"):
        parse_nak(EapPacket.parse(bytes.fromhex("0203000503")))


def test_capabilities_request_expanded_type() -> None:
    # [MS-PEAP] Capabilities request: type 254, Vendor-Id 0x000137, Vendor-Type 0x22, 4 bytes of data.
    wire = bytes.fromhex("01050010" "fe" "000137" "00000022" "00000001")
    packet = EapPacket.parse(wire)
    expanded = parse_expanded(packet)
    assert expanded == ExpandedType(Vendor.MICROSOFT, 0x22, bytes.fromhex("00000001"))
    assert expanded_packet(EapCode.REQUEST, 5, expanded).to_bytes() == wire


def test_expanded_type_needs_seven_bytes() -> None:
    with pytest.raises(EapError, match="needs 7 bytes"):
        parse_expanded(EapPacket.parse(bytes.fromhex("01050009fe00013700")))


def test_helpers_check_the_type() -> None:
    with pytest.raises(EapError, match="expected EAP type IDENTITY"):
        parse_identity(nak(1, [13]))


def test_identity_must_be_utf8() -> None:
    with pytest.raises(EapError, match="not valid UTF-8"):
        parse_identity(EapPacket.response(1, EapType.IDENTITY, b"\xff\xfe"))


def test_constructor_refuses_unwritable_packets() -> None:
    with pytest.raises(ValueError, match="identifier 256"):
        EapPacket.response(256, EapType.IDENTITY)
    with pytest.raises(ValueError, match="SUCCESS carries no Type"):
        EapPacket(EapCode.SUCCESS, 1, EapType.TLS)
    with pytest.raises(ValueError, match="16-bit Length"):
        EapPacket.request(1, EapType.TLS, bytes(0xFFFF))


@given(st.binary(max_size=64))
def test_parse_raises_only_eap_error(data: bytes) -> None:
    try:
        packet = EapPacket.parse(data)
    except EapError:
        return
    assert packet.to_bytes() == data


@given(
    st.sampled_from([EapCode.REQUEST, EapCode.RESPONSE]),
    st.integers(0, 255),
    st.integers(1, 255),
    st.binary(max_size=300),
)
def test_round_trip(code: EapCode, identifier: int, type_: int, data: bytes) -> None:
    packet = EapPacket(code, identifier, type_, data)
    assert EapPacket.parse(packet.to_bytes()) == packet
