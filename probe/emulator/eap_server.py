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

Certificate checks (EAP-TLS and PEAP-TLS), in NPS's order, with NPS reason
codes: chain to a trusted CA (265), validity period (268), Client
Authentication EKU (283), SAN UPN mapped to a known account (16).

TLS session resumption (NPS "fast reconnect", ``EapServerPolicy.fast_reconnect``)
is off unless the policy asks for it, because a resumed handshake re-runs no
credential check: a resumed EAP-TLS handshake carries no certificate, a
resumed PEAP tunnel skips the inner method. So the account must be remembered
with the session, and only a session whose authentication succeeded may be
resumed. :class:`FastReconnectCache` keeps that table; when a resumed
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
import hashlib
import os
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from OpenSSL import SSL

from probe import pki
from probe.credentials import load_client_credentials, load_trust
from probe.eap import cryptobinding as cb
from probe.eap import mschapv2 as ms
from probe.eap.crypto import MppeKeys, Role, split_mppe_keys
from probe.eap.packet import EapCode, EapError, EapPacket, EapType, parse_identity
from probe.eap.tls import (
    MAX_FRAMED_MTU,
    MIN_FRAMED_MTU,
    TLS_VERSIONS,
    EapTlsSession,
    EapTlsStep,
    TlsEngine,
    server_context,
)
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
UsersLookup = Callable[[str], "str | None"]
"""Account name -> its password, or None for an unknown account (certificates only need it known)."""

OUTER_METHODS: dict[str, EapType] = {"peap": EapType.PEAP, "eap-tls": EapType.TLS}
INNER_METHODS: dict[str, EapType] = {"mschapv2": EapType.MSCHAPV2, "tls": EapType.TLS}
PEAP_VERSION = 0
TUNNEL_KEY_LENGTH = 60
"""TK: the first 60 bytes of PRF(master, "client EAP encryption", randoms) ([MS-PEAP] 3.1.5.5.2.1)."""
MSCHAP_ERROR_AUTH_FAILURE = 691
NONCE_LENGTH = 32
DEFAULT_FAST_RECONNECT_LIFETIME_S = 600
"""Ten minutes: long enough for a probe's or a client's reconnect, short enough for tests and demos."""
DEFAULT_FAST_RECONNECT_SESSIONS = 20480
"""OpenSSL's own default server session cache size (SSL_SESSION_CACHE_MAX_SIZE_DEFAULT)."""


class Reason(enum.IntEnum):
    """NPS reason codes (event 6273) this server produces.

    Sources: Microsoft's "NPS Reason Codes" pages (0-37, 258-282, 283-303).
    CERT_EXPIRED is 268 ("the certificate ... is expired"), recalled from
    the 258-282 page; the other numbers are quoted in PROTOCOL-NOTES.md.
    """

    BAD_CREDENTIALS = 16
    """Wrong password, unknown user, or a certificate that maps to no account."""
    EAP_NOT_COMPLETED = 22
    """EAP type not processed: no common method, TLS failure, missing cryptobinding."""
    CERT_UNTRUSTED = 265
    """The client certificate does not chain to a trusted root."""
    CERT_EXPIRED = 268
    """The client certificate is outside its validity period [number: ?]."""
    NO_CLIENT_AUTH_EKU = 283
    """The client certificate lacks the Client Authentication purpose."""


class _Fail(Exception):
    """Ends the conversation with an EAP-Failure (raised deep, caught in handle())."""

    def __init__(self, reason: Reason, text: str) -> None:
        super().__init__(text)
        self.reason = reason
        self.text = text


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
        for name in ("fast_reconnect_lifetime_s", "fast_reconnect_sessions"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive whole number, not {value!r}")
        if self.needs_client_certificates and self.ca_file is None:
            raise ValueError("EAP-TLS and PEAP-TLS need ca_file to check client certificates")

    @property
    def needs_client_certificates(self) -> bool:
        """True when some offered method authenticates with a client certificate."""
        return "eap-tls" in self.methods or ("peap" in self.methods and "tls" in self.peap_inner)


def _known(name: str, values: tuple[str, ...], allowed: dict[str, EapType]) -> None:
    """A method list must be non-empty, known and without repeats."""
    if not values or len(set(values)) != len(values) or any(v not in allowed for v in values):
        raise ValueError(f"{name} must list distinct methods from {', '.join(allowed)}, got {values!r}")


@dataclass(frozen=True)
class FastReconnectGrant:
    """Who authenticated on a TLS session, and how: what a fast reconnect on it stands for."""

    method: str
    """"eap-tls", "peap-mschapv2" or "peap-tls": a session is only resumed by the method that made it."""
    account: str


@dataclass
class FastReconnectStats:
    """Counters for logs and tests."""

    granted: int = 0
    """Successful conversations whose session became (or stayed) resumable."""
    resumed: int = 0
    """Successes by fast reconnect: resumed TLS, no credential checked again."""
    refused: int = 0
    """Resumed TLS sessions that got no fast reconnect (no grant, or the peer declined it)."""
    revoked: int = 0
    """Failed conversations whose session was made unresumable."""


_JUNK_RECORD = b"\x17\x03\x03\x00\x20" + bytes(32)
"""A TLS application-data record no key decrypts. Fed to a connection, it makes OpenSSL
send a fatal bad_record_mac alert, and sending a fatal alert removes the connection's
session from the server cache (ssl3_send_alert). pyOpenSSL has no SSL_CTX_remove_session."""


_OBSERVED_STEPS = (SSL.SSL_CB_ACCEPT_LOOP, SSL.SSL_CB_HANDSHAKE_DONE)
"""Info callback events after which a server connection's session is worth a fingerprint."""


@dataclass
class _Observed:
    """The sessions one server connection has held, by fingerprint, and the connection itself."""

    fingerprints: list[bytes]
    connection: weakref.ref[SSL.Connection]


class FastReconnectCache:
    """Which cached TLS sessions may skip authentication, and for which account.

    OpenSSL's server cache decides whether a handshake resumes; this table
    decides whether the resumption counts. Sessions are known by the SHA-256
    of their master secret (TLS 1.2: shared by the original and every
    resumed handshake) or resumption PSK (TLS 1.3: one per ticket), which
    :meth:`observe`, the contexts' info callback, records for every session a
    connection holds during its handshake. Sessions are stateful (no
    stateless tickets), so evicting one from the cache really revokes it.
    The table holds at most ``max_sessions`` fingerprints, oldest dropped first;
    expiry is OpenSSL's (no clock here).
    """

    def __init__(self, max_sessions: int = DEFAULT_FAST_RECONNECT_SESSIONS) -> None:
        if max_sessions < 1:
            raise ValueError("max_sessions must be positive")
        self.max_sessions = max_sessions
        self.stats = FastReconnectStats()
        self._grants: dict[bytes, FastReconnectGrant] = {}
        self._observed: weakref.WeakKeyDictionary[TlsEngine, _Observed] = weakref.WeakKeyDictionary()

    def observe(self, conn: SSL.Connection, where: int, ret: int) -> None:
        """Info callback: fingerprint the session the connection holds now (called by OpenSSL, must not raise).

        Only after a step that went well: reading a key that is not there yet
        drains OpenSSL's error queue, which during an alert or a failed step
        still holds the reason the handshake reports.
        """
        engine = conn.get_app_data()
        if where not in _OBSERVED_STEPS or not isinstance(engine, TlsEngine):
            return
        try:
            key = conn.master_key()
        except SSL.Error:  # no session, or one without a key yet (pyOpenSSL asserts a non-empty key)
            return
        if not key:
            return
        seen = self._observed.get(engine)
        if seen is None:
            seen = self._observed[engine] = _Observed([], weakref.ref(conn))
        fingerprint = hashlib.sha256(key).digest()
        if fingerprint not in seen.fingerprints:
            seen.fingerprints.append(fingerprint)

    def grant_for(self, engine: TlsEngine) -> FastReconnectGrant | None:
        """The grant of the session a resumed handshake used, if it has one."""
        seen = self._observed.get(engine)
        if seen is None or not engine.session_reused:
            return None
        return next((self._grants[f] for f in seen.fingerprints if f in self._grants), None)

    def grant(self, engine: TlsEngine, grant: FastReconnectGrant) -> None:
        """After a successful authentication: the sessions of this handshake may be resumed for ``grant``."""
        seen = self._observed.get(engine)
        if seen is None:
            return
        for fingerprint in seen.fingerprints:
            self._grants.pop(fingerprint, None)
            self._grants[fingerprint] = grant
        while len(self._grants) > self.max_sessions:
            self._grants.pop(next(iter(self._grants)))
        self.stats.granted += 1

    def revoke(self, engine: TlsEngine) -> None:
        """After a failure: forget every grant of this handshake's sessions and evict its session from the cache."""
        seen = self._observed.pop(engine, None)
        if seen is None:
            return
        for fingerprint in seen.fingerprints:
            self._grants.pop(fingerprint, None)
        conn = seen.connection()
        if conn is not None:
            _evict_session(conn)
        self.stats.revoked += 1


def _evict_session(conn: SSL.Connection) -> None:
    """Make OpenSSL drop the connection's session from the server cache (see _JUNK_RECORD)."""
    conn.set_shutdown(0)  # a connection marked shut down reads nothing, so it would send no alert
    conn.bio_write(_JUNK_RECORD)
    try:
        conn.recv(1)
    except SSL.Error:
        pass
    while True:  # the alert is never sent: EAP has no place for it once the conversation is over
        try:
            conn.bio_read(16384)
        except SSL.Error:
            return


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

    def __init__(self, policy: EapServerPolicy) -> None:
        self.fast_reconnect = FastReconnectCache(policy.fast_reconnect_sessions) if policy.fast_reconnect else None
        cache = self.fast_reconnect
        self.peap = self._context(policy, "none", policy.tls_max_peap, cache) if "peap" in policy.methods else None
        self.eap_tls = (self._context(policy, "require", policy.tls_max_eap_tls, cache)
                        if "eap-tls" in policy.methods else None)
        inner = "peap" in policy.methods and "tls" in policy.peap_inner
        self.inner_tls = self._context(policy, "require", policy.tls_max_peap, None) if inner else None

    @staticmethod
    def _context(policy: EapServerPolicy, client_cert: Literal["none", "require"], max_version: str,
                 cache: FastReconnectCache | None) -> SSL.Context:
        """One server context; it caches sessions (stateful only: no tickets) when given a grant table."""
        credentials = load_client_credentials(policy.server_cert, policy.server_key, policy.key_password)
        trust = load_trust(policy.ca_file) if client_cert != "none" and policy.ca_file is not None else None
        ctx = server_context(credentials=credentials, trust=trust, client_cert=client_cert, verify=False,
                             min_version=policy.tls_min, max_version=max_version)
        ctx.set_options(SSL.OP_NO_TICKET)  # TLS 1.3: stateful tickets, backed by the cache like session IDs
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


def account_name(identity: str) -> str:
    """The account an identity names: ``LAB\\alice``, ``alice@lab.test`` and ``alice`` are all alice."""
    return identity.rsplit("\\", 1)[-1].split("@", 1)[0]


# ---------------------------------------------------------------------------
# Client certificates


def _certificate_account(engine: TlsEngine, lookup: UsersLookup) -> str:
    """NPS's client certificate checks on a finished handshake; the mapped account or _Fail."""
    chain = engine.peer_chain()
    if not chain:
        raise _Fail(Reason.EAP_NOT_COMPLETED, "the peer sent no client certificate")
    leaf = chain[0]
    subject = leaf.subject.rfc4514_string()
    problem = _verify_problem(engine.verify_problems)
    if problem is not None:
        reason, words = problem
        raise _Fail(reason, f"client certificate {subject}: {words}")
    if not pki.has_eku(leaf, pki.CLIENT_AUTH):
        raise _Fail(Reason.NO_CLIENT_AUTH_EKU, f"client certificate {subject} lacks the Client Authentication EKU")
    try:
        upn = pki.upn_from_certificate(leaf)
    except ValueError:
        raise _Fail(Reason.BAD_CREDENTIALS, f"client certificate {subject}: the SAN UPN is malformed") from None
    if upn is None:
        raise _Fail(Reason.BAD_CREDENTIALS, f"client certificate {subject} has no SAN UPN to map to an account")
    account = account_name(upn)
    if lookup(account) is None:
        raise _Fail(Reason.BAD_CREDENTIALS, f"certificate UPN {upn} maps to no known account")
    return account


_TIME_PROBLEMS = ("certificate has expired", "certificate is not yet valid")
_PURPOSE_PROBLEMS = ("unsuitable certificate purpose", "unsupported certificate purpose")


def _verify_problem(problems: tuple[str, ...]) -> tuple[Reason, str] | None:
    """Map OpenSSL's recorded verify failures to NPS's reason: trust first, then time, then purpose."""
    if not problems:
        return None
    trust = [p for p in problems if not p.startswith(_TIME_PROBLEMS + _PURPOSE_PROBLEMS)]
    if trust:
        return Reason.CERT_UNTRUSTED, f"does not chain to a trusted CA ({trust[0]})"
    time_problems = [p for p in problems if p.startswith(_TIME_PROBLEMS)]
    if time_problems:
        return Reason.CERT_EXPIRED, f"outside its validity period ({time_problems[0]})"
    return Reason.NO_CLIENT_AUTH_EKU, f"lacks the Client Authentication EKU ({problems[0]})"


# ---------------------------------------------------------------------------
# PEAP phase 2 (inside the tunnel)


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
class _Finished:
    """Phase 2 is over: success with keys, or failure with a reason."""

    success: bool
    text: str
    reason: Reason | None = None
    mppe: MppeKeys | None = field(default=None, repr=False)


class _Phase2:
    """PEAPv0 phase 2 per [MS-PEAP]: plaintext in, plaintext out (the session encrypts).

    Inner method packets travel without the EAP Code/Identifier/Length
    header; EAP-TLV packets keep it. On a fast reconnect (``grant`` given
    to :meth:`start`) it begins with the Result TLV instead of the inner Identity.
    """

    def __init__(self, session: EapServerSession, outer: EapTlsSession) -> None:
        self._s = session
        self._outer = outer
        self.state = _Inner.IDENTITY
        self.identity: str | None = None
        """The inner Identity response."""
        self.account: str | None = None
        """The authenticated account: the inner identity's (MSCHAPv2) or the certificate UPN's (TLS)."""
        self.method: str | None = None
        self._challenge = b""
        self._inner_tls: EapTlsSession | None = None
        self._inner_msk: bytes | None = None
        self._compound: cb.CompoundKeys | None = None
        self._failure: tuple[Reason, str] | None = None
        self.fast_reconnect = False
        """Phase 2 was skipped: the Result TLV went out right after a resumed handshake."""

    def start(self, identifier: int, grant: FastReconnectGrant | None = None) -> bytes:
        """The inner Identity request (header-less: just the Type), or with a grant the Result TLV."""
        if grant is None:
            return bytes((EapType.IDENTITY,))
        self.fast_reconnect = True
        self.method = grant.method.removeprefix("peap-")
        self.account = grant.account
        return self._result_success(identifier)

    def receive(self, data: bytes, identifier: int) -> bytes | _Finished:
        """One decrypted peer message; returns the next plaintext to send, or the end."""
        if not data:
            raise EapError("empty message inside the PEAP tunnel")
        try:
            return self._dispatch(data, identifier)
        except _Fail as fail:
            if self.state in (_Inner.RESULT, _Inner.RESULT_FAILURE):
                raise
            return self._result_failure(fail.reason, fail.text, identifier)

    def _dispatch(self, data: bytes, identifier: int) -> bytes | _Finished:
        """Route by phase-2 state."""
        if self.state is _Inner.RESULT:
            return self._on_result(data)
        if self.state is _Inner.RESULT_FAILURE:
            assert self._failure is not None  # set with the state
            reason, text = self._failure
            return _Finished(False, text, reason)
        type_, body = data[0], data[1:]
        if self.state is _Inner.IDENTITY:
            return self._on_identity(type_, body, identifier)
        if self.state is _Inner.PROPOSED and type_ == EapType.NAK:
            return self._on_nak(body, identifier)
        if self.method == "mschapv2" and type_ == EapType.MSCHAPV2:
            return self._on_mschapv2(body, identifier)
        if self.method == "tls" and type_ == EapType.TLS:
            return self._on_inner_tls(body, identifier)
        raise EapError(f"unexpected inner EAP type {type_} in phase-2 state {self.state.value}")

    # -- identity and method choice

    def _on_identity(self, type_: int, body: bytes, identifier: int) -> bytes:
        """The inner identity names the account; propose the first inner method."""
        if type_ != EapType.IDENTITY:
            raise EapError(f"expected the inner Identity response, got type {type_}")
        self.identity = parse_identity(EapPacket.response(identifier, EapType.IDENTITY, body))
        return self._propose(self._s.policy.peap_inner[0], identifier)

    def _on_nak(self, body: bytes, identifier: int) -> bytes | _Finished:
        """The peer wants another inner method: take the first we also offer."""
        wanted = [name for type_ in body for name, code in INNER_METHODS.items()
                  if code == type_ and name in self._s.policy.peap_inner and name != self.method]
        if not wanted:
            raise _Fail(Reason.EAP_NOT_COMPLETED, f"peer Nak'ed inner {self.method} and wants types "
                        f"{list(body)}, none of which the policy allows")
        return self._propose(wanted[0], identifier)

    def _propose(self, method: str, identifier: int) -> bytes:
        """The first request of an inner method."""
        self.method = method
        self.state = _Inner.PROPOSED
        if method == "mschapv2":
            self._challenge = self._s.random_bytes(16)
            name = self._s.policy.server_name.encode("utf-8")
            return bytes((EapType.MSCHAPV2,)) + ms.build_challenge(identifier, self._challenge, name)
        ctx = self._s.tls.inner_tls
        assert ctx is not None  # the policy offers inner TLS only with its context
        self._inner_tls = EapTlsSession(TlsEngine(ctx, server=True), framed_mtu=self._s.framed_mtu)
        return bytes((EapType.TLS,)) + self._inner_tls.start()

    # -- inner MSCHAPv2

    def _on_mschapv2(self, body: bytes, identifier: int) -> bytes | _Finished:
        """Challenge response, then the Success/Failure acknowledgement."""
        message = ms.parse_response(body)
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
        password = self._s.lookup(account)
        valid = password is not None and ms.check_nt_response(
            self._challenge, response.peer_challenge, response.name, password, response.nt_response)
        if password is None or not valid:
            self.state = _Inner.MSCHAP_FAILURE_ACK
            self._failure = (Reason.BAD_CREDENTIALS, f"MSCHAPv2: unknown account or wrong password for {account}")
            failure = ms.build_failure_request(response.ms_id, MSCHAP_ERROR_AUTH_FAILURE, retry=False,
                                               challenge=self._s.random_bytes(16), message="Authentication failed")
            return bytes((EapType.MSCHAPV2,)) + failure
        self.account = account
        self._inner_msk = ms.eap_mschapv2_msk(password, response.nt_response)
        self.state = _Inner.MSCHAP_SUCCESS_ACK
        proof = ms.generate_authenticator_response(password, response.nt_response, response.peer_challenge,
                                                   self._challenge, response.name)
        return bytes((EapType.MSCHAPV2,)) + ms.build_success_request(response.ms_id, proof)

    # -- inner EAP-TLS

    def _on_inner_tls(self, body: bytes, identifier: int) -> bytes | _Finished:
        """Drive the inner EAP-TLS exchange; check the certificate once the handshake is done."""
        session = self._inner_tls
        assert session is not None
        self.state = _Inner.TLS
        step = session.receive(body)
        if session.handshake_done and self.account is None:
            self.account = _certificate_account(session.engine, self._s.lookup)
        if step.reply is not None:
            return bytes((EapType.TLS,)) + step.reply
        if not session.is_complete:
            raise EapError("inner EAP-TLS stopped before completing")
        self._inner_msk = session.msk()
        return self._result_success(identifier)

    # -- Result and Cryptobinding TLVs

    def _result_success(self, identifier: int) -> bytes:
        """Result TLV Success, with a Cryptobinding request unless the policy says off."""
        self.state = _Inner.RESULT
        tlvs = cb.build_result_tlv(cb.ResultStatus.SUCCESS)
        if self._s.policy.cryptobinding != "off":
            tunnel_key = self._outer.key_material()[:TUNNEL_KEY_LENGTH]
            self._compound = (cb.fast_reconnect_keys(tunnel_key) if self.fast_reconnect
                              else cb.derive_compound_keys(tunnel_key, cb.inner_session_key(self._inner_msk)))
            tlvs += cb.build_cryptobinding_request(self._compound, self._s.random_bytes(NONCE_LENGTH))
        return EapPacket.request(identifier, EapType.TLV, tlvs).to_bytes()

    def _result_failure(self, reason: Reason, text: str, identifier: int) -> bytes:
        """Result TLV Failure; the outer EAP-Failure follows the peer's answer."""
        self.state = _Inner.RESULT_FAILURE
        self._failure = (reason, text)
        return EapPacket.request(identifier, EapType.TLV, cb.build_result_tlv(cb.ResultStatus.FAILURE)).to_bytes()

    def _on_result(self, data: bytes) -> bytes | _Finished:
        """The peer's Result (and Cryptobinding) decide the keys, or the failure."""
        packet = EapPacket.parse(data)
        if packet.code is not EapCode.RESPONSE or packet.type != EapType.TLV:
            raise EapError(f"expected an EAP-TLV response to the Result TLV, got {packet.code.name} {packet.type!r}")
        tlvs = cb.parse_tlvs(packet.data)
        results = [cb.parse_result(t) for t in tlvs if t.tlv_type == cb.TLV_RESULT]
        if self.fast_reconnect and results == [cb.ResultStatus.FAILURE]:
            return self._decline_fast_reconnect()
        if results != [cb.ResultStatus.SUCCESS]:
            raise _Fail(Reason.EAP_NOT_COMPLETED, "the peer did not answer the Result TLV with Success")
        bindings = [t for t in tlvs if t.tlv_type == cb.TLV_CRYPTOBINDING]
        return _Finished(True, self._success_text(bool(bindings)), mppe=self._keys(bindings))

    def _decline_fast_reconnect(self) -> bytes:
        """The peer refused to skip phase 2: authenticate in full inside this tunnel ([MS-PEAP] 3.3.5.4.7)."""
        self.fast_reconnect = False
        self.method = self.account = None
        self._compound = None
        self.state = _Inner.IDENTITY
        assert self._s.tls.fast_reconnect is not None  # a fast reconnect needs the grant table
        self._s.tls.fast_reconnect.stats.refused += 1
        return bytes((EapType.IDENTITY,))

    def _keys(self, bindings: list[cb.Tlv]) -> MppeKeys:
        """CSK halves after a verified Cryptobinding response, TLS keys without one."""
        mode = self._s.policy.cryptobinding
        if mode == "off" or (not bindings and mode == "optional"):
            return split_mppe_keys(self._outer.msk(), Role.SERVER)
        if not bindings:
            raise _Fail(Reason.EAP_NOT_COMPLETED, "cryptobinding is required and the peer did not answer it")
        assert self._compound is not None
        if len(bindings) > 1:
            raise _Fail(Reason.EAP_NOT_COMPLETED, "the peer sent more than one Cryptobinding TLV")
        try:
            cb.verify_cryptobinding_response(self._compound, bindings[0])
        except cb.CryptobindingError as exc:
            raise _Fail(Reason.EAP_NOT_COMPLETED, f"cryptobinding failed: {exc}") from None
        return cb.mppe_keys_from_csk(self._compound, Role.SERVER)

    def _success_text(self, bound: bool) -> str:
        """Event text for a successful PEAP conversation."""
        binding = "cryptobinding verified" if bound and self._s.policy.cryptobinding != "off" else "no cryptobinding"
        how = "fast reconnect succeeded, phase 2 skipped" if self.fast_reconnect else "succeeded"
        return f"PEAP-{'MSCHAPv2' if self.method == 'mschapv2' else 'TLS'} {how} ({binding})"


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
    """

    def __init__(self, policy: EapServerPolicy, users_lookup: UsersLookup, *, tls: ServerTls | None = None,
                 random_bytes: Callable[[int], bytes] = os.urandom) -> None:
        self.policy = policy
        self.lookup = users_lookup
        self.tls = tls if tls is not None else ServerTls(policy)
        self.random_bytes = random_bytes
        self.framed_mtu = policy.framed_mtu_default
        self.outer_identity: str | None = None
        self.method: str | None = None
        """"eap-tls", "peap-mschapv2" or "peap-tls" once known."""
        self._state = _Outer.IDENTITY
        self._identifier = random_bytes(1)[0]
        self._rounds = 0
        self._response_id = self._identifier
        self._outer_type: EapType | None = None
        self._outer: EapTlsSession | None = None
        self._phase2: _Phase2 | None = None
        self._account: str | None = None
        self.resumed = False
        """The conversation is a fast reconnect: a resumed TLS session stands for the account."""

    @property
    def finished(self) -> bool:
        """True once a success or failure was returned."""
        return self._state is _Outer.DONE

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
                raise _Fail(Reason.EAP_NOT_COMPLETED, "the EAP conversation has already finished")
            if self._rounds > self.policy.max_rounds:
                raise _Fail(Reason.EAP_NOT_COMPLETED, f"no result after {self.policy.max_rounds} EAP rounds")
            if not eap_response and self._state is _Outer.IDENTITY:
                return self._challenge(EapPacket.request(self._next_id(), EapType.IDENTITY))
            packet = EapPacket.parse(eap_response)
            identifier = self._response_id = packet.identifier
            self._check_response(packet)
            return self._dispatch(packet)
        except _Fail as fail:
            return self._failure(identifier, fail.reason, fail.text)
        except (EapError, ms.MschapV2Error, cb.TlvError, cb.CryptobindingError) as exc:
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
        self._state = _Outer.TLS
        assert self._outer is not None
        step = self._outer.receive(packet.data)
        if self._outer_type == EapType.TLS:
            return self._on_eap_tls(step)
        return self._on_peap(step)

    def _on_identity(self, packet: EapPacket) -> EapStep:
        """The outer identity (often anonymous): propose the first method, as NPS does."""
        if packet.type != EapType.IDENTITY:
            raise EapError(f"the conversation must start with an Identity response, got type {packet.type!r}")
        self.outer_identity = parse_identity(packet)
        self._identifier = packet.identifier
        return self._propose(self.policy.methods[0])

    def _on_nak(self, packet: EapPacket) -> EapStep:
        """A legacy Nak: switch to the first requested method the policy offers."""
        wanted = [name for type_ in packet.data for name, code in OUTER_METHODS.items()
                  if code == type_ and name in self.policy.methods and code != self._outer_type]
        if not wanted:
            raise _Fail(Reason.EAP_NOT_COMPLETED, f"the peer Nak'ed {self.method} and asks for types "
                        f"{list(packet.data)}, none of which the policy allows")
        return self._propose(wanted[0])

    def _propose(self, method: str) -> EapStep:
        """Start PEAP (version 0) or EAP-TLS with a Start message at the current Framed-MTU."""
        self._outer_type = OUTER_METHODS[method]
        self.method = method
        self._state = _Outer.PROPOSED
        ctx = self.tls.peap if method == "peap" else self.tls.eap_tls
        assert ctx is not None  # ServerTls builds a context for every offered method
        version = PEAP_VERSION if method == "peap" else 0
        self._outer = EapTlsSession(TlsEngine(ctx, server=True), eap_type=self._outer_type,
                                    framed_mtu=self.framed_mtu, version=version)
        return self._challenge(EapPacket.request(self._next_id(), self._outer_type, self._outer.start()))

    # -- EAP-TLS

    def _on_eap_tls(self, step: EapTlsStep) -> EapStep:
        """Check the certificate as soon as the handshake is done; succeed once the exchange is."""
        outer = self._outer
        assert outer is not None
        if outer.handshake_done and self._account is None:
            resumed = outer.engine.session_reused
            self._account = self._resumed_account() if resumed else _certificate_account(outer.engine, self.lookup)
        if step.reply is not None:
            return self._challenge(EapPacket.request(self._next_id(), EapType.TLS, step.reply))
        if not outer.is_complete:
            raise EapError("EAP-TLS stopped before completing")
        keys = split_mppe_keys(outer.msk(), Role.SERVER)
        how = "fast reconnect succeeded, TLS session resumed" if self.resumed else "succeeded"
        return self._success(self._account, keys, f"EAP-TLS {how} ({outer.engine.version})")

    def _resumed_account(self) -> str:
        """A resumed EAP-TLS handshake checked no certificate: only a grant names the account."""
        grant = self._grant("eap-tls")
        if grant is None:
            raise _Fail(Reason.EAP_NOT_COMPLETED, "the peer resumed a TLS session that has no fast-reconnect grant "
                        "(its authentication failed or was withdrawn, or the grant was forgotten)")
        if self.lookup(grant.account) is None:
            raise _Fail(Reason.BAD_CREDENTIALS, f"fast reconnect for {grant.account}, no longer a known account")
        self.resumed = True
        return grant.account

    def _grant(self, *methods: str) -> FastReconnectGrant | None:
        """The grant of a resumed outer session, when it was made by one of ``methods``; counts refusals."""
        cache, outer = self.tls.fast_reconnect, self._outer
        if cache is None or outer is None or not outer.engine.session_reused:
            return None
        grant = cache.grant_for(outer.engine)
        if grant is None or grant.method not in methods:
            cache.stats.refused += 1
            return None
        return grant

    def _peap_grant(self) -> FastReconnectGrant | None:
        """A usable grant for skipping phase 2; without one a resumed tunnel runs phase 2 ([MS-PEAP] 3.3.7.1)."""
        grant = self._grant("peap-mschapv2", "peap-tls")
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
            self._phase2 = _Phase2(self, outer)
            answer: bytes | _Finished = self._phase2.start(identifier, self._peap_grant())
        else:
            answer = self._phase2.receive(step.app_data, identifier)
        if isinstance(answer, bytes):
            return self._challenge(EapPacket.request(identifier, EapType.PEAP, outer.send_app(answer)))
        self.method = f"peap-{self._phase2.method}"
        if not answer.success:
            raise _Fail(answer.reason or Reason.EAP_NOT_COMPLETED, answer.text)
        assert answer.mppe is not None
        self.resumed = self._phase2.fast_reconnect
        return self._success(self._phase2.account, answer.mppe, answer.text)

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
            if cache is not None and account and self.method:
                cache.grant(self._outer.engine, FastReconnectGrant(self.method, account))
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
