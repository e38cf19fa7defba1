"""The EAP server of the NPS emulator: EAP-TLS, PEAPv0/MSCHAPv2 and PEAPv0/EAP-TLS.

Why a server at all: the probe's EAP peer must be proven against something
that behaves like Microsoft NPS (PEAP proposed first, header-less inner
packets, Result and Cryptobinding TLVs, NPS's certificate checks and reason
codes), and eapol_test proves this server in turn (tests/integration).

sans-IO like ``probe/eap``: an :class:`EapServerSession` eats one
EAP-Response (the joined EAP-Message of an Access-Request) and returns an
:class:`EapStep` saying what to send back. No socket, no clock; the emulator
keys sessions on RADIUS State and turns steps into RADIUS replies with
:func:`reply_attributes`. Every protocol rule comes from ``probe/eap``: the
same code serves the probe as peer and this module as server.

Conversation, as NPS runs it::

    Identity -> PEAP Start (v0)            [a Nak for 13 switches to EAP-TLS]
    PEAP: TLS handshake -> tunnel:
        inner Identity -> MSCHAPv2 Challenge [a Nak for 13 switches to inner EAP-TLS]
        -> Success/Failure request -> ack
        -> EAP-TLV Result (+ Cryptobinding request) -> peer's Result (+ response)
    -> EAP-Success with MS-MPPE keys (CSK halves with cryptobinding, TLS keys without)
    -> or EAP-Failure (inside PEAP after a Result TLV Failure)

The concerns live in their own modules: NPS's reason codes and client
certificate checks in :mod:`probe.emulator.nps_rules`, the fast-reconnect
table in :mod:`probe.emulator.fast_reconnect`, PEAP phase 2 in
:mod:`probe.emulator.peap_server` (on :mod:`probe.eap.peap_common`, the rules
the probe's peer follows too). This module is the outer session.

TLS session resumption (NPS "fast reconnect", ``EapServerPolicy.fast_reconnect``)
is off unless the policy asks for it, because a resumed handshake re-runs no
credential check: a resumed EAP-TLS handshake carries no certificate, a
resumed PEAP tunnel skips the inner method. So the account must be remembered
with the session, and only a session whose authentication succeeded may be
resumed. :class:`FastReconnectCache` (fast_reconnect.py) keeps that table; when a resumed
handshake finds a grant:

* EAP-TLS ends with EAP-Success and MPPE keys from the new TLS keys, for the
  remembered account (which must still exist);
* PEAP skips phase 2 ([MS-PEAP] 3.3.7.1): the Result TLV (Success) and a
  Cryptobinding TLV keyed with IPMK = TK[0:40], CMK = TK[40:60]
  ([MS-PEAP] 3.1.5.5.2.2) follow the abbreviated handshake at once; the MPPE
  keys are the CSK halves (TLS keys without cryptobinding). A peer that
  answers Result Failure gets the inner Identity request and a full phase 2
  ([MS-PEAP] 3.3.5.4.7), as does a resumed PEAP session without a grant.

A resumed EAP-TLS session without a grant fails (reason 22), as hostapd's
server does. Any failure withdraws the conversation's grant and evicts its
session from the server cache, so the next attempt is a full handshake.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from OpenSSL import SSL

from probe.credentials import load_client_credentials, load_trust
from probe.eap.crypto import MppeKeys, Role, split_mppe_keys
from probe.eap.packet import EapCode, EapError, EapPacket, EapType, parse_identity, parse_nak
from probe.eap.tls import (
    MAX_FRAMED_MTU,
    MIN_FRAMED_MTU,
    TLS_VERSIONS,
    EapTlsSession,
    EapTlsStep,
    Flags,
    parse_payload,
    server_context,
    start_payload,
)
from probe.emulator.fast_reconnect import (
    DEFAULT_FAST_RECONNECT_LIFETIME_S,
    DEFAULT_FAST_RECONNECT_SESSIONS,
    MAX_FAST_RECONNECT_LIFETIME_S,
    MAX_FAST_RECONNECT_SESSIONS,
    FastReconnectCache,
    FastReconnectGrant,
    FastReconnectStats,
)
from probe.emulator.limits import ReleasableEngine
from probe.emulator.nps_rules import Fail, Reason, UsersLookup, account_name, certificate_account
from probe.emulator.mschapv2_server import BareMschapV2Server, Done
from probe.emulator.peap_server import INNER_METHODS, Finished, PeapPhase2
from probe.radius import packet as pk

__all__ = [
    "CryptobindingMode",
    "EapServerPolicy",
    "EapServerSession",
    "EapStep",
    "FastReconnectCache",
    "FastReconnectGrant",
    "FastReconnectStats",
    "Reason",
    "ServerTls",
    "StepKind",
    "UsersLookup",
    "account_name",
    "reply_attributes",
]

StepKind = Literal["challenge", "success", "failure"]
CryptobindingMode = Literal["off", "optional", "required"]

OUTER_METHODS: dict[str, EapType] = {"peap": EapType.PEAP, "eap-tls": EapType.TLS,
                                     "eap-mschapv2": EapType.MSCHAPV2}  # bare, no tunnel (mschapv2_server.py)
"""Policy names of the outer methods (``methods``) and their EAP types."""
OUTER_VERSIONS: dict[EapType, int] = {EapType.PEAP: 0, EapType.TLS: 0}
"""Version bits in the Start flags: PEAPv0 (NPS), and EAP-TLS has none."""
METHOD_NAMES: dict[tuple[EapType, EapType | None], str] = {
    (EapType.TLS, None): "eap-tls",
    (EapType.PEAP, None): "peap",
    (EapType.PEAP, EapType.MSCHAPV2): "peap-mschapv2",
    (EapType.PEAP, EapType.TLS): "peap-tls",
    (EapType.MSCHAPV2, None): "eap-mschapv2",
}
"""Names for events and reports (``EapServerSession.method``)."""


# ---------------------------------------------------------------------------
# Policy and TLS contexts


@dataclass(frozen=True, kw_only=True)
class EapServerPolicy:
    """What the emulated NPS offers and requires (its network policy's EAP settings)."""

    server_cert: str | Path
    """PEM file: the server certificate, intermediates after it."""
    server_key: str | Path
    key_password: str | None = field(default=None, repr=False)
    ca_file: str | Path | None = None
    """CA certificates client certificates must chain to (EAP-TLS, PEAP-TLS)."""
    methods: tuple[str, ...] = ("peap", "eap-tls")
    """Outer methods in proposal order: NPS proposes PEAP first."""
    peap_inner: tuple[str, ...] = ("mschapv2", "tls")
    """Inner methods in proposal order: a PEAP-TLS peer Naks MSCHAPv2."""
    cryptobinding: CryptobindingMode = "optional"
    """off: no Cryptobinding TLV; optional: sent, used when answered; required: an unanswered one fails."""
    tls_min: str = "1.2"
    tls_max_peap: str = "1.2"
    tls_max_eap_tls: str = "1.2"
    framed_mtu_default: int = 1500
    server_name: str = "NPS"
    """Name in the MSCHAPv2 Challenge (NPS sends its computer name)."""
    max_rounds: int = 100
    """Responses per conversation before giving up: bounds a peer that never finishes
    (hostapd's peer gives up after 100 rounds as well; PEAP-TLS at Framed-MTU 300 takes 43)."""
    fast_reconnect: bool = False
    """TLS session resumption for PEAP and EAP-TLS (NPS's PEAP "Enable Fast Reconnect", on by
    default in NPS). Off here so every test states whether it relies on it."""
    fast_reconnect_lifetime_s: int = DEFAULT_FAST_RECONNECT_LIFETIME_S
    """How long a session stays resumable (OpenSSL's session timeout). NPS's own lifetime: [?]."""
    fast_reconnect_sessions: int = DEFAULT_FAST_RECONNECT_SESSIONS
    """Most sessions (TLS 1.3: tickets, two per full handshake) resumable at once; the oldest goes first."""

    def __post_init__(self) -> None:
        """Refuse a policy NPS could not have; messages name the field."""
        _known("methods", self.methods, OUTER_METHODS)
        _known("peap_inner", self.peap_inner, INNER_METHODS)
        if self.cryptobinding not in ("off", "optional", "required"):
            raise ValueError(f"cryptobinding must be off, optional or required, not {self.cryptobinding!r}")
        for name in ("tls_min", "tls_max_peap", "tls_max_eap_tls"):
            if getattr(self, name) not in TLS_VERSIONS:
                raise ValueError(f"{name} {getattr(self, name)!r} is not one of {', '.join(TLS_VERSIONS)}")
        if TLS_VERSIONS[self.tls_max_peap] > TLS_VERSIONS["1.2"]:
            raise ValueError("tls_max_peap above 1.2: NPS keeps PEAP at TLS 1.2 (PEAP key derivation differs in 1.3)")
        if not MIN_FRAMED_MTU <= self.framed_mtu_default <= MAX_FRAMED_MTU:
            raise ValueError(f"framed_mtu_default must be in {MIN_FRAMED_MTU}..{MAX_FRAMED_MTU}")
        if self.max_rounds < 1:
            raise ValueError("max_rounds must be positive")
        for name, top in (("fast_reconnect_lifetime_s", MAX_FAST_RECONNECT_LIFETIME_S),
                          ("fast_reconnect_sessions", MAX_FAST_RECONNECT_SESSIONS)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
                raise ValueError(f"{name} must be a whole number in 1..{top}, not {value!r}")
        if self.needs_client_certificates and self.ca_file is None:
            raise ValueError("EAP-TLS and PEAP-TLS need ca_file to check client certificates")

    @property
    def needs_client_certificates(self) -> bool:
        """True when some offered method authenticates with a client certificate."""
        outer = self.outer_types
        return EapType.TLS in outer or (EapType.PEAP in outer and EapType.TLS in self.inner_types)

    @property
    def outer_types(self) -> tuple[EapType, ...]:
        """The outer methods as EAP types, in proposal order."""
        return tuple(OUTER_METHODS[name] for name in self.methods)

    @property
    def inner_types(self) -> tuple[EapType, ...]:
        """PEAP's inner methods as EAP types, in proposal order."""
        return tuple(INNER_METHODS[name] for name in self.peap_inner)


def _known(name: str, values: tuple[str, ...], allowed: dict[str, EapType]) -> None:
    """A method list must be non-empty, known and without repeats."""
    if not values or len(set(values)) != len(values) or any(v not in allowed for v in values):
        raise ValueError(f"{name} must list distinct methods from {', '.join(allowed)}, got {values!r}")


class ServerTls:
    """The TLS server contexts a policy needs, built once and shared by all sessions.

    Reading and checking key files costs milliseconds; a context is safe to
    share. ``peap`` asks for no client certificate; ``eap_tls`` and
    ``inner_tls`` (PEAP-TLS) require one and only record verification
    problems, so the session can map them to NPS reason codes itself.
    With ``fast_reconnect`` the outer contexts (``peap``, ``eap_tls``, each
    its own cache, so a session never crosses methods) cache sessions and
    ``fast_reconnect`` holds the grants; the inner TLS of PEAP-TLS never resumes.
    """

    def __init__(self, policy: EapServerPolicy, *, clock: Callable[[], float] | None = None) -> None:
        lifetime = policy.fast_reconnect_lifetime_s
        self.fast_reconnect = FastReconnectCache(
            policy.fast_reconnect_sessions, lifetime, clock=clock) if policy.fast_reconnect else None
        """The grants; ``clock`` (the emulator's) ages them, time.monotonic when omitted."""
        cache = self.fast_reconnect
        outer = set(policy.outer_types)
        inner = set(policy.inner_types) if EapType.PEAP in outer else set()
        settings: dict[EapType, tuple[Literal["none", "require"], str]] = {
            EapType.PEAP: ("none", policy.tls_max_peap), EapType.TLS: ("require", policy.tls_max_eap_tls)}
        self.outer: dict[EapType, SSL.Context] = {
            kind: self._context(policy, *settings[kind], cache) for kind in sorted(outer) if kind in settings}
        """The outer methods' contexts, by EAP type."""
        self.inner_tls = self._context(policy, "require", policy.tls_max_peap, None) if EapType.TLS in inner else None

    @property
    def peap(self) -> SSL.Context | None:
        """PEAP's phase-1 context (no client certificate)."""
        return self.outer.get(EapType.PEAP)

    @property
    def eap_tls(self) -> SSL.Context | None:
        """EAP-TLS's context (client certificate required)."""
        return self.outer.get(EapType.TLS)

    @staticmethod
    def _context(policy: EapServerPolicy, client_cert: Literal["none", "require"], max_version: str,
                 cache: FastReconnectCache | None) -> SSL.Context:
        """One server context; it caches sessions (stateful only: no tickets) when given a grant table."""
        credentials = load_client_credentials(policy.server_cert, policy.server_key, policy.key_password)
        trust = load_trust(policy.ca_file) if client_cert != "none" and policy.ca_file is not None else None
        ctx = server_context(credentials=credentials, trust=trust, client_cert=client_cert, verify=False,
                             min_version=policy.tls_min, max_version=max_version)
        ctx.set_options(SSL.OP_NO_TICKET)  # TLS 1.3: stateful tickets, backed by the cache like session IDs
        ctx.set_mode(SSL.MODE_RELEASE_BUFFERS)  # an idle connection (waiting for the peer) keeps no I/O buffers
        if cache is None:
            ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
            return ctx
        ctx.set_session_cache_mode(SSL.SESS_CACHE_SERVER)
        ctx.set_timeout(policy.fast_reconnect_lifetime_s)
        ctx.set_info_callback(cache.observe)
        return ctx


# ---------------------------------------------------------------------------
# Steps


@dataclass(frozen=True)
class EapStep:
    """What to answer one EAP-Response with.

    ``eap`` goes into EAP-Message: an Access-Challenge for "challenge", an
    Access-Accept for "success" (with MS-MPPE keys ``mppe`` = (send, recv)
    in the server's view), an Access-Reject for "failure" (``reason`` is the
    NPS reason code). ``identity`` is the authenticated account (inner
    identity or certificate UPN user) on success, the best known name
    otherwise; on a fast reconnect, the account remembered with the session.
    ``text`` is for the event log and never holds a secret. ``resumed``: the
    success was a fast reconnect (resumed TLS session, no credential checked).
    """

    kind: StepKind
    eap: bytes
    identity: str | None = None
    mppe: tuple[bytes, bytes] | None = field(default=None, repr=False)
    reason: int | None = None
    text: str = ""
    resumed: bool = False

    def failure_eap(self) -> bytes:
        """An EAP-Failure answering the same response: for when MFA denies a successful EAP."""
        return EapPacket.failure(self.eap[1]).to_bytes()


def reply_attributes(step: EapStep, *, state: bytes | None, secret: bytes, request_authenticator: bytes,
                     random_bytes: Callable[[int], bytes] = os.urandom) -> tuple[int, list[pk.Attr]]:
    """The RADIUS reply code and attributes for a step (Message-Authenticator is build_reply's job).

    Challenges carry ``state``; an Accept carries MS-MPPE-Send-Key and
    MS-MPPE-Recv-Key salt-encrypted with the request authenticator (RFC 2548).
    """
    attrs = pk.eap_message_attrs(step.eap)
    if step.kind == "challenge":
        if state is not None:
            attrs.append((pk.STATE, state))
        return pk.ACCESS_CHALLENGE, attrs
    if step.kind == "failure":
        return pk.ACCESS_REJECT, attrs
    if step.mppe is not None:
        for vendor_type, key in zip((pk.MS_MPPE_SEND_KEY, pk.MS_MPPE_RECV_KEY), step.mppe):
            salt = bytes((random_bytes(1)[0] | 0x80,)) + random_bytes(1)
            attrs.append(pk.vsa(pk.VENDOR_MICROSOFT, vendor_type,
                                pk.salt_encrypt(key, secret, request_authenticator, salt)))
    return pk.ACCESS_ACCEPT, attrs


# ---------------------------------------------------------------------------
# The conversation


class _Outer(enum.Enum):
    """Where the outer conversation is."""

    IDENTITY = "identity"
    PROPOSED = "proposed"
    TLS = "tls"
    DONE = "done"


class EapServerSession:
    """One EAP conversation with one peer, as NPS runs it; the emulator keys it on RADIUS State.

    ``users_lookup(account)`` returns the account's password or None when
    it does not exist. ``tls`` shares contexts between sessions (built from
    the policy when omitted); ``random_bytes`` supplies challenges, nonces
    and the first Identifier.

    Cheap while idle: no OpenSSL connection exists before the peer's first TLS
    data (the Start is one byte), and :meth:`release` lets go of it when the
    emulator drops the conversation.
    """

    __slots__ = ("policy", "lookup", "tls", "random_bytes", "framed_mtu", "outer_identity", "method", "_state",
                 "_identifier", "_rounds", "_response_id", "_outer_type", "_outer", "_phase2", "_account",
                 "resumed", "_tls_messages", "_bare")

    def __init__(self, policy: EapServerPolicy, users_lookup: UsersLookup, *, tls: ServerTls | None = None,
                 random_bytes: Callable[[int], bytes] = os.urandom) -> None:
        self.policy = policy
        self.lookup = users_lookup
        self.tls = tls if tls is not None else ServerTls(policy)
        self.random_bytes = random_bytes
        self.framed_mtu = policy.framed_mtu_default
        self.outer_identity: str | None = None
        self.method: str | None = None
        """"eap-tls", "peap", then "peap-mschapv2" or "peap-tls": for events (see METHOD_NAMES)."""
        self._state = _Outer.IDENTITY
        self._identifier = random_bytes(1)[0]
        self._rounds = 0
        self._response_id = self._identifier
        self._outer_type: EapType | None = None
        self._outer: EapTlsSession | None = None
        self._phase2: PeapPhase2 | None = None
        self._account: str | None = None
        self.resumed = False
        """The conversation is a fast reconnect: a resumed TLS session stands for the account."""
        self._tls_messages = 0
        """Complete TLS messages (flights) received from the peer: 1 while in the first flight."""
        self._bare: BareMschapV2Server | None = None
        """Bare EAP-MSCHAPv2 (the outer method without TLS), once proposed."""

    @property
    def finished(self) -> bool:
        """True once a success or failure was returned."""
        return self._state is _Outer.DONE

    @property
    def tls_live(self) -> bool:
        """An OpenSSL connection exists (built at the peer's first TLS data, gone after :meth:`release`)."""
        return self._outer is not None

    @property
    def tls_first_flight(self) -> bool:
        """The peer has sent at most its first TLS flight (a ClientHello): what a flood of them looks like."""
        return self._tls_messages <= 1

    def release(self) -> None:
        """Let go of the TLS connections at once (the emulator drops the conversation or has answered it).

        Nothing is resumable afterwards unless it was granted before; the
        session only answers with a failure from now on.
        """
        self._account = self._best_identity()  # the session is over: keep the name for events only
        for session in (self._outer, self._phase2.inner_tls if self._phase2 is not None else None):
            if session is not None and isinstance(session.engine, ReleasableEngine):
                session.engine.release()
        self._outer = None
        self._phase2 = None
        self._state = _Outer.DONE

    def revoke_fast_reconnect(self) -> None:
        """Make this conversation's TLS session unresumable although the EAP method succeeded.

        For the emulator: when the MFA extension or the policy rejects (or
        discards) a successful EAP conversation, it was no successful
        authentication, and a fast reconnect must not stand for it.
        """
        if self.tls.fast_reconnect is not None and self._outer is not None:
            self.tls.fast_reconnect.revoke(self._outer.engine)

    def handle(self, eap_response: bytes, framed_mtu: int | None = None) -> EapStep:
        """Answer one EAP-Response (the joined EAP-Message); ``framed_mtu`` from the same request.

        Empty input (an EAP-Start from the NAS) gets an Identity request.
        """
        if framed_mtu is not None:
            self.framed_mtu = min(max(framed_mtu, MIN_FRAMED_MTU), MAX_FRAMED_MTU)
        identifier = self._identifier
        try:
            self._rounds += 1
            if self._state is _Outer.DONE:
                raise Fail(Reason.EAP_NOT_COMPLETED, "the EAP conversation has already finished")
            if self._rounds > self.policy.max_rounds:
                raise Fail(Reason.EAP_NOT_COMPLETED, f"no result after {self.policy.max_rounds} EAP rounds")
            if not eap_response and self._state is _Outer.IDENTITY:
                return self._challenge(EapPacket.request(self._next_id(), EapType.IDENTITY))
            packet = EapPacket.parse(eap_response)
            identifier = self._response_id = packet.identifier
            self._check_response(packet)
            return self._dispatch(packet)
        except Fail as fail:
            return self._failure(identifier, fail.reason, fail.text)
        except EapError as exc:  # every protocol error of probe.eap (MS-CHAPv2, TLV, cryptobinding, TLS) is one
            return self._failure(identifier, Reason.EAP_NOT_COMPLETED, f"EAP could not complete: {exc}")

    # -- dispatch

    def _check_response(self, packet: EapPacket) -> None:
        """Only an EAP-Response to our latest request moves the conversation on."""
        if packet.code is not EapCode.RESPONSE:
            raise EapError(f"expected an EAP-Response, got {packet.code.name}")
        if self._state is not _Outer.IDENTITY and packet.identifier != self._identifier:
            raise EapError(f"EAP-Response Identifier {packet.identifier} does not answer request {self._identifier}")

    def _dispatch(self, packet: EapPacket) -> EapStep:
        """Route by outer state."""
        if self._state is _Outer.IDENTITY:
            return self._on_identity(packet)
        if self._state is _Outer.PROPOSED and packet.type == EapType.NAK:
            return self._on_nak(packet)
        if packet.type != self._outer_type:
            raise EapError(f"expected EAP type {self._outer_type!r}, got {packet.type!r}")
        assert self._outer_type is not None
        if self._bare is not None:
            return self._on_bare_mschapv2(packet)
        self._state = _Outer.TLS
        self._count_tls_message(packet.data)
        step = self._tls_session().receive(packet.data)
        return self._ON_OUTER[self._outer_type](self, step)

    def _count_tls_message(self, payload: bytes) -> None:
        """Count the peer's complete TLS messages: data without the More flag ends one."""
        try:
            message = parse_payload(payload)
        except EapError:
            return  # the session's own parse reports it
        if message.data and not message.flags & Flags.MORE:
            self._tls_messages += 1

    def _tls_session(self) -> EapTlsSession:
        """The outer EAP-TLS session, built at the peer's first TLS data (lazy: a Start costs no OpenSSL)."""
        if self._outer is None:
            assert self._outer_type is not None
            ctx = self.tls.outer.get(self._outer_type)
            assert ctx is not None  # ServerTls builds a context for every offered method
            self._outer = EapTlsSession(ReleasableEngine(ctx, server=True), eap_type=self._outer_type,
                                        framed_mtu=self.framed_mtu, version=OUTER_VERSIONS[self._outer_type])
            self._outer.start()  # the Start already went out (see _propose)
        return self._outer

    def _on_identity(self, packet: EapPacket) -> EapStep:
        """The outer identity (often anonymous): propose the first method, as NPS does."""
        if packet.type != EapType.IDENTITY:
            raise EapError(f"the conversation must start with an Identity response, got type {packet.type!r}")
        self.outer_identity = parse_identity(packet)
        self._identifier = packet.identifier
        return self._propose(self.policy.outer_types[0])

    def _on_nak(self, packet: EapPacket) -> EapStep:
        """A legacy Nak: switch to the first requested method the policy offers."""
        offered = self.policy.outer_types
        desired = parse_nak(packet)
        wanted = [kind for kind in desired if kind in offered and kind != self._outer_type]
        if not wanted:
            raise Fail(Reason.EAP_NOT_COMPLETED, f"the peer Nak'ed {self.method} and asks for types "
                       f"{[int(k) for k in desired]}, none of which the policy allows")
        return self._propose(EapType(wanted[0]))

    def _propose(self, method: EapType) -> EapStep:
        """Start PEAP (version 0) or EAP-TLS with a Start message; the TLS session waits for the peer's data."""
        self._outer_type = method
        self.method = METHOD_NAMES[(method, None)]
        self._state = _Outer.PROPOSED
        self._bare = None
        if self._outer_type == EapType.MSCHAPV2:  # no TLS Start: the Challenge itself
            self._bare = BareMschapV2Server(self.lookup, self.outer_identity, self.policy.server_name,
                                            self.random_bytes)
            return self._challenge(EapPacket.parse(self._bare.start(self._next_id())))
        return self._challenge(EapPacket.request(self._next_id(), method, start_payload(OUTER_VERSIONS[method])))

    # -- bare EAP-MSCHAPv2

    def _on_bare_mschapv2(self, packet: EapPacket) -> EapStep:
        assert self._bare is not None
        self._state = _Outer.TLS  # past the proposal: a Nak is no longer an answer
        answer = self._bare.receive(packet, self._next_id())
        if isinstance(answer, Done):
            return self._success(answer.account, answer.keys, answer.text)
        return self._challenge(EapPacket.parse(answer))

    # -- EAP-TLS

    def _on_eap_tls(self, step: EapTlsStep) -> EapStep:
        """Check the certificate as soon as the handshake is done; succeed once the exchange is."""
        outer = self._outer
        assert outer is not None
        if outer.handshake_done and self._account is None:
            resumed = outer.engine.session_reused
            self._account = self._resumed_account() if resumed else certificate_account(outer.engine, self.lookup)
        if step.reply is not None:
            return self._challenge(EapPacket.request(self._next_id(), EapType.TLS, step.reply))
        if not outer.is_complete:
            raise EapError("EAP-TLS stopped before completing")
        keys = split_mppe_keys(outer.msk(), Role.SERVER)
        how = "fast reconnect succeeded, TLS session resumed" if self.resumed else "succeeded"
        return self._success(self._account, keys, f"EAP-TLS {how} ({outer.engine.version})")

    def _resumed_account(self) -> str:
        """A resumed EAP-TLS handshake checked no certificate: only a grant names the account."""
        grant = self._grant(EapType.TLS)
        if grant is None:
            raise Fail(Reason.EAP_NOT_COMPLETED, "the peer resumed a TLS session that has no fast-reconnect grant "
                        "(its authentication failed or was withdrawn, or the grant was forgotten)")
        if self.lookup(grant.account) is None:
            raise Fail(Reason.BAD_CREDENTIALS, f"fast reconnect for {grant.account}, no longer a known account")
        self.resumed = True
        return grant.account

    def _grant(self, outer_type: EapType) -> FastReconnectGrant | None:
        """The grant of a resumed outer session, when it was made by the same outer method; counts refusals."""
        cache, outer = self.tls.fast_reconnect, self._outer
        if cache is None or outer is None or not outer.engine.session_reused:
            return None
        grant = cache.grant_for(outer.engine)
        if grant is None or grant.outer != outer_type:
            cache.stats.refused += 1
            return None
        return grant

    def _peap_grant(self) -> FastReconnectGrant | None:
        """A usable grant for skipping phase 2; without one a resumed tunnel runs phase 2 ([MS-PEAP] 3.3.7.1)."""
        grant = self._grant(EapType.PEAP)
        if grant is not None and self.lookup(grant.account) is None:
            assert self.tls.fast_reconnect is not None  # there is a grant
            self.tls.fast_reconnect.stats.refused += 1
            return None
        return grant

    # -- PEAP

    def _on_peap(self, step: EapTlsStep) -> EapStep:
        """Outer fragments and handshake flights, then phase 2 through the tunnel."""
        outer = self._outer
        assert outer is not None
        if step.reply is not None:
            return self._challenge(EapPacket.request(self._next_id(), EapType.PEAP, step.reply))
        identifier = self._next_id()
        if self._phase2 is None:
            self._phase2 = PeapPhase2(self.policy, self.lookup, outer, inner_tls=self.tls.inner_tls,
                                      framed_mtu=self.framed_mtu, random_bytes=self.random_bytes,
                                      stats=self.tls.fast_reconnect.stats if self.tls.fast_reconnect else None)
            answer: bytes | Finished = self._phase2.start(identifier, self._peap_grant())
        else:
            answer = self._phase2.receive(step.app_data, identifier)
        if isinstance(answer, bytes):
            return self._challenge(EapPacket.request(identifier, EapType.PEAP, outer.send_app(answer)))
        self.method = METHOD_NAMES.get((EapType.PEAP, self._phase2.inner), "peap")
        if not answer.success:
            raise Fail(answer.reason or Reason.EAP_NOT_COMPLETED, answer.text)
        assert answer.mppe is not None
        self.resumed = self._phase2.fast_reconnect
        return self._success(self._phase2.account, answer.mppe, answer.text)

    _ON_OUTER: dict[EapType, Callable[["EapServerSession", EapTlsStep], EapStep]] = {
        EapType.TLS: _on_eap_tls, EapType.PEAP: _on_peap}
    """How each outer method goes on after a TLS step."""

    # -- steps

    def _next_id(self) -> int:
        """The Identifier of our next request (taken when the request is sent)."""
        return (self._identifier + 1) & 0xFF

    def _challenge(self, packet: EapPacket) -> EapStep:
        """An EAP-Request to send in an Access-Challenge; its Identifier is the one to answer."""
        self._identifier = packet.identifier
        return EapStep("challenge", packet.to_bytes(), self._best_identity(),
                       text=f"EAP challenge ({self.method or 'identity'})")

    def _success(self, account: str | None, keys: MppeKeys, text: str) -> EapStep:
        """EAP-Success answering the last response (RFC 3748: same Identifier); the session becomes resumable."""
        self._state = _Outer.DONE
        self._account = account
        if self._outer is not None:
            self._outer.close()
            cache = self.tls.fast_reconnect
            if cache is not None and account and self._outer_type is not None:
                inner = self._phase2.inner if self._phase2 is not None else None
                cache.grant(self._outer.engine, FastReconnectGrant(self._outer_type, inner, account))
                if self.resumed:
                    cache.stats.resumed += 1
        return EapStep("success", EapPacket.success(self._response_id).to_bytes(), account,
                       (keys.send_key, keys.recv_key), None, text, self.resumed)

    def _failure(self, identifier: int, reason: Reason, text: str) -> EapStep:
        """EAP-Failure with the NPS reason code; the session of a failed conversation is never resumable."""
        if self._state is not _Outer.DONE:  # (a response after the end must not undo a success)
            self.revoke_fast_reconnect()
        self._state = _Outer.DONE
        return EapStep("failure", EapPacket.failure(identifier).to_bytes(), self._best_identity(), None,
                       int(reason), text)

    @property
    def best_identity(self) -> str | None:
        """The authenticated account when known, else the inner identity, else the outer one (for events)."""
        return self._best_identity()

    def _best_identity(self) -> str | None:
        """The authenticated account when known, else the inner identity, else the outer one."""
        if self._account:
            return self._account
        if self._phase2 is not None and self._phase2.account:
            return self._phase2.account
        inner = self._phase2.identity if self._phase2 is not None else None
        if inner:
            return account_name(inner)
        return account_name(self.outer_identity) if self.outer_identity else None
