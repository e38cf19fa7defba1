"""EAP-TTLSv0 (RFC 5281) as the peer: a TLS tunnel carrying Diameter AVPs with PAP or MS-CHAPv2 inside.

sans-IO like the rest of probe/eap. The TLS leg (framing, fragments, server validation) is the
same :class:`probe.eap.peer.TlsLeg` EAP-TLS and PEAP use; TTLS only adds what travels inside:

* PAP (RFC 5281 11.2.5): User-Name and User-Password AVPs, the password null-padded to a
  multiple of 16 octets. Nothing comes back to verify inside; the server certificate is the
  server's proof, and EAP-Success ends it.
* MS-CHAPv2 (RFC 5281 11.2.4): User-Name, MS-CHAP-Challenge and MS-CHAP2-Response AVPs; the
  challenge and the Ident are not chosen by us but derived from the tunnel ("ttls challenge",
  17 octets: 16 of challenge, the 17th the Ident), so a man in the middle cannot replay them.
  The server must answer MS-CHAP2-Success (the RFC 2759 authenticator response, checked) before
  the method counts as finished; we acknowledge it with an empty message. An MS-CHAP-Error
  AVP is recorded in words and acknowledged: the server ends with EAP-Failure.

Keys: MSK = PRF(master, "ttls keying material", client.random | server.random)[0:64] (RFC 5281
8), the RFC 5705 exporter without context; MS-MPPE-Recv-Key = MSK[0:32], Send-Key = MSK[32:64].
TLS stays at 1.2 or below here (RFC 9427's TLS 1.3 key schedule for TTLS is not implemented).
"""

from __future__ import annotations

import secrets
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from probe.eap.crypto import MppeKeys, Role, split_mppe_keys
from probe.eap.packet import EapError, EapPacket, EapType
from probe.eap.peap import EapPeerError
from probe.eap.tls import EapTlsError, SessionState
from probe.radius import mschap

if TYPE_CHECKING:
    from probe.eap.peer import TlsLeg

AVP_USER_NAME = 1
AVP_USER_PASSWORD = 2
AVP_REPLY_MESSAGE = 18
VENDOR_MICROSOFT = 311
FLAG_VENDOR = 0x80
FLAG_MANDATORY = 0x40
KEYING_LABEL = b"ttls keying material"
CHALLENGE_LABEL = b"ttls challenge"
MAX_AVPS = 64  # a server sending more AVPs than this in one message is not a TTLS server


class TtlsError(EapError):
    """Malformed Diameter AVPs inside the tunnel."""


@dataclass(frozen=True)
class Avp:
    code: int
    vendor: int  # 0: IETF
    value: bytes
    mandatory: bool = True


def encode_avp(avp: Avp) -> bytes:
    """Code, flags (V when vendor, M), 24-bit length, [vendor], value, padded to 4 octets (RFC 5281 10.1)."""
    flags = (FLAG_VENDOR if avp.vendor else 0) | (FLAG_MANDATORY if avp.mandatory else 0)
    header = 12 if avp.vendor else 8
    length = header + len(avp.value)
    if length > 0xFFFFFF:
        raise TtlsError("AVP too long")
    out = struct.pack("!IB", avp.code, flags) + length.to_bytes(3, "big")
    if avp.vendor:
        out += struct.pack("!I", avp.vendor)
    out += avp.value
    return out + b"\x00" * (-len(out) % 4)


def parse_avps(data: bytes) -> list[Avp]:
    """Every AVP of one tunnel message; TtlsError for a truncated or overlong one."""
    avps: list[Avp] = []
    pos = 0
    while pos < len(data):
        if len(avps) >= MAX_AVPS:
            raise TtlsError(f"more than {MAX_AVPS} AVPs in one message")
        if len(data) - pos < 8:
            raise TtlsError(f"AVP header truncated at offset {pos}")
        code, flags = struct.unpack_from("!IB", data, pos)
        length = int.from_bytes(data[pos + 5:pos + 8], "big")
        header = 12 if flags & FLAG_VENDOR else 8
        if length < header or pos + length > len(data):
            raise TtlsError(f"AVP {code} at offset {pos} has a bad length {length}")
        vendor = struct.unpack_from("!I", data, pos + 8)[0] if flags & FLAG_VENDOR else 0
        avps.append(Avp(code, vendor, data[pos + header:pos + length], bool(flags & FLAG_MANDATORY)))
        pos += length + (-length % 4)
    return avps


def pap_avps(identity: str, password: bytes) -> bytes:
    padded = password + b"\x00" * (-len(password) % 16 or (16 if not password else 0))
    return encode_avp(Avp(AVP_USER_NAME, 0, identity.encode("utf-8"))) + encode_avp(Avp(AVP_USER_PASSWORD, 0, padded))


class TtlsMethod:
    """EAP-TTLSv0 over one TLS leg, with PAP (``inner`` None) or MS-CHAPv2 (``inner`` 26) inside."""

    eap_type = EapType.TTLS
    name = "EAP-TTLS"

    def __init__(self, leg: TlsLeg, identity: str, password: bytes, inner: int | None,
                 random: Callable[[int], bytes] = secrets.token_bytes) -> None:
        self.leg = leg
        self._identity = identity
        self._password = password
        self._inner = inner
        self._random = random
        self._sent: mschap.Mschapv2Request | None = None
        self._sent_avps = False
        self._proven = False
        self._failure: str | None = None

    def __repr__(self) -> str:
        return f"TtlsMethod(inner={'MS-CHAPv2' if self._inner else 'PAP'}, sent={self._sent_avps})"

    @property
    def _mschapv2(self) -> bool:
        return self._inner is not None

    def step(self, packet: EapPacket) -> bytes:
        step = self.leg.receive(packet.data)
        tunnel = self.leg.tls.state is SessionState.TUNNEL
        if tunnel and not self._sent_avps and not step.app_data and (step.reply is None or
                                                                     step.reply == self.leg.tls.ack()):
            self._sent_avps = True  # the handshake is over: our turn to speak inside
            return self.leg.send_app(self._credentials())
        if step.reply is not None:
            return step.reply
        try:
            self._on_server_avps(parse_avps(step.app_data))
        except TtlsError as exc:
            raise EapPeerError("eap", f"EAP-TTLS: malformed tunnel data: {exc}", state="phase2") from None
        return self.leg.tls.ack()  # an empty response: acknowledges MS-CHAP2-Success or an error

    def _credentials(self) -> bytes:
        if not self._mschapv2:
            return pap_avps(self._identity, self._password)
        try:
            implicit = self.leg.tls.engine.export_keying_material(CHALLENGE_LABEL, 17)
        except EapTlsError as exc:
            raise EapPeerError("tls", exc.reason, state="keys") from None
        self._sent = mschap.mschapv2_request(self._identity, self._password.decode("utf-8"), implicit[16],
                                             implicit[:16], self._random(16))
        out = encode_avp(Avp(AVP_USER_NAME, 0, self._identity.encode("utf-8")))
        for _, vsa in self._sent.attributes():  # the RADIUS VSAs become vendor AVPs (vendor 311)
            out += encode_avp(Avp(vsa[4], VENDOR_MICROSOFT, vsa[6:]))
        return out

    def _on_server_avps(self, avps: list[Avp]) -> None:
        if not self._sent_avps:
            raise EapPeerError("eap", "EAP-TTLS: the server sent tunnel data before our credentials", state="phase2")
        for avp in avps:
            if avp.vendor == VENDOR_MICROSOFT and avp.code == mschap.MS_CHAP2_SUCCESS:
                self._check_success(avp.value)
            elif avp.vendor == VENDOR_MICROSOFT and avp.code == mschap.MS_CHAP_ERROR:
                self._note_error(avp.value)
            elif avp.vendor == 0 and avp.code == AVP_REPLY_MESSAGE and self._failure is None:
                self._failure = f"EAP-TTLS Reply-Message: {avp.value.decode('utf-8', 'replace')[:200]}"

    def _check_success(self, value: bytes) -> None:
        if self._sent is None:
            raise EapPeerError("mschapv2", "MS-CHAP2-Success inside EAP-TTLS/PAP", state="phase2/mschapv2")
        try:
            reply = mschap.find_success(_one_vsa(mschap.MS_CHAP2_SUCCESS, value))
        except mschap.MschapAttributeError as exc:
            raise EapPeerError("mschapv2", f"server failed to prove knowledge of the password: {exc.detail}",
                               state="phase2/mschapv2") from None
        assert reply is not None
        if reply.ident != self._sent.ident or not mschap.check_success(
                self._sent, self._identity, self._password.decode("utf-8"), reply):
            raise EapPeerError("mschapv2", "server failed to prove knowledge of the password (EAP-TTLS "
                                           "MS-CHAP2-Success)", state="phase2/mschapv2")
        self._proven = True

    def _note_error(self, value: bytes) -> None:
        try:
            error = mschap.find_error(_one_vsa(mschap.MS_CHAP_ERROR, value))
        except mschap.MschapAttributeError as exc:
            self._failure = f"EAP-TTLS {exc.detail}"
            return
        if error is not None:
            self._failure = error.describe()

    @property
    def finished(self) -> bool:
        """PAP: the credentials went out (EAP-Success may come); MS-CHAPv2: the server proved itself."""
        return self._proven if self._mschapv2 else self._sent_avps

    @property
    def primary_auth_done(self) -> bool:
        return self._proven

    @property
    def failure(self) -> str | None:
        return self.leg.server_refused or self._failure

    @property
    def cryptobinding(self) -> str:
        return "absent"

    def mppe(self) -> MppeKeys | None:
        if not self.leg.tls.handshake_done:
            return None
        try:
            msk = self.leg.tls.engine.export_keying_material(KEYING_LABEL, 64)
        except EapTlsError as exc:
            raise EapPeerError("tls", exc.reason, state="keys") from None
        return split_mppe_keys(msk, Role.SERVER)

    def close(self) -> None:
        self.leg.tls.close()


def _one_vsa(vendor_type: int, value: bytes):  # type: ignore[no-untyped-def]
    """A reply holding one Microsoft VSA, so the RADIUS-level parsers (probe.radius.mschap) read AVP values."""
    from probe.radius import packet as pk

    if len(value) > 247:
        raise mschap.MschapAttributeError(f"Microsoft attribute {vendor_type} of {len(value)} bytes")
    return pk.Packet(pk.ACCESS_ACCEPT, 0, b"\x00" * 16, [pk.vsa(VENDOR_MICROSOFT, vendor_type, value)])
