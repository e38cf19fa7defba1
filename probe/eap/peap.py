"""PEAPv0 phase 2 as the peer sees it ([MS-PEAP] 3.1.5.6, 3.2.5): everything inside the tunnel.

The outer TLS tunnel lives in :mod:`probe.eap.peer`; this module gets the
decrypted tunnel data, answers it, and hands back the plaintext to encrypt.

Rules implemented here, and where they come from:

* Compression ([MS-PEAP] 3.1.5.6): inner packets travel without the EAP
  Code/Identifier/Length header, except the EAP-TLV Extensions method (33),
  the Capabilities method and the SoH method (both expanded type 254). A
  header-less request takes the outer packet's Code and Identifier.
  FreeRADIUS sends its inner Identity request WITH a header (hostapd's peer
  accepts both forms); our responses follow the rule strictly because
  FreeRADIUS rejects a header on the Identity response.
* Capabilities (vendor 0x137 type 0x22) and SoH (vendor 0x137 type 0x21)
  requests get a Nak ([MS-PEAP] 3.2.5.4.6: "prepare an EAP NAK packet as per
  [RFC3748] section 5.3", then compress it). We send the legacy Nak (type 3)
  naming our one inner method: NPS, FreeRADIUS and hostapd servers all parse
  a legacy Nak in phase 2, and our methods are IETF types.
* Any other unexpected type before the inner method has started is Nak'ed
  towards it (FreeRADIUS proposes MSCHAPv2 first; a PEAP-TLS peer Naks it
  towards EAP-TLS, 13). After it started, an unexpected type is an error.
* Success or failure is decided by the Result TLV only; a Cryptobinding TLV
  that comes with a Success Result is verified and answered
  ([MS-PEAP] 3.2.5.3), and decides which keys the Access-Accept must carry.

Every failure raises :class:`EapPeerError`. Its ``reply``, when set, holds
bytes the enclosing layer should still send (here: a Result TLV Failure, as
[MS-PEAP] and hostapd answer a request they refuse); each layer re-wraps it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Literal, Protocol

from probe.eap import mschapv2
from probe.eap.crypto import MppeKeys
from probe.eap.cryptobinding import (
    CompoundKeys,
    CryptobindingError,
    ResultStatus,
    build_cryptobinding_response,
    build_result_tlv,
    verify_cryptobinding_request,
)
from probe.eap.packet import (
    EapCode,
    EapError,
    EapPacket,
    EapType,
    identity_response,
    nak,
)
from probe.eap.peap_common import (
    CAPABILITIES_VENDOR_TYPE,
    SOH_VENDOR_TYPE,
    TUNNEL_KEY_LENGTH,
    TlvSet,
    compound_keys,
    compress,
    microsoft_extension,
    read_tlvs,
    result_packet,
    session_mppe,
)
from probe.eap.peap_common import decompress as _decompress

__all__ = [
    "CAPABILITIES_VENDOR_TYPE", "SOH_VENDOR_TYPE", "TUNNEL_KEY_LENGTH", "EapPeerError", "InnerMethod",
    "MschapV2Peer", "Phase2", "compound_keys", "compress", "decompress", "microsoft_extension", "tlv_response",
    "type_name",
]

ErrorKind = Literal["tls", "eap", "cryptobinding", "mschapv2"]

MAX_REPEATS = 4
"""How often the server may send the same kind of inner request (Identity,
Capabilities, SoH, a proposal we Nak) before we call it a loop."""

_MSCHAP_ERRORS = {
    646: "restricted logon hours",
    647: "account disabled",
    648: "password expired",
    649: "no dial-in permission",
    691: "authentication failure",
    709: "error changing password",
}


class EapPeerError(Exception):
    """Server input the peer cannot accept; ends the conversation.

    ``kind`` is "tls", "eap", "cryptobinding" or "mschapv2"; ``detail`` says
    what happened in words (never a password or key). ``reply``: an EAP packet
    worth sending before giving up (a TLS alert, a Result TLV Failure), or
    None. ``state``: where the conversation was when it broke, filled in by
    each layer on the way out (:meth:`probe.eap.peer.EapPeer.receive` gives
    the whole path, e.g. "eap-tls/handshake", "peap/phase2/mschapv2",
    "peap/phase2/cryptobinding"). Imported by callers from :mod:`probe.eap.peer`.
    Not a ValueError: a handler for bad local input never swallows it.
    """

    def __init__(self, kind: ErrorKind, detail: str, *, reply: bytes | None = None, state: str | None = None) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail
        self.reply = reply
        self.state = state


# ---------------------------------------------------------------------------
# Compression ([MS-PEAP] 3.1.5.6)


def decompress(data: bytes, outer: EapPacket) -> EapPacket:
    """Decrypted tunnel data -> the inner EAP packet; a header-less one takes ``outer``'s Code and Identifier.

    The rule is :func:`probe.eap.peap_common.decompress`, shared with the server.
    """
    return _decompress(data, outer.code, outer.identifier)


def tlv_response(identifier: int, tlvs: bytes) -> EapPacket:
    """An EAP-Response/TLV (type 33) carrying ``tlvs``."""
    return EapPacket.response(identifier, EapType.TLV, tlvs)


# ---------------------------------------------------------------------------
# Inner methods


class InnerMethod(Protocol):
    """What phase 2 needs from the inner method (MS-CHAPv2 here, EAP-TLS in peer.py)."""

    @property
    def eap_type(self) -> int:
        """The inner method's EAP type."""

    @property
    def name(self) -> str:
        """Its name for messages."""

    def process(self, data: bytes) -> bytes:
        """Type-Data of an inner request -> Type-Data of our response."""

    @property
    def succeeded(self) -> bool:
        """The credential was proven (and, for MS-CHAPv2, the server proved itself)."""

    @property
    def failure(self) -> str | None:
        """Why the inner method failed, in words, when the server said so cleanly."""

    def msk(self) -> bytes:
        """The inner MSK (its first 32 bytes are the ISK)."""


class MschapV2Peer:
    """EAP-MSCHAPv2 peer (RFC 2759 inside draft-kamath-pppext-eap-mschapv2).

    The server must prove it knows the password (S= authenticator response)
    before we count the method as succeeded. A Failure request (E=691 ...) is
    acknowledged and recorded in :attr:`failure`: the server will end with a
    Result TLV Failure and EAP-Failure, a clean rejection, not an error.
    """

    eap_type = EapType.MSCHAPV2
    name = "MS-CHAPv2"

    def __init__(self, username: str, password: str,
                 peer_challenge: Callable[[], bytes] = lambda: secrets.token_bytes(16)) -> None:
        self._username = username
        self._password = password
        self._new_challenge = peer_challenge
        self._sent: tuple[bytes, bytes, bytes] | None = None  # (auth challenge, peer challenge, NT-Response)
        self._succeeded = False
        self._failure: str | None = None

    def __repr__(self) -> str:
        return f"MschapV2Peer(username={self._username!r}, succeeded={self._succeeded})"

    @property
    def succeeded(self) -> bool:
        return self._succeeded

    @property
    def failure(self) -> str | None:
        return self._failure

    def process(self, data: bytes) -> bytes:
        """Answer a Challenge, Success or Failure request."""
        try:
            request = mschapv2.parse_request(data)
        except mschapv2.MschapV2Error as exc:
            raise EapPeerError("mschapv2", f"malformed MS-CHAPv2 request: {exc}") from None
        if isinstance(request, mschapv2.Challenge):
            return self._answer_challenge(request)
        if isinstance(request, mschapv2.SuccessRequest):
            return self._check_success(request)
        return self._note_failure(request)

    def _answer_challenge(self, request: mschapv2.Challenge) -> bytes:
        """Compute the NT-Response; one challenge per conversation (we never retry)."""
        if self._sent is not None:
            raise EapPeerError("mschapv2", "server sent a second MS-CHAPv2 challenge")
        peer_challenge = self._new_challenge()
        nt_response = mschapv2.generate_nt_response(request.challenge, peer_challenge, self._username, self._password)
        self._sent = (request.challenge, peer_challenge, nt_response)
        return mschapv2.build_response(request.ms_id, peer_challenge, nt_response, self._username.encode("utf-8"))

    def _check_success(self, request: mschapv2.SuccessRequest) -> bytes:
        """Verify S=...: a server that cannot compute it does not know the password."""
        if self._sent is None:
            raise EapPeerError("mschapv2", "MS-CHAPv2 Success before any challenge")
        challenge, peer_challenge, nt_response = self._sent
        if not mschapv2.check_authenticator_response(self._password, nt_response, peer_challenge, challenge,
                                                     self._username, request.authenticator_response):
            raise EapPeerError("mschapv2", "server failed to prove knowledge of the password")
        self._succeeded = True
        return mschapv2.build_success_ack()

    def _note_failure(self, request: mschapv2.FailureRequest) -> bytes:
        """Record E=... in words and acknowledge; the Result TLV ends the conversation."""
        meaning = _MSCHAP_ERRORS.get(request.error, "error")
        text = f"MS-CHAPv2 failure E={request.error} ({meaning})"
        self._failure = f"{text}: {request.message}" if request.message else text
        return mschapv2.build_failure_ack()

    def msk(self) -> bytes:
        """RFC 3079 keys as the inner MSK (peer send | peer receive | zeros)."""
        if self._sent is None:
            raise EapPeerError("mschapv2", "no MS-CHAPv2 keys before the challenge was answered")
        return mschapv2.eap_mschapv2_msk(self._password, self._sent[2])


# ---------------------------------------------------------------------------
# Phase 2


PhaseResult = Literal["success", "failure"]


class Phase2:
    """The peer's side of the tunnel: inner Identity, Naks, the inner method, the Result TLV.

    ``tunnel_key`` is the 128-byte TLS key block of the outer session
    (PRF(master, "client EAP encryption", randoms)): its first 60 bytes are
    the TK for cryptobinding, its first 64 the MSK without cryptobinding.
    ``resumed`` allows a Result Success without an inner method ([MS-PEAP]
    fast reconnect), bound with the fast-reconnect keys.
    """

    def __init__(self, inner: InnerMethod, identity: str, tunnel_key: bytes, *, resumed: bool) -> None:
        self.inner = inner
        self._identity = identity
        self._tunnel_key = tunnel_key
        self._resumed = resumed
        self._inner_started = False
        self._seen: dict[str, int] = {}
        self._mppe: MppeKeys | None = None
        self._failure: str | None = None
        self.result: PhaseResult | None = None
        self.cryptobinding: Literal["valid", "absent", "invalid"] | None = None

    @property
    def succeeded(self) -> bool:
        """The server's Result TLV said Success and we agreed."""
        return self.result == "success"

    @property
    def inner_label(self) -> str:
        """The inner method in error states: "mschapv2", "tls"."""
        kind = self.inner.eap_type
        return EapType(kind).name.lower() if kind in EapType._value2member_map_ else str(kind)

    @property
    def position(self) -> str:
        """Where phase 2 is, for error states: "identity", the inner method, or "result"."""
        if self.result is not None:
            return "result"
        return self.inner_label if self._inner_started else "identity"

    @property
    def primary_auth_done(self) -> bool:
        """The inner credential was proven (or a fast reconnect was accepted)."""
        return self.inner.succeeded or (self.succeeded and not self._inner_started)

    @property
    def failure(self) -> str | None:
        """Why the server refused us, when it said so (inner failure or Result TLV Failure)."""
        return self.inner.failure or self._failure

    def mppe(self) -> MppeKeys | None:
        """The keys the Access-Accept must carry (server view), once the Result exchange succeeded."""
        return self._mppe if self.succeeded else None

    def process(self, data: bytes, outer: EapPacket) -> bytes:
        """Decrypted tunnel data in, plaintext to encrypt out."""
        if self.result is not None:
            raise EapPeerError("eap", "tunnel data after the Result TLV exchange was complete")
        try:
            packet = decompress(data, outer)
        except EapError as exc:
            raise EapPeerError("eap", f"bad inner EAP packet: {exc}") from None
        if packet.code is not EapCode.REQUEST:
            raise EapPeerError("eap", f"inner EAP {packet.code.name} is not used in PEAPv0 (the Result TLV decides)")
        return compress(self._dispatch(packet))

    def _dispatch(self, packet: EapPacket) -> EapPacket:
        """One inner request -> our inner response."""
        kind = packet.type
        if kind == EapType.IDENTITY:
            self._count("Identity")
            return identity_response(packet.identifier, self._identity)
        if kind == EapType.NOTIFICATION:
            self._count("Notification")
            return EapPacket.response(packet.identifier, EapType.NOTIFICATION)
        if kind == EapType.TLV:
            return self._result(packet)
        if kind == self.inner.eap_type:
            return self._inner_step(packet)
        if kind == EapType.NAK:
            raise EapPeerError("eap", "inner EAP-Request of type Nak (3) is invalid")
        extension = self._extension(packet)
        if self._inner_started:
            raise EapPeerError("eap", f"unexpected inner EAP type {type_name(packet)} after {self.inner.name} started")
        self._count(extension or f"proposal of {type_name(packet)}")
        return nak(packet.identifier, [self.inner.eap_type])

    def _extension(self, packet: EapPacket) -> str | None:
        """Name a Microsoft extension request; a malformed expanded header is an error."""
        try:
            return microsoft_extension(packet)
        except EapError as exc:
            raise EapPeerError("eap", f"bad expanded inner request: {exc}") from None

    def _inner_step(self, packet: EapPacket) -> EapPacket:
        """Hand the request to the inner method; its refusal reply goes out compressed."""
        self._inner_started = True
        try:
            reply = self.inner.process(packet.data)
        except EapPeerError as exc:
            exc.state = f"{self.inner_label}/{exc.state}" if exc.state else self.inner_label
            if exc.reply is not None:
                exc.reply = compress(EapPacket.response(packet.identifier, self.inner.eap_type, exc.reply))
            raise
        return EapPacket.response(packet.identifier, self.inner.eap_type, reply)

    def _count(self, what: str) -> None:
        """Stop a server that keeps asking the same thing."""
        self._seen[what] = self._seen.get(what, 0) + 1
        if self._seen[what] > MAX_REPEATS:
            raise EapPeerError("eap", f"server sent inner {what} more than {MAX_REPEATS} times")

    # -- the Result TLV exchange

    def _result(self, packet: EapPacket) -> EapPacket:
        """Answer the server's Result (and Cryptobinding) TLVs."""
        tlvs = self._read_tlvs(packet.data)
        if tlvs.result is ResultStatus.FAILURE:
            self.result = "failure"
            self._failure = "server sent Result TLV Failure"
            return tlv_response(packet.identifier, build_result_tlv(ResultStatus.FAILURE))
        refusal = compress(tlv_response(packet.identifier, build_result_tlv(ResultStatus.FAILURE)))
        if not (self.inner.succeeded or (self._resumed and not self._inner_started)):
            self.result = "failure"
            raise EapPeerError("eap", f"server sent Result Success before {self.inner.name} succeeded", reply=refusal,
                               state="result")
        keys = self._compound_keys()
        binding = b""
        if tlvs.cryptobinding is None:
            self.cryptobinding = "absent"
            self._mppe = session_mppe(self._tunnel_key, None)
        else:
            try:
                request = verify_cryptobinding_request(keys, tlvs.cryptobinding)
            except CryptobindingError as exc:
                self.cryptobinding = "invalid"
                self.result = "failure"
                raise EapPeerError("cryptobinding", str(exc), reply=refusal, state="cryptobinding") from None
            self.cryptobinding = "valid"
            binding = build_cryptobinding_response(keys, request)
            self._mppe = session_mppe(self._tunnel_key, keys)
        self.result = "success"
        return result_packet(EapCode.RESPONSE, packet.identifier, ResultStatus.SUCCESS, binding)

    @staticmethod
    def _read_tlvs(data: bytes) -> TlvSet:
        """The validated TLV set (rules shared with the server: :func:`probe.eap.peap_common.read_tlvs`)."""
        try:
            return read_tlvs(data)
        except EapError as exc:
            raise EapPeerError("eap", str(exc), state="result") from None

    def _compound_keys(self) -> CompoundKeys:
        """IPMK/CMK from TK and the inner MSK, or the fast-reconnect keys when no inner method ran."""
        inner_msk = self.inner.msk() if self._inner_started else None
        return compound_keys(self._tunnel_key, inner_msk, inner_method_ran=self._inner_started)


def type_name(packet: EapPacket) -> str:
    """"MSCHAPV2 (26)" or "254 vendor 0x137/0x21" for messages."""
    kind = packet.type
    if kind == EapType.EXPANDED and len(packet.data) >= 7:
        vendor, vendor_type = int.from_bytes(packet.data[0:3], "big"), int.from_bytes(packet.data[3:7], "big")
        return f"254 (vendor {vendor:#x}, type {vendor_type:#x})"
    return f"{kind.name} ({kind.value})" if isinstance(kind, EapType) else str(kind)
