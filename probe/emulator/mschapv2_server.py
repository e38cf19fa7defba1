"""The emulator's bare EAP-MSCHAPv2 (NPS's "Microsoft: Secured password (EAP-MSCHAP v2)"), outside PEAP.

The same exchange as PEAP's inner method (peap_server.py), with full EAP headers and no tunnel:
Challenge (16 random bytes, NPS's name) -> Response checked against the account of the outer
identity -> Success-Request with the RFC 2759 authenticator response -> the peer's Success-Response
-> the session's EAP-Success with the server's RFC 3079 MS-MPPE keys (16 bytes each, as
rlm_eap_mschapv2 sends them; what NPS sends here is not known [?]). A wrong password or an unknown
account gets a Failure-Request (E=691 R=0), and after the peer's Failure-Response an EAP-Failure
with reason 16.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from probe.eap import mschapv2 as ms
from probe.eap.crypto import MppeKeys, Role
from probe.eap.packet import EapError, EapPacket, EapType
from probe.emulator.nps_rules import Fail, Reason, UsersLookup, account_name

MSCHAP_ERROR_AUTH_FAILURE = 691


@dataclass
class Done:
    """The method is over: success with the account and the server's keys."""

    account: str
    keys: MppeKeys = field(repr=False)
    text: str


class BareMschapV2Server:
    """One bare EAP-MSCHAPv2 exchange as NPS runs it; :meth:`receive` raises Fail for a refusal."""

    def __init__(self, lookup: UsersLookup, identity: str | None, server_name: str,
                 random_bytes: Callable[[int], bytes]) -> None:
        self._lookup = lookup
        self.account = account_name(identity or "")
        self._name = server_name.encode("utf-8")
        self._random = random_bytes
        self._challenge = b""
        self._state = "challenge"  # challenge -> success_ack | failure_ack
        self._keys: MppeKeys | None = None

    def start(self, identifier: int) -> bytes:
        self._challenge = self._random(16)
        return EapPacket.request(identifier, EapType.MSCHAPV2,
                                 ms.build_challenge(identifier, self._challenge, self._name)).to_bytes()

    def receive(self, packet: EapPacket, identifier: int) -> bytes | Done:
        message = ms.parse_response(packet.data)
        if isinstance(message, ms.Response) and self._state == "challenge":
            return self._check(message, identifier)
        if isinstance(message, ms.SuccessAck) and self._state == "success_ack":
            assert self._keys is not None
            return Done(self.account, self._keys, "EAP-MSCHAPv2 succeeded")
        if isinstance(message, ms.FailureAck) and self._state == "failure_ack":
            raise Fail(Reason.BAD_CREDENTIALS, f"EAP-MSCHAPv2: unknown account or wrong password for {self.account}")
        raise EapError(f"unexpected EAP-MSCHAPv2 {type(message).__name__} in state {self._state}")

    def _check(self, response: ms.Response, identifier: int) -> bytes:
        password = self._lookup(self.account)
        valid = password is not None and ms.check_nt_response(
            self._challenge, response.peer_challenge, response.name, password, response.nt_response)
        if password is None or not valid:
            self._state = "failure_ack"
            body = ms.build_failure_request(response.ms_id, MSCHAP_ERROR_AUTH_FAILURE, retry=False,
                                            challenge=self._random(16), message="Authentication failed")
        else:
            self._state = "success_ack"
            self._keys = ms.mppe_keys(password, response.nt_response, Role.SERVER)
            proof = ms.generate_authenticator_response(password, response.nt_response, response.peer_challenge,
                                                       self._challenge, response.name)
            body = ms.build_success_request(response.ms_id, proof)
        return EapPacket.request(identifier, EapType.MSCHAPV2, body).to_bytes()
