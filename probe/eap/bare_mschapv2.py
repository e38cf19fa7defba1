"""Bare EAP-MSCHAPv2: EAP type 26 as the outer method, without a TLS tunnel (issue 16).

What a Windows IKEv2 user tunnel with "Secured password (EAP-MSCHAP v2)" sends, and NPS's
"Microsoft: Secured password" method. The conversation is the inner one of PEAP, in the clear
and with full EAP headers: Challenge -> Response -> Success-Request (S=, the server's proof,
checked before anything counts) -> Success-Response -> EAP-Success; or Failure-Request
(E=691 ...) -> Failure-Response -> EAP-Failure, a clean rejection recorded in :attr:`failure`.

Keys: the server's MS-MPPE-Send/Recv-Key are its RFC 3079 send and receive start keys (16 bytes
each), as rlm_eap_mschapv2 and hostapd's server (MSK = server Recv | server Send) export them.
"""

from __future__ import annotations

import secrets
from typing import Callable

from probe.eap.crypto import MppeKeys
from probe.eap.packet import EapPacket, EapType
from probe.eap.peap import EapPeerError, MschapV2Peer

KEY_LEN = 16


class BareMschapV2Method:
    """The outer EAP-MSCHAPv2 method for :class:`probe.eap.peer.EapPeer` (no TLS leg)."""

    eap_type = EapType.MSCHAPV2
    name = "EAP-MSCHAPv2"
    leg = None  # no TLS: nothing to validate, resume or report

    def __init__(self, username: str, password: str,
                 peer_challenge: Callable[[], bytes] = lambda: secrets.token_bytes(16)) -> None:
        self.inner = MschapV2Peer(username, password, peer_challenge)

    def __repr__(self) -> str:
        return f"BareMschapV2Method({self.inner!r})"

    def step(self, packet: EapPacket) -> bytes:
        """A request's Type-Data (Challenge, Success, Failure) -> our response's Type-Data."""
        try:
            return self.inner.process(packet.data)
        except EapPeerError as exc:
            exc.state = exc.state or "mschapv2"
            raise

    @property
    def finished(self) -> bool:
        """The server proved itself (S=) and we acknowledged: EAP-Success may come."""
        return self.inner.succeeded

    @property
    def primary_auth_done(self) -> bool:
        return self.inner.succeeded

    @property
    def failure(self) -> str | None:
        return self.inner.failure

    @property
    def cryptobinding(self) -> str:
        return "absent"

    def mppe(self) -> MppeKeys | None:
        """The server's view: Send-Key = its send key (= peer receive), Recv-Key = its receive key."""
        if not self.inner.succeeded:
            return None
        msk = self.inner.msk()  # peer send | peer receive | zeros
        return MppeKeys(send_key=msk[KEY_LEN:2 * KEY_LEN], recv_key=msk[:KEY_LEN])

    def close(self) -> None:
        return None
