"""EAP packet codec (RFC 3748 section 4 and 5): bytes in, dataclasses out.

sans-IO: this module never touches a socket or a clock. Parsing is strict
about framing (the Length field must match the bytes received exactly) because
a packet whose length we cannot trust would desynchronise every layer above
it; a problem raises :class:`EapError` naming what is wrong.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

HEADER_LENGTH = 4
"""Code, Identifier and the two-byte Length."""

MAX_PACKET_LENGTH = 0xFFFF
"""The Length field is 16 bits wide."""

EXPANDED_HEADER_LENGTH = 7
"""Vendor-Id (3 bytes) and Vendor-Type (4 bytes) after the expanded Type 254."""


class EapError(Exception):
    """An EAP packet or message that breaks the protocol; the text says what is wrong."""


class EapCode(enum.IntEnum):
    """EAP Code field (RFC 3748 section 4)."""

    REQUEST = 1
    RESPONSE = 2
    SUCCESS = 3
    FAILURE = 4


class EapType(enum.IntEnum):
    """EAP method types this project meets (IANA "Method Types" registry)."""

    IDENTITY = 1
    NOTIFICATION = 2
    NAK = 3
    MD5_CHALLENGE = 4
    OTP = 5
    GTC = 6
    TLS = 13
    TTLS = 21
    PEAP = 25
    MSCHAPV2 = 26
    TLV = 33
    """Microsoft's EAP-TLV, carried inside PEAPv0 ([MS-PEAP] 2.2.8)."""
    FAST = 43
    EXPANDED = 254
    EXPERIMENTAL = 255


class Vendor(enum.IntEnum):
    """Vendor-Ids seen in expanded types (type 254)."""

    IETF = 0
    MICROSOFT = 311
    """0x000137: [MS-PEAP] Capabilities (vendor type 0x22) and SoH (0x21) requests."""


def _code(value: int) -> EapCode:
    """Map a wire Code to the enum; unknown codes (RFC 6696's 5/6 included) are errors here."""
    try:
        return EapCode(value)
    except ValueError:
        raise EapError(f"unknown EAP Code {value}") from None


def _type(value: int) -> EapType | int:
    """Known types become enum members (readable reprs); others stay plain ints."""
    try:
        return EapType(value)
    except ValueError:
        return value


@dataclass(frozen=True)
class EapPacket:
    """One EAP packet. ``type`` is None exactly for Success and Failure.

    ``data`` is the Type-Data: everything after the Type byte (empty for
    Success/Failure).
    """

    code: EapCode
    identifier: int
    type: EapType | int | None
    data: bytes = b""

    def __post_init__(self) -> None:
        """Normalise Code/Type to the enums and refuse what could not be written as a valid packet."""
        object.__setattr__(self, "code", EapCode(self.code))
        if self.type is not None:
            object.__setattr__(self, "type", _type(self.type))
        if not 0 <= self.identifier <= 0xFF:
            raise ValueError(f"identifier {self.identifier} is outside 0..255")
        if self.code in (EapCode.SUCCESS, EapCode.FAILURE):
            if self.type is not None or self.data:
                raise ValueError(f"{self.code.name} carries no Type and no data")
        elif self.type is None or not 1 <= self.type <= 0xFF:
            raise ValueError(f"{self.code.name} needs a Type in 1..255, got {self.type!r}")
        if len(self) > MAX_PACKET_LENGTH:
            raise ValueError(f"EAP packet of {len(self)} bytes exceeds the 16-bit Length field")

    def __len__(self) -> int:
        """The value of the Length field."""
        if self.type is None:
            return HEADER_LENGTH
        return HEADER_LENGTH + 1 + len(self.data)

    @classmethod
    def parse(cls, data: bytes) -> EapPacket:
        """Decode one whole EAP packet; the Length field must equal ``len(data)``."""
        if len(data) < HEADER_LENGTH:
            raise EapError(f"truncated EAP header: {len(data)} bytes, need {HEADER_LENGTH}")
        code = _code(data[0])
        length = int.from_bytes(data[2:4], "big")
        if length != len(data):
            problem = "truncated" if length > len(data) else "trailing bytes"
            raise EapError(f"EAP Length field says {length} bytes but {len(data)} were received ({problem})")
        if code in (EapCode.SUCCESS, EapCode.FAILURE):
            if length != HEADER_LENGTH:
                raise EapError(f"EAP {code.name} must be exactly 4 bytes, got {length}")
            return cls(code, data[1], None)
        if length < HEADER_LENGTH + 1:
            raise EapError(f"EAP {code.name} without a Type field")
        if data[4] == 0:
            raise EapError(f"EAP {code.name} with the reserved Type 0")
        return cls(code, data[1], _type(data[4]), bytes(data[5:]))

    def to_bytes(self) -> bytes:
        """Encode to wire bytes."""
        header = bytes((self.code, self.identifier)) + len(self).to_bytes(2, "big")
        if self.type is None:
            return header
        return header + bytes((self.type,)) + self.data

    @classmethod
    def request(cls, identifier: int, type_: int, data: bytes = b"") -> EapPacket:
        """An EAP-Request of the given type."""
        return cls(EapCode.REQUEST, identifier, _type(type_), data)

    @classmethod
    def response(cls, identifier: int, type_: int, data: bytes = b"") -> EapPacket:
        """An EAP-Response of the given type."""
        return cls(EapCode.RESPONSE, identifier, _type(type_), data)

    @classmethod
    def success(cls, identifier: int) -> EapPacket:
        """EAP-Success (4 bytes)."""
        return cls(EapCode.SUCCESS, identifier, None)

    @classmethod
    def failure(cls, identifier: int) -> EapPacket:
        """EAP-Failure (4 bytes)."""
        return cls(EapCode.FAILURE, identifier, None)


def identity_request(identifier: int, prompt: bytes = b"") -> EapPacket:
    """EAP-Request/Identity; ``prompt`` is the optional displayable message."""
    return EapPacket.request(identifier, EapType.IDENTITY, prompt)


def identity_response(identifier: int, identity: str) -> EapPacket:
    """EAP-Response/Identity carrying ``identity`` in UTF-8 (RFC 3748 5.1)."""
    return EapPacket.response(identifier, EapType.IDENTITY, identity.encode("utf-8"))


def parse_identity(packet: EapPacket) -> str:
    """The identity from an Identity Response; invalid UTF-8 is an error, not a guess."""
    _require_type(packet, EapType.IDENTITY)
    try:
        return packet.data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EapError(f"EAP Identity is not valid UTF-8 (byte {exc.start})") from None


def type_label(value: int) -> str:
    """An EAP type as reports name it ("PEAP", "TLS", "MD5_CHALLENGE"), or its number."""
    try:
        return EapType(value).name
    except ValueError:
        return str(value)


def nak(identifier: int, desired: Sequence[int]) -> EapPacket:
    """Legacy Nak (RFC 3748 5.3.1) listing the types we would accept, best first.

    An empty list is sent as the single byte 0: "no alternative". Types 1-3
    are not authentication methods and may not be proposed.
    """
    for value in desired:
        if not 4 <= value <= 0xFF:
            raise ValueError(f"type {value} cannot be proposed in a Nak (allowed 4..255)")
    return EapPacket.response(identifier, EapType.NAK, bytes(desired) or b"\x00")


def parse_nak(packet: EapPacket) -> tuple[EapType | int, ...]:
    """The types a legacy Nak proposes; () for "no alternative" (a single 0)."""
    _require_type(packet, EapType.NAK)
    if not packet.data:
        raise EapError("EAP Nak without any desired type")
    if packet.data == b"\x00":
        return ()
    return tuple(_type(value) for value in packet.data)


@dataclass(frozen=True)
class ExpandedType:
    """Type-Data of an expanded type (RFC 3748 5.7): vendor, vendor type, payload."""

    vendor_id: int
    vendor_type: int
    data: bytes = b""

    def __post_init__(self) -> None:
        """Keep the fields within their 3- and 4-byte wire widths."""
        if not 0 <= self.vendor_id <= 0xFFFFFF:
            raise ValueError(f"vendor_id {self.vendor_id} does not fit in 3 bytes")
        if not 0 <= self.vendor_type <= 0xFFFFFFFF:
            raise ValueError(f"vendor_type {self.vendor_type} does not fit in 4 bytes")

    def to_bytes(self) -> bytes:
        """Type-Data bytes (to put after Type 254)."""
        return self.vendor_id.to_bytes(3, "big") + self.vendor_type.to_bytes(4, "big") + self.data


def parse_expanded(packet: EapPacket) -> ExpandedType:
    """Decode the Type-Data of a type-254 packet."""
    _require_type(packet, EapType.EXPANDED)
    if len(packet.data) < EXPANDED_HEADER_LENGTH:
        raise EapError(f"expanded EAP type needs 7 bytes of Vendor-Id/Vendor-Type, got {len(packet.data)}")
    return ExpandedType(
        int.from_bytes(packet.data[0:3], "big"),
        int.from_bytes(packet.data[3:7], "big"),
        bytes(packet.data[7:]),
    )


def expanded_packet(code: EapCode, identifier: int, expanded: ExpandedType) -> EapPacket:
    """A Request or Response of type 254 carrying ``expanded``."""
    return EapPacket(code, identifier, EapType.EXPANDED, expanded.to_bytes())


def _require_type(packet: EapPacket, expected: EapType) -> None:
    """Helpers decode only the type they were written for."""
    if packet.type != expected:
        raise EapError(f"expected EAP type {expected.name} ({expected.value}), got {packet.type!r}")
