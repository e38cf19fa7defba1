"""PEAPv0 phase 2 as the emulated NPS runs it ([MS-PEAP] 3.3.5): plaintext in, plaintext out.

The outer session (:mod:`probe.emulator.eap_server`) decrypts and encrypts;
this module answers the tunnel::

    inner Identity -> MSCHAPv2 Challenge [a Nak for 13 switches to inner EAP-TLS]
    -> Success/Failure request -> ack
    -> EAP-TLV Result (+ Cryptobinding request) -> peer's Result (+ response)

The rules shared with the probe's peer (compression, the TLV set, compound
keys, which MS-MPPE keys) come from :mod:`probe.eap.peap_common`: both roles
refuse an unknown mandatory TLV, want exactly one Result TLV and at most one
Cryptobinding TLV. On a fast reconnect (a grant given to :meth:`PeapPhase2.start`)
phase 2 begins with the Result TLV instead of the inner Identity
([MS-PEAP] 3.3.7.1); a peer that answers Result Failure gets a full phase 2
([MS-PEAP] 3.3.5.4.7).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from OpenSSL import SSL

from probe.eap import cryptobinding as cb
from probe.eap import mschapv2 as ms
from probe.eap.crypto import MppeKeys
from probe.eap.packet import EapCode, EapError, EapPacket, EapType, parse_identity, parse_nak
from probe.eap.peap_common import compound_keys, compress, decompress, read_tlvs, result_packet, session_mppe
from probe.eap.tls import EapTlsSession
from probe.emulator.limits import ReleasableEngine
from probe.emulator.nps_rules import Fail, Reason, UsersLookup, account_name, certificate_account

if TYPE_CHECKING:
    from probe.emulator.eap_server import EapServerPolicy
    from probe.emulator.fast_reconnect import FastReconnectGrant, FastReconnectStats

__all__ = ["INNER_METHODS", "Finished", "PeapPhase2"]

INNER_METHODS: dict[str, EapType] = {"mschapv2": EapType.MSCHAPV2, "tls": EapType.TLS}
"""Policy names of the inner methods (``peap_inner``) and their EAP types."""
INNER_LABELS: dict[EapType, str] = {EapType.MSCHAPV2: "MSCHAPv2", EapType.TLS: "TLS"}
MSCHAP_ERROR_AUTH_FAILURE = 691
NONCE_LENGTH = 32


class _Inner(enum.Enum):
    """Where phase 2 is."""

    IDENTITY = "identity"
    PROPOSED = "proposed"
    MSCHAP_SUCCESS_ACK = "mschap_success_ack"
    MSCHAP_FAILURE_ACK = "mschap_failure_ack"
    TLS = "tls"
    RESULT = "result"
    RESULT_FAILURE = "result_failure"


@dataclass(frozen=True)
class Finished:
    """Phase 2 is over: success with keys, or failure with a reason."""

    success: bool
    text: str
    reason: Reason | None = None
    mppe: MppeKeys | None = field(default=None, repr=False)


class PeapPhase2:
    """The server's side of the tunnel, built on :mod:`probe.eap.peap_common`.

    ``outer`` is the PEAP TLS session (for the tunnel keys); ``inner_tls`` the
    context of PEAP-TLS's inner handshake (None when not offered);
    ``stats`` the fast-reconnect counters (None without fast reconnect).
    """

    def __init__(self, policy: EapServerPolicy, lookup: UsersLookup, outer: EapTlsSession, *,
                 inner_tls: SSL.Context | None, framed_mtu: int, random_bytes: Callable[[int], bytes],
                 stats: FastReconnectStats | None) -> None:
        self._policy = policy
        self._lookup = lookup
        self._outer = outer
        self._inner_tls_context = inner_tls
        self._framed_mtu = framed_mtu
        self._random = random_bytes
        self._stats = stats
        self.state = _Inner.IDENTITY
        self.identity: str | None = None
        """The inner Identity response."""
        self.account: str | None = None
        """The authenticated account: the inner identity's (MSCHAPv2) or the certificate UPN's (TLS)."""
        self.inner: EapType | None = None
        """The inner method once proposed."""
        self._challenge = b""
        self._inner_tls: EapTlsSession | None = None
        self._inner_msk: bytes | None = None
        self._compound: cb.CompoundKeys | None = None
        self._failure: tuple[Reason, str] | None = None
        self.fast_reconnect = False
        """Phase 2 was skipped: the Result TLV went out right after a resumed handshake."""
        self._propose_by_type: dict[EapType, Callable[[int], bytes]] = {
            EapType.MSCHAPV2: self._propose_mschapv2, EapType.TLS: self._propose_tls}
        self._answer_by_type: dict[EapType, Callable[[EapPacket], bytes | Finished]] = {
            EapType.MSCHAPV2: self._on_mschapv2, EapType.TLS: self._on_inner_tls}

    @property
    def inner_tls(self) -> EapTlsSession | None:
        """PEAP-TLS's inner EAP-TLS session once proposed (for releasing its connection)."""
        return self._inner_tls

    def start(self, identifier: int, grant: FastReconnectGrant | None = None) -> bytes:
        """The inner Identity request (header-less), or with a grant the Result TLV."""
        if grant is None:
            return compress(EapPacket.request(identifier, EapType.IDENTITY))
        self.fast_reconnect = True
        self.inner = grant.inner
        self.account = grant.account
        return self._result_success(identifier)

    def receive(self, data: bytes, identifier: int) -> bytes | Finished:
        """One decrypted peer message; returns the next plaintext to send, or the end."""
        if not data:
            raise EapError("empty message inside the PEAP tunnel")
        try:
            return self._dispatch(data, identifier)
        except Fail as fail:
            if self.state in (_Inner.RESULT, _Inner.RESULT_FAILURE):
                raise
            return self._result_failure(fail.reason, fail.text, identifier)

    def _dispatch(self, data: bytes, identifier: int) -> bytes | Finished:
        """Decompress (the peer answers our request: its Identifier), then route by phase-2 state."""
        packet = decompress(data, EapCode.RESPONSE, identifier)
        if packet.code is not EapCode.RESPONSE or compress(packet) != data:
            raise EapError(f"inner EAP {packet.code.name} type {packet.type!r} is not a correctly compressed "
                           f"Response ([MS-PEAP] 3.1.5.6)")
        if self.state is _Inner.RESULT:
            return self._on_result(packet)
        if self.state is _Inner.RESULT_FAILURE:
            assert self._failure is not None  # set with the state
            reason, text = self._failure
            return Finished(False, text, reason)
        if self.state is _Inner.IDENTITY:
            return self._on_identity(packet, identifier)
        if self.state is _Inner.PROPOSED and packet.type == EapType.NAK:
            return self._on_nak(packet, identifier)
        if self.inner is not None and packet.type == self.inner:
            return self._answer_by_type[self.inner](packet)
        raise EapError(f"unexpected inner EAP type {packet.type!r} in phase-2 state {self.state.value}")

    # -- identity and method choice

    def _on_identity(self, packet: EapPacket, identifier: int) -> bytes:
        """The inner identity names the account; propose the first inner method."""
        if packet.type != EapType.IDENTITY:
            raise EapError(f"expected the inner Identity response, got type {packet.type!r}")
        self.identity = parse_identity(packet)
        return self._propose(self._policy.inner_types[0], identifier)

    def _on_nak(self, packet: EapPacket, identifier: int) -> bytes | Finished:
        """The peer wants another inner method: take the first we also offer."""
        offered = self._policy.inner_types
        desired = parse_nak(packet)
        wanted = [kind for kind in desired if kind in offered and kind != self.inner]
        if not wanted:
            raise Fail(Reason.EAP_NOT_COMPLETED, f"peer Nak'ed inner {self._label} and wants types "
                       f"{[int(k) for k in desired]}, none of which the policy allows")
        return self._propose(EapType(wanted[0]), identifier)

    def _propose(self, method: EapType, identifier: int) -> bytes:
        """The first request of an inner method."""
        self.inner = method
        self.state = _Inner.PROPOSED
        return self._propose_by_type[method](identifier)

    def _propose_mschapv2(self, identifier: int) -> bytes:
        self._challenge = self._random(16)
        name = self._policy.server_name.encode("utf-8")
        request = EapPacket.request(identifier, EapType.MSCHAPV2, ms.build_challenge(identifier, self._challenge, name))
        return compress(request)

    def _propose_tls(self, identifier: int) -> bytes:
        assert self._inner_tls_context is not None  # the policy offers inner TLS only with its context
        self._inner_tls = EapTlsSession(ReleasableEngine(self._inner_tls_context, server=True),
                                        framed_mtu=self._framed_mtu)
        return compress(EapPacket.request(identifier, EapType.TLS, self._inner_tls.start()))

    @property
    def _label(self) -> str:
        return INNER_LABELS.get(EapType(self.inner), str(self.inner)) if self.inner is not None else "?"

    # -- inner MSCHAPv2

    def _on_mschapv2(self, packet: EapPacket) -> bytes | Finished:
        """Challenge response, then the Success/Failure acknowledgement."""
        identifier = packet.identifier
        message = ms.parse_response(packet.data)
        if isinstance(message, ms.Response) and self.state is _Inner.PROPOSED:
            return self._check_mschapv2(message, identifier)
        if isinstance(message, ms.SuccessAck) and self.state is _Inner.MSCHAP_SUCCESS_ACK:
            return self._result_success(identifier)
        if isinstance(message, ms.FailureAck) and self.state is _Inner.MSCHAP_FAILURE_ACK:
            assert self._failure is not None  # set with the state
            return self._result_failure(*self._failure, identifier)
        raise EapError(f"unexpected MSCHAPv2 {type(message).__name__} in phase-2 state {self.state.value}")

    def _check_mschapv2(self, response: ms.Response, identifier: int) -> bytes:
        """Verify the NT-Response; answer Success (S=) or Failure (E=691)."""
        account = account_name(self.identity or "")
        password = self._lookup(account)
        valid = password is not None and ms.check_nt_response(
            self._challenge, response.peer_challenge, response.name, password, response.nt_response)
        if password is None or not valid:
            self.state = _Inner.MSCHAP_FAILURE_ACK
            self._failure = (Reason.BAD_CREDENTIALS, f"MSCHAPv2: unknown account or wrong password for {account}")
            failure = ms.build_failure_request(response.ms_id, MSCHAP_ERROR_AUTH_FAILURE, retry=False,
                                               challenge=self._random(16), message="Authentication failed")
            return compress(EapPacket.request(identifier, EapType.MSCHAPV2, failure))
        self.account = account
        self._inner_msk = ms.eap_mschapv2_msk(password, response.nt_response)
        self.state = _Inner.MSCHAP_SUCCESS_ACK
        proof = ms.generate_authenticator_response(password, response.nt_response, response.peer_challenge,
                                                   self._challenge, response.name)
        success = ms.build_success_request(response.ms_id, proof)
        return compress(EapPacket.request(identifier, EapType.MSCHAPV2, success))

    # -- inner EAP-TLS

    def _on_inner_tls(self, packet: EapPacket) -> bytes | Finished:
        """Drive the inner EAP-TLS exchange; check the certificate once the handshake is done."""
        session = self._inner_tls
        assert session is not None
        self.state = _Inner.TLS
        step = session.receive(packet.data)
        if session.handshake_done and self.account is None:
            self.account = certificate_account(session.engine, self._lookup)
        if step.reply is not None:
            return compress(EapPacket.request(packet.identifier, EapType.TLS, step.reply))
        if not session.is_complete:
            raise EapError("inner EAP-TLS stopped before completing")
        self._inner_msk = session.msk()
        return self._result_success(packet.identifier)

    # -- Result and Cryptobinding TLVs

    def _result_success(self, identifier: int) -> bytes:
        """Result TLV Success, with a Cryptobinding request unless the policy says off."""
        self.state = _Inner.RESULT
        binding = b""
        if self._policy.cryptobinding != "off":
            self._compound = compound_keys(self._outer.key_material(), self._inner_msk,
                                           inner_method_ran=not self.fast_reconnect)
            binding = cb.build_cryptobinding_request(self._compound, self._random(NONCE_LENGTH))
        return compress(result_packet(EapCode.REQUEST, identifier, cb.ResultStatus.SUCCESS, binding))

    def _result_failure(self, reason: Reason, text: str, identifier: int) -> bytes:
        """Result TLV Failure; the outer EAP-Failure follows the peer's answer."""
        self.state = _Inner.RESULT_FAILURE
        self._failure = (reason, text)
        return compress(result_packet(EapCode.REQUEST, identifier, cb.ResultStatus.FAILURE))

    def _on_result(self, packet: EapPacket) -> bytes | Finished:
        """The peer's Result (and Cryptobinding) decide the keys, or the failure."""
        if packet.type != EapType.TLV:
            raise EapError(f"expected an EAP-TLV response to the Result TLV, got {packet.code.name} {packet.type!r}")
        tlvs = read_tlvs(packet.data)
        if self.fast_reconnect and tlvs.result is cb.ResultStatus.FAILURE:
            return self._decline_fast_reconnect(packet.identifier)
        if tlvs.result is not cb.ResultStatus.SUCCESS:
            raise Fail(Reason.EAP_NOT_COMPLETED, "the peer did not answer the Result TLV with Success")
        bound = tlvs.cryptobinding is not None
        return Finished(True, self._success_text(bound), mppe=self._keys(tlvs.cryptobinding))

    def _decline_fast_reconnect(self, identifier: int) -> bytes:
        """The peer refused to skip phase 2: authenticate in full inside this tunnel ([MS-PEAP] 3.3.5.4.7)."""
        self.fast_reconnect = False
        self.inner = None
        self.account = None
        self._compound = None
        self.state = _Inner.IDENTITY
        assert self._stats is not None  # a fast reconnect needs the grant table
        self._stats.refused += 1
        return compress(EapPacket.request(identifier, EapType.IDENTITY))

    def _keys(self, binding: cb.Tlv | None) -> MppeKeys:
        """CSK halves after a verified Cryptobinding response, TLS keys without one."""
        mode = self._policy.cryptobinding
        if mode == "off" or (binding is None and mode == "optional"):
            return session_mppe(self._outer.key_material(), None)
        if binding is None:
            raise Fail(Reason.CRYPTOBINDING_MISSING, "cryptobinding is required and the peer did not answer it")
        assert self._compound is not None
        try:
            cb.verify_cryptobinding_response(self._compound, binding)
        except cb.CryptobindingError as exc:
            raise Fail(Reason.CRYPTOBINDING_INVALID, f"cryptobinding failed: {exc}") from None
        return session_mppe(self._outer.key_material(), self._compound)

    def _success_text(self, bound: bool) -> str:
        """Event text for a successful PEAP conversation."""
        binding = "cryptobinding verified" if bound and self._policy.cryptobinding != "off" else "no cryptobinding"
        how = "fast reconnect succeeded, phase 2 skipped" if self.fast_reconnect else "succeeded"
        return f"PEAP-{self._label} {how} ({binding})"
