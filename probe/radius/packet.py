"""RADIUS packets on the wire: build, verify, split and decrypt (sans-IO).

No sockets, no clock: bytes in, bytes or small records out, so every rule here is
tested with bytes and published vectors.  Both roles live here: the probe builds
Access-Requests and verifies replies; the NPS emulator parses requests and signs
replies with the same code.

Rules enforced (see PROTOCOL-NOTES.md):
- every Access-Request we build carries Message-Authenticator as its FIRST attribute;
- a reply is checked for Identifier, Response Authenticator and, when present,
  Message-Authenticator; absent is recorded, present-but-wrong is an error;
- attribute lengths are checked strictly: a truncated or overlong attribute makes
  the packet malformed, nothing is silently cut;
- EAP-Message is split into 253-byte attributes and joined on receipt.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass, field
from typing import Iterable, Sequence

ACCESS_REQUEST = 1
ACCESS_ACCEPT = 2
ACCESS_REJECT = 3
ACCOUNTING_REQUEST = 4
ACCOUNTING_RESPONSE = 5
ACCESS_CHALLENGE = 11
STATUS_SERVER = 12

CODE_NAMES = {
    ACCESS_REQUEST: "Access-Request",
    ACCESS_ACCEPT: "Access-Accept",
    ACCESS_REJECT: "Access-Reject",
    ACCOUNTING_REQUEST: "Accounting-Request",
    ACCOUNTING_RESPONSE: "Accounting-Response",
    ACCESS_CHALLENGE: "Access-Challenge",
    STATUS_SERVER: "Status-Server",
}
REPLY_CODES = frozenset({ACCESS_ACCEPT, ACCESS_REJECT, ACCESS_CHALLENGE})
REPLY_CODES_FOR = {
    ACCESS_REQUEST: REPLY_CODES,
    # RFC 5997 3: Access-Accept on an authentication port, Accounting-Response on an accounting port
    STATUS_SERVER: frozenset({ACCESS_ACCEPT, ACCOUNTING_RESPONSE}),
    ACCOUNTING_REQUEST: frozenset({ACCOUNTING_RESPONSE}),  # RFC 2866 4.2
}
"""The reply codes that may answer each request code."""

# Attribute types this module handles itself.
USER_NAME = 1
USER_PASSWORD = 2
REPLY_MESSAGE = 18
STATE = 24
VENDOR_SPECIFIC = 26
EAP_MESSAGE = 79
MESSAGE_AUTHENTICATOR = 80

VENDOR_MICROSOFT = 311
MS_MPPE_SEND_KEY = 16
MS_MPPE_RECV_KEY = 17

HEADER_LEN = 20
MAX_PACKET_LEN = 4096
MAX_ATTR_VALUE = 253

Attr = tuple[int, bytes]  # (type, value) as on the wire; type 26 carries the raw VSA body


class PacketError(Exception):
    """A packet we cannot trust.  ``kind`` is the Outcome error_kind it maps to."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


def malformed(detail: str) -> PacketError:
    return PacketError("malformed", detail)


# ---------------------------------------------------------------------------
# Attributes
# ---------------------------------------------------------------------------


def encode_attributes(attrs: Iterable[Attr]) -> bytes:
    out = bytearray()
    for atype, value in attrs:
        size = len(value)
        if not 1 <= atype <= 255:
            raise ValueError(f"attribute type {atype} is outside 1..255")
        if not 1 <= size <= MAX_ATTR_VALUE:
            raise ValueError(f"attribute {atype}: value length {size} is outside 1..253")
        out.append(atype)  # appended in place: no header bytes object and no concatenated copy per attribute
        out.append(size + 2)
        out += value
    return bytes(out)


def decode_attributes(data: bytes) -> list[Attr]:
    """Split an attribute area strictly: any length that does not fit is malformed."""
    attrs: list[Attr] = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < 2:
            raise malformed(f"attribute at offset {HEADER_LEN + pos} is cut after its type byte")
        atype, alen = data[pos], data[pos + 1]
        if alen < 2:
            raise malformed(f"attribute {atype} at offset {HEADER_LEN + pos} has length {alen} (< 2)")
        if pos + alen > len(data):
            raise malformed(
                f"attribute {atype} at offset {HEADER_LEN + pos} claims {alen} bytes, "
                f"only {len(data) - pos} remain"
            )
        attrs.append((atype, data[pos + 2 : pos + alen]))
        pos += alen
    return attrs


def vsa(vendor_id: int, vendor_type: int, value: bytes) -> Attr:
    """A Vendor-Specific attribute in the RFC 2865 recommended format."""
    if len(value) > MAX_ATTR_VALUE - 6:
        raise ValueError(f"vendor attribute {vendor_id}/{vendor_type}: value too long ({len(value)})")
    return (VENDOR_SPECIFIC, struct.pack("!IBB", vendor_id, vendor_type, len(value) + 2) + value)


def split_vsa(body: bytes) -> tuple[int, list[tuple[int, bytes]]]:
    """Parse a Vendor-Specific body into (vendor id, [(vendor type, value)])."""
    if len(body) < 4:
        raise malformed(f"Vendor-Specific attribute of {len(body)} bytes has no vendor id")
    vendor_id = struct.unpack("!I", body[:4])[0]
    subs: list[tuple[int, bytes]] = []
    pos = 4
    while pos < len(body):
        if len(body) - pos < 2:
            raise malformed(f"vendor {vendor_id} attribute is cut after its type byte")
        vtype, vlen = body[pos], body[pos + 1]
        if vlen < 2 or pos + vlen > len(body):
            raise malformed(f"vendor {vendor_id} attribute {vtype} has a bad length {vlen}")
        subs.append((vtype, body[pos + 2 : pos + vlen]))
        pos += vlen
    return vendor_id, subs


def find(attrs: Sequence[Attr], atype: int) -> bytes | None:
    for t, v in attrs:
        if t == atype:
            return v
    return None


def find_all(attrs: Sequence[Attr], atype: int) -> list[bytes]:
    return [v for t, v in attrs if t == atype]


def find_vendor(attrs: Sequence[Attr], vendor_id: int, vendor_type: int) -> list[bytes]:
    """Every value of one vendor attribute (malformed VSAs raise PacketError)."""
    found: list[bytes] = []
    for t, v in attrs:
        if t != VENDOR_SPECIFIC:
            continue
        vid, subs = split_vsa(v)
        if vid == vendor_id:
            found.extend(val for vt, val in subs if vt == vendor_type)
    return found


def eap_message_attrs(eap: bytes) -> list[Attr]:
    """Split one EAP packet into EAP-Message attributes of at most 253 bytes each."""
    if not eap:
        raise ValueError("empty EAP packet")
    return [(EAP_MESSAGE, eap[i : i + MAX_ATTR_VALUE]) for i in range(0, len(eap), MAX_ATTR_VALUE)]


def join_eap_message(attrs: Sequence[Attr]) -> bytes | None:
    """Concatenate every EAP-Message attribute in order (None when there is none)."""
    parts = find_all(attrs, EAP_MESSAGE)
    return b"".join(parts) if parts else None


# ---------------------------------------------------------------------------
# Hiding: User-Password (RFC 2865 5.2) and salted attributes (RFC 2548 2.4.2)
# ---------------------------------------------------------------------------


def _xor(a: bytes, b: bytes) -> bytes:
    if len(a) == len(b):  # every 16-byte block: one integer XOR, not a generator over 16 bytes
        return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")
    return bytes(x ^ y for x, y in zip(a, b))


def encrypt_user_password(password: bytes, secret: bytes, authenticator: bytes) -> bytes:
    if len(password) > 128:
        raise ValueError("User-Password longer than 128 bytes")
    pad = 16 if not password else -len(password) % 16
    padded = password + b"\x00" * pad
    out = bytearray()
    last = authenticator
    for i in range(0, len(padded), 16):
        block = _xor(padded[i : i + 16], hashlib.md5(secret + last).digest())
        out += block
        last = block
    return bytes(out)


def decrypt_user_password(hidden: bytes, secret: bytes, authenticator: bytes) -> bytes:
    if not hidden or len(hidden) % 16 or len(hidden) > 128:
        raise malformed(f"User-Password of {len(hidden)} bytes is not a multiple of 16 up to 128")
    out = bytearray()
    last = authenticator
    for i in range(0, len(hidden), 16):
        block = hidden[i : i + 16]
        out += _xor(block, hashlib.md5(secret + last).digest())
        last = block
    return bytes(out).rstrip(b"\x00")


def salt_encrypt(plain: bytes, secret: bytes, request_authenticator: bytes, salt: bytes) -> bytes:
    """RFC 2548 2.4.2: salt (2 bytes, top bit set) + encrypted (length byte + key + pad)."""
    if len(salt) != 2 or not salt[0] & 0x80:
        raise ValueError("salt must be 2 bytes with the top bit set")
    data = bytes([len(plain)]) + plain
    data += b"\x00" * (-len(data) % 16)
    out = bytearray()
    last = request_authenticator + salt
    for i in range(0, len(data), 16):
        block = _xor(data[i : i + 16], hashlib.md5(secret + last).digest())
        out += block
        last = block
    return salt + bytes(out)


def salt_decrypt(value: bytes, secret: bytes, request_authenticator: bytes) -> bytes:
    """Decrypt an RFC 2548 salted value (MS-MPPE-Send/Recv-Key, Tunnel-Password body)."""
    if len(value) < 18 or (len(value) - 2) % 16:
        raise malformed(f"salted attribute of {len(value)} bytes is not salt + n*16")
    salt, body = value[:2], value[2:]
    if not salt[0] & 0x80:
        raise malformed("salted attribute: salt lacks its top bit")
    plain = bytearray()
    last = request_authenticator + salt
    for i in range(0, len(body), 16):
        block = body[i : i + 16]
        plain += _xor(block, hashlib.md5(secret + last).digest())
        last = block
    key_len = plain[0]
    if key_len > len(plain) - 1:
        raise malformed(f"salted attribute: key length {key_len} exceeds the {len(plain) - 1} bytes carried")
    return bytes(plain[1 : 1 + key_len])


# ---------------------------------------------------------------------------
# Packets
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Packet:
    code: int
    identifier: int
    authenticator: bytes
    attributes: list[Attr] = field(default_factory=list)
    raw: bytes = b""

    @property
    def code_name(self) -> str:
        return CODE_NAMES.get(self.code, f"Code-{self.code}")

    def get(self, atype: int) -> bytes | None:
        return find(self.attributes, atype)

    def eap(self) -> bytes | None:
        return join_eap_message(self.attributes)


def _message_authenticator(packet_with_zeroed_ma: bytes, secret: bytes) -> bytes:
    return hmac.new(secret, packet_with_zeroed_ma, hashlib.md5).digest()


def _assemble(code: int, identifier: int, authenticator: bytes, attr_bytes: bytes) -> bytes:
    length = HEADER_LEN + len(attr_bytes)
    if length > MAX_PACKET_LEN:
        raise ValueError(f"packet of {length} bytes exceeds the RADIUS maximum of {MAX_PACKET_LEN}")
    return struct.pack("!BBH", code, identifier, length) + authenticator + attr_bytes


def build_request(
    identifier: int,
    authenticator: bytes,
    attributes: Sequence[Attr],
    secret: bytes,
    *,
    message_authenticator: bool = True,
    code: int = ACCESS_REQUEST,
) -> Packet:
    """An Access-Request (or Status-Server) with Message-Authenticator first.

    ``attributes`` must not contain User-Password in clear: use :func:`password_attr`.
    ``code`` ACCOUNTING_REQUEST: the Request Authenticator is computed (RFC 2866 3:
    MD5(Code+Identifier+Length+16 zero octets+Attributes+secret)), ``authenticator`` is
    ignored and no Message-Authenticator is added; STATUS_SERVER: always signed (RFC 5997 3).
    """
    if len(authenticator) != 16:
        raise ValueError("request authenticator must be 16 bytes")
    attrs = [a for a in attributes if a[0] != MESSAGE_AUTHENTICATOR]
    if code == ACCOUNTING_REQUEST:
        raw = _assemble(code, identifier, b"\x00" * 16, encode_attributes(attrs))
        authenticator = hashlib.md5(raw + secret).digest()
        raw = raw[:4] + authenticator + raw[20:]
        return Packet(code, identifier, authenticator, attrs, raw)
    message_authenticator = message_authenticator or code == STATUS_SERVER
    if message_authenticator:
        attrs.insert(0, (MESSAGE_AUTHENTICATOR, b"\x00" * 16))
    raw = _assemble(code, identifier, authenticator, encode_attributes(attrs))
    if message_authenticator:
        mac = _message_authenticator(raw, secret)
        raw = raw[:22] + mac + raw[38:]
        attrs[0] = (MESSAGE_AUTHENTICATOR, mac)
    return Packet(code, identifier, authenticator, attrs, raw)


def accounting_request_valid(request: Packet, secret: bytes) -> bool:
    """Whether an Accounting-Request's Request Authenticator verifies (RFC 2866 3; the server's check)."""
    expected = hashlib.md5(request.raw[:4] + b"\x00" * 16 + request.raw[20:] + secret).digest()
    return hmac.compare_digest(expected, request.authenticator)


def password_attr(password: bytes, secret: bytes, authenticator: bytes) -> Attr:
    return (USER_PASSWORD, encrypt_user_password(password, secret, authenticator))


def parse_packet(data: bytes) -> Packet:
    """Parse any RADIUS packet strictly (lengths only; no cryptographic checks)."""
    if len(data) < HEADER_LEN:
        raise malformed(f"packet of {len(data)} bytes is shorter than the 20-byte header")
    code, identifier, length = struct.unpack("!BBH", data[:4])
    if length < HEADER_LEN or length > MAX_PACKET_LEN:
        raise malformed(f"Length field {length} is outside 20..4096")
    if length > len(data):
        raise malformed(f"Length field says {length} bytes, datagram has {len(data)}")
    # RFC 2865 3: octets past Length are padding and ignored.
    data = data[:length]
    return Packet(code, identifier, data[4:20], decode_attributes(data[20:]), data)


def _check_message_authenticator(pkt: Packet, secret: bytes, auth_for_mac: bytes) -> str:
    """'valid', 'absent' or 'invalid' for pkt's Message-Authenticator."""
    values = find_all(pkt.attributes, MESSAGE_AUTHENTICATOR)
    if not values:
        return "absent"
    if len(values) > 1 or len(values[0]) != 16:
        return "invalid"
    # Zero the MAC where it sits, and use auth_for_mac as the authenticator.
    raw = bytearray(pkt.raw)
    raw[4:20] = auth_for_mac
    pos = HEADER_LEN
    while pos < len(raw):
        atype, alen = raw[pos], raw[pos + 1]
        if atype == MESSAGE_AUTHENTICATOR:
            raw[pos + 2 : pos + alen] = b"\x00" * 16
        pos += alen
    expected = _message_authenticator(bytes(raw), secret)
    return "valid" if hmac.compare_digest(expected, values[0]) else "invalid"


@dataclass(frozen=True)
class Reply:
    packet: Packet
    message_authenticator: str  # "valid" | "absent"

    @property
    def code(self) -> int:
        return self.packet.code


def verify_reply(data: bytes, request: Packet, secret: bytes) -> Reply:
    """Check a reply against the request it answers.

    Raises PacketError with kind ``malformed`` (lengths, unknown code, wrong Identifier)
    or ``bad_authenticator`` (Response Authenticator or Message-Authenticator wrong, or
    Message-Authenticator missing from a reply that carries EAP-Message).
    """
    pkt = parse_packet(data)
    if pkt.identifier != request.identifier:
        raise malformed(f"reply Identifier {pkt.identifier} does not match request {request.identifier}")
    allowed = REPLY_CODES_FOR.get(request.code, REPLY_CODES)
    if pkt.code not in allowed:
        names = ", ".join(CODE_NAMES[c] for c in sorted(allowed))
        raise malformed(f"reply code {pkt.code} does not answer a {request.code_name} (expected {names})")
    expected = hashlib.md5(pkt.raw[:4] + request.authenticator + pkt.raw[20:] + secret).digest()
    if not hmac.compare_digest(expected, pkt.authenticator):
        raise PacketError("bad_authenticator", "Response Authenticator does not match (wrong shared secret?)")
    ma = _check_message_authenticator(pkt, secret, request.authenticator)
    if ma == "invalid":
        raise PacketError("bad_authenticator", "Message-Authenticator in the reply does not verify")
    if ma == "absent" and any(t == EAP_MESSAGE for t, _ in pkt.attributes):
        # RFC 3579 3.2: a packet carrying EAP-Message without Message-Authenticator MUST be silently discarded.
        raise PacketError("bad_authenticator", "Message-Authenticator missing from a reply carrying EAP-Message "
                                               "(RFC 3579 3.2: silently discarded)")
    return Reply(pkt, ma)


# -- server role (the emulator) ----------------------------------------------


def request_message_authenticator(request: Packet, secret: bytes) -> str:
    """'valid', 'absent' or 'invalid' for an Access-Request's Message-Authenticator."""
    return _check_message_authenticator(request, secret, request.authenticator)


def build_reply(
    code: int,
    request: Packet,
    attributes: Sequence[Attr],
    secret: bytes,
    *,
    message_authenticator: bool = True,
) -> bytes:
    """A reply signed for *request*: Message-Authenticator (optional) then Response Authenticator."""
    attrs = [a for a in attributes if a[0] != MESSAGE_AUTHENTICATOR]
    if message_authenticator:
        attrs.insert(0, (MESSAGE_AUTHENTICATOR, b"\x00" * 16))
    raw = bytearray(_assemble(code, request.identifier, request.authenticator, encode_attributes(attrs)))
    if message_authenticator:
        raw[22:38] = _message_authenticator(bytes(raw), secret)
    raw[4:20] = hashlib.md5(bytes(raw) + secret).digest()
    return bytes(raw)


def mppe_keys(reply: Packet, request_authenticator: bytes, secret: bytes) -> tuple[bytes, bytes] | None:
    """Decrypt (MS-MPPE-Send-Key, MS-MPPE-Recv-Key) from a reply; None if either is absent."""
    send = find_vendor(reply.attributes, VENDOR_MICROSOFT, MS_MPPE_SEND_KEY)
    recv = find_vendor(reply.attributes, VENDOR_MICROSOFT, MS_MPPE_RECV_KEY)
    if not send or not recv:
        return None
    return (salt_decrypt(send[0], secret, request_authenticator),
            salt_decrypt(recv[0], secret, request_authenticator))
