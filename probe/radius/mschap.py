"""RADIUS MS-CHAPv2 and CHAP attributes (RFC 2548, RFC 2865), both roles; sans-IO.

What a VPN appliance (FortiGate, Palo Alto, Cisco ASA) sends NPS when it runs MS-CHAPv2 itself:
Microsoft vendor attributes (vendor 311) MS-CHAP-Challenge (11, the 16-byte authenticator
challenge the NAS chose) and MS-CHAP2-Response (25: Ident, Flags, Peer-Challenge 16, Reserved 8,
NT-Response 24). The server answers an Access-Accept with MS-CHAP2-Success (26: Ident,
"S=<40 hex>", RFC 2759 authenticator response) and MS-MPPE-Send/Recv-Key (16 bytes each,
RFC 3079 start keys from the server's point of view), or an Access-Reject with MS-CHAP-Error
(2: Ident, "E=691 R=0 C=<32 hex> V=3 M=<text>").

CHAP (RFC 1994 in RADIUS, RFC 2865 5.3/5.40): CHAP-Password = CHAP Ident + MD5(Ident | password |
challenge), CHAP-Challenge = the challenge (16 bytes here; without it the Request Authenticator
is the challenge).

The MS-CHAP arithmetic lives once, in :mod:`probe.eap.mschapv2`; this module only frames it.
Every parser raises :class:`MschapAttributeError` (a :class:`probe.radius.packet.PacketError`,
kind ``mschapv2``) with a one-line reason; secrets never appear in messages.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from probe.eap import mschapv2 as ms
from probe.eap.crypto import Role
from probe.radius import packet as pk

MS_CHAP_ERROR = 2
MS_CHAP_CHALLENGE = 11
MS_CHAP2_RESPONSE = 25
MS_CHAP2_SUCCESS = 26
MS_MPPE_ENCRYPTION_POLICY = 7
MS_MPPE_ENCRYPTION_TYPES = 8
CHAP_PASSWORD = 3
CHAP_CHALLENGE = 60

RESPONSE_LEN = 50  # Ident | Flags | Peer-Challenge 16 | Reserved 8 | NT-Response 24
CHALLENGE_LEN = 16
MPPE_KEY_LEN = 16  # RADIUS MS-CHAPv2 carries the 128-bit start keys (RFC 3079 3.4, RFC 2548 2.4.2/2.4.3)

ERROR_MEANINGS = {
    646: "restricted logon hours",
    647: "account disabled or locked out",
    648: "password expired",
    649: "no dial-in permission",
    691: "authentication failure (wrong password or unknown user)",
    709: "error changing password",
}
"""MS-CHAP-Error E= codes (RFC 2759 6; Windows ERROR_* values)."""


class MschapAttributeError(pk.PacketError):
    """A malformed MS-CHAP/CHAP attribute; kind ``mschapv2``."""

    def __init__(self, detail: str) -> None:
        super().__init__("mschapv2", detail)


# ---------------------------------------------------------------------------
# MS-CHAPv2, client side


@dataclass(frozen=True)
class Mschapv2Request:
    """What the client sent (and needs again to check the answer)."""

    ident: int
    authenticator_challenge: bytes
    peer_challenge: bytes
    nt_response: bytes

    def attributes(self) -> list[pk.Attr]:
        value = (bytes([self.ident, 0]) + self.peer_challenge + b"\x00" * 8 + self.nt_response)
        return [pk.vsa(pk.VENDOR_MICROSOFT, MS_CHAP_CHALLENGE, self.authenticator_challenge),
                pk.vsa(pk.VENDOR_MICROSOFT, MS_CHAP2_RESPONSE, value)]


def mschapv2_request(username: str, password: str, ident: int, authenticator_challenge: bytes,
                     peer_challenge: bytes) -> Mschapv2Request:
    """The NAS's side: NT-Response for this challenge pair (RFC 2759 8.1)."""
    nt = ms.generate_nt_response(authenticator_challenge, peer_challenge, username, password)
    return Mschapv2Request(ident & 0xFF, authenticator_challenge, peer_challenge, nt)


@dataclass(frozen=True)
class Mschap2Success:
    ident: int
    authenticator_response: bytes  # b"S=" + 40 hex digits
    message: str


@dataclass(frozen=True)
class MschapError:
    ident: int
    error: int
    retry: bool
    challenge: bytes | None
    version: int | None
    message: str

    @property
    def meaning(self) -> str:
        return ERROR_MEANINGS.get(self.error, "unknown error code")

    def describe(self) -> str:
        """One line for the Outcome: "MS-CHAP-Error E=648 (password expired), no retry: <M= text>"."""
        retry = "retry allowed" if self.retry else "no retry"
        text = f"MS-CHAP-Error E={self.error} ({self.meaning}), {retry}"
        return f"{text}: {self.message}" if self.message else text


def _vendor_value(reply: pk.Packet, vendor_type: int, what: str) -> bytes | None:
    try:
        values = pk.find_vendor(reply.attributes, pk.VENDOR_MICROSOFT, vendor_type)
    except pk.PacketError as exc:
        raise MschapAttributeError(f"malformed Vendor-Specific attribute: {exc.detail}") from None
    if len(values) > 1:
        raise MschapAttributeError(f"{len(values)} {what} attributes in one reply")
    return values[0] if values else None


def find_success(reply: pk.Packet) -> Mschap2Success | None:
    """MS-CHAP2-Success from a reply (None when absent); MschapAttributeError when malformed.

    RFC 2548 2.3.3: Ident then the 42-octet "S=<hex>"; NPS and FreeRADIUS send exactly that, some
    servers add " M=<message>" as in the EAP form, which is tolerated.
    """
    value = _vendor_value(reply, MS_CHAP2_SUCCESS, "MS-CHAP2-Success")
    if value is None:
        return None
    if len(value) < 1 + 42:
        raise MschapAttributeError(f"malformed MS-CHAP2-Success: {len(value)} bytes, needs Ident + 42-octet S=")
    body = value[1:]
    try:
        auth = body[:42]
        if not auth.startswith(b"S="):
            raise ValueError
        bytes.fromhex(auth[2:].decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        raise MschapAttributeError("malformed MS-CHAP2-Success: not 'S=' and 40 hex digits") from None
    rest = body[42:]
    if rest and not rest.startswith(b" M="):
        raise MschapAttributeError("malformed MS-CHAP2-Success: unexpected text after the S= value")
    return Mschap2Success(value[0], bytes(auth), rest[3:].decode("utf-8", "replace"))


def parse_error_text(ident: int, text: bytes) -> MschapError:
    """The E= R= C= V= M= fields (RFC 2759 6), as the EAP form parses them."""
    try:
        framed = ms.build_failure_ack()  # only to reuse the one parser: OpCode 4, ident, length, text
        framed = bytes([framed[0], ident & 0xFF]) + (4 + len(text)).to_bytes(2, "big") + text
        failure = ms.parse_request(framed)
    except ms.MschapV2Error as exc:
        raise MschapAttributeError(f"malformed MS-CHAP-Error: {exc}") from None
    assert isinstance(failure, ms.FailureRequest)
    return MschapError(ident, failure.error, failure.retry, failure.challenge, failure.version, failure.message)


def find_error(reply: pk.Packet) -> MschapError | None:
    """MS-CHAP-Error from a reply (None when absent); MschapAttributeError when malformed."""
    value = _vendor_value(reply, MS_CHAP_ERROR, "MS-CHAP-Error")
    if value is None:
        return None
    if len(value) < 2:
        raise MschapAttributeError(f"malformed MS-CHAP-Error: {len(value)} byte(s), needs Ident and text")
    return parse_error_text(value[0], value[1:])


def check_success(sent: Mschapv2Request, username: str, password: str, success: Mschap2Success) -> bool:
    """RFC 2759 8.8: the server proved it knows the password (constant time)."""
    return ms.check_authenticator_response(password, sent.nt_response, sent.peer_challenge,
                                           sent.authenticator_challenge, username, success.authenticator_response)


def expected_mppe(password: str, sent: Mschapv2Request) -> tuple[bytes, bytes]:
    """(MS-MPPE-Send-Key, MS-MPPE-Recv-Key) as the server sends them: its own send and receive keys."""
    keys = ms.mppe_keys(password, sent.nt_response, Role.SERVER)
    return keys.send_key, keys.recv_key


# ---------------------------------------------------------------------------
# MS-CHAPv2, server side (the emulator)


@dataclass(frozen=True)
class Mschapv2Offer:
    """What an Access-Request carries: the challenge and the parsed MS-CHAP2-Response."""

    authenticator_challenge: bytes
    ident: int
    flags: int
    peer_challenge: bytes
    nt_response: bytes


def find_offer(request: pk.Packet) -> Mschapv2Offer | None:
    """The MS-CHAPv2 attributes of a request (None without MS-CHAP2-Response); malformed ones raise."""
    response = _vendor_value(request, MS_CHAP2_RESPONSE, "MS-CHAP2-Response")
    if response is None:
        return None
    challenge = _vendor_value(request, MS_CHAP_CHALLENGE, "MS-CHAP-Challenge")
    if challenge is None or len(challenge) != CHALLENGE_LEN:
        raise MschapAttributeError("MS-CHAP2-Response without a 16-byte MS-CHAP-Challenge")
    if len(response) != RESPONSE_LEN:
        raise MschapAttributeError(f"MS-CHAP2-Response of {len(response)} bytes (RFC 2548: {RESPONSE_LEN})")
    return Mschapv2Offer(challenge, response[0], response[1], response[2:18], response[26:50])


def server_verify(offer: Mschapv2Offer, username: str, password: str) -> bool:
    return ms.check_nt_response(offer.authenticator_challenge, offer.peer_challenge, username, password,
                                offer.nt_response)


def success_attributes(offer: Mschapv2Offer, username: str, password: str, secret: bytes,
                       request_authenticator: bytes, salts: tuple[bytes, bytes]) -> list[pk.Attr]:
    """MS-CHAP2-Success, MS-MPPE-Send/Recv-Key and the encryption policy/types, as NPS sends them."""
    auth = ms.generate_authenticator_response(password, offer.nt_response, offer.peer_challenge,
                                              offer.authenticator_challenge, username)
    keys = ms.mppe_keys(password, offer.nt_response, Role.SERVER)
    return [
        pk.vsa(pk.VENDOR_MICROSOFT, MS_CHAP2_SUCCESS, bytes([offer.ident]) + auth),
        pk.vsa(pk.VENDOR_MICROSOFT, pk.MS_MPPE_SEND_KEY,
               pk.salt_encrypt(keys.send_key, secret, request_authenticator, salts[0])),
        pk.vsa(pk.VENDOR_MICROSOFT, pk.MS_MPPE_RECV_KEY,
               pk.salt_encrypt(keys.recv_key, secret, request_authenticator, salts[1])),
        pk.vsa(pk.VENDOR_MICROSOFT, MS_MPPE_ENCRYPTION_POLICY, (1).to_bytes(4, "big")),  # encryption allowed
        pk.vsa(pk.VENDOR_MICROSOFT, MS_MPPE_ENCRYPTION_TYPES, (6).to_bytes(4, "big")),  # 40/128-bit RC4
    ]


def error_attribute(ident: int, error: int = 691, *, retry: bool = False, challenge: bytes | None = None,
                    message: str = "") -> pk.Attr:
    """MS-CHAP-Error "E=<error> R=<0|1> [C=<32 hex>] V=3 [M=<message>]"."""
    parts = [f"E={error}", f"R={int(retry)}"]
    if challenge is not None:
        parts.append(f"C={challenge.hex().upper()}")
    parts.append("V=3")
    if message:
        parts.append(f"M={message}")
    return pk.vsa(pk.VENDOR_MICROSOFT, MS_CHAP_ERROR, bytes([ident & 0xFF]) + " ".join(parts).encode("utf-8"))


# ---------------------------------------------------------------------------
# CHAP


def chap_attributes(password: bytes, ident: int, challenge: bytes) -> list[pk.Attr]:
    """CHAP-Password (Ident | MD5(Ident | secret | challenge)) and CHAP-Challenge."""
    digest = hashlib.md5(bytes([ident & 0xFF]) + password + challenge).digest()
    return [(CHAP_PASSWORD, bytes([ident & 0xFF]) + digest), (CHAP_CHALLENGE, challenge)]


def chap_verify(request: pk.Packet, password: bytes) -> bool:
    """Server side (RFC 2865 5.3): CHAP-Password against the cleartext password; constant time.

    Without CHAP-Challenge the Request Authenticator is the challenge. A malformed CHAP-Password raises.
    """
    value = request.get(CHAP_PASSWORD)
    if value is None or len(value) != 17:
        raise MschapAttributeError(f"CHAP-Password of {0 if value is None else len(value)} bytes (RFC 2865: 17)")
    challenge = request.get(CHAP_CHALLENGE)
    if challenge is None:
        challenge = request.authenticator
    if not challenge:
        raise MschapAttributeError("empty CHAP-Challenge")
    expected = hashlib.md5(value[:1] + password + challenge).digest()
    return hmac.compare_digest(expected, value[1:])
