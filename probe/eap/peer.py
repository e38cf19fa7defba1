"""The EAP peer the probe plays: EAP-TLS, PEAPv0/MS-CHAPv2 and PEAPv0/EAP-TLS ("PEAP-TLS").

sans-IO in the h11 style: :meth:`EapPeer.start` gives the first
EAP-Response/Identity; :meth:`EapPeer.receive` eats each EAP packet the
server sends (from Access-Challenge/Accept/Reject) and returns our response,
or None for EAP-Success/Failure. No sockets, no clock, no asyncio.

Layers (each failure becomes :class:`EapPeerError`, nothing else escapes):

* :class:`EapPeer` - outer EAP (RFC 3748): Identity, Notification, Nak
  towards the configured method, Success/Failure, duplicate requests,
  method restarts.
* :class:`TlsLeg` - one TLS client conversation over EAP-TLS framing
  (:class:`probe.eap.tls.EapTlsSession`) plus server certificate validation
  (:mod:`probe.eap.validation`), done as soon as the server's Certificate has
  been processed and before any of our next flight leaves.
* :class:`EapTlsMethod` (outer EAP-TLS, and the inner method of PEAP-TLS) and
  :class:`PeapMethod` (outer PEAP; phase 2 is :class:`probe.eap.peap.Phase2`).

A TLS alert FROM the server (it refused our certificate, our versions, ...)
is not an error of ours: like hostapd we acknowledge it and let the server
finish with EAP-Failure; :attr:`EapPeer.failure_detail` keeps its words, so the
probe reports a reject with the reason instead of a broken conversation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from cryptography import x509
from OpenSSL import SSL

from probe.eap.bare_mschapv2 import BareMschapV2Method
from probe.eap.crypto import MppeKeys, Role, split_mppe_keys
from probe.eap.ttls import TtlsMethod
from probe.eap.packet import (
    EapCode,
    EapError,
    EapPacket,
    EapType,
    identity_response,
    nak,
)
from probe.eap.peap import EapPeerError, InnerMethod, MschapV2Peer, Phase2, type_name
from probe.eap.tls import (
    MIN_FRAMED_MTU,
    TLS_VERSIONS,
    ClientCredentials,
    EapTlsError,
    EapTlsSession,
    EapTlsStep,
    Flags,
    KeylogSink,
    SessionState,
    TlsConfigError,
    TlsEngine,
    TrustAnchors,
    client_context,
    fragment_size_for_mtu,
)
from probe.eap.validation import (
    Validation,
    describe,
    describe_client,
    describe_leaf,
    validate_server,
)

if TYPE_CHECKING:
    from datetime import datetime

__all__ = ["METHODS", "CertificateFacts", "ContextSource", "EapPeer", "EapPeerError", "PeerConfig", "PeerStep", "Resumption",
           "TlsConfigError"]

METHODS: dict[tuple[EapType, EapType | None], str] = {
    (EapType.TLS, None): "eap-tls",
    (EapType.PEAP, EapType.MSCHAPV2): "peap-mschapv2",
    (EapType.PEAP, EapType.TLS): "peap-tls",
    (EapType.MSCHAPV2, None): "eap-mschapv2",  # bare, no tunnel (probe.eap.bare_mschapv2)
    (EapType.TTLS, None): "ttls-pap",  # EAP-TTLS with PAP inside (probe.eap.ttls)
    (EapType.TTLS, EapType.MSCHAPV2): "ttls-mschapv2",  # EAP-TTLS with (RADIUS-form) MS-CHAPv2 inside
}
"""The (outer, inner) EAP types the peer plays, with their names for reports and messages."""
State = Literal["running", "success", "failure"]

PEAP_MAX_TLS = "1.2"
"""NPS keeps PEAP at TLS <= 1.2 and no PEAP-over-TLS-1.3 key schedule is used by Windows."""

DEFAULT_ANONYMOUS = "anonymous"
FIRST_IDENTIFIER = 0
"""Identifier of the first EAP-Response/Identity (see :meth:`EapPeer.start`)."""

INNER_MTU_REDUCTION = 100
"""PEAP-TLS: the inner EAP-TLS fragments are this much smaller than the outer ones, so an
encrypted inner fragment (TLS record overhead <= 85 bytes with CBC-SHA384) still fits in
one outer PEAP fragment. FreeRADIUS 3.2 loses the inner EAP state when an inner fragment
is itself split across outer fragments; hostapd's peer uses the same 100-byte margin."""

MAX_METHOD_STARTS = 3
"""A server may restart the method (Start again) twice; the third restart is a loop."""
MAX_PROPOSALS_KEPT = 8
"""The server's outer method proposals recorded (EapPeer.proposed), at most."""
MAX_IDENTITY_REQUESTS = 4
MAX_NOTIFICATIONS = 8
_RECEIVED_ALERT = re.compile(r"(?:server sent alert: |\b(?:sslv3|tlsv1|tlsv13|tls) alert )(?P<alert>[a-z0-9 _]+)")
"""How OpenSSL words an alert received from the server: tls.py turns the 1.1/3.x reason
strings into "server sent alert: ..."; OpenSSL 4 says "tls alert ..." (kept by tls.py as
"TLS handshake failed: tls alert ...")."""


class ContextSource(Protocol):
    """Where the peer gets its TLS client contexts: :class:`probe.credentials.ContextCache` shares
    them between conversations; without one each peer builds its own (pure, from loaded values)."""

    def client(self, credentials: ClientCredentials | None, trust: TrustAnchors | None, *, verify: bool,
               min_version: str, max_version: str, keylog: KeylogSink | None = None) -> SSL.Context:
        """A client context for these loaded values and settings."""


class CertificateFacts(Protocol):
    """What the peer's report and checks need from the server's chain: pure functions of it.

    The default (:class:`_PlainFacts`) computes them every time;
    :class:`probe.credentials.CertificateCache` computes them once per distinct chain
    (a farm of servers shows a handful of chains over millions of authentications).
    """

    def validate(self, chain: list[x509.Certificate], verify_problems: tuple[str, ...], *,
                 server_name: str | None, insecure: bool, resumed: bool) -> Validation:
        """:func:`probe.eap.validation.validate_server` for these inputs."""

    def chain_summary(self, chain: list[x509.Certificate]) -> tuple[list[dict[str, object]], dict[str, object] | None]:
        """(the report's "chain", its "server_cert"): fresh dicts the caller may keep."""

    def client_summary(self, cert: x509.Certificate, now: datetime | None) -> dict[str, object]:
        """:func:`probe.eap.validation.describe_client` (the report's "client_cert"): a fresh dict."""


class _PlainFacts:
    """The default :class:`CertificateFacts`: computed on every call."""

    def validate(self, chain: list[x509.Certificate], verify_problems: tuple[str, ...], *,
                 server_name: str | None, insecure: bool, resumed: bool) -> Validation:
        return validate_server(chain, verify_problems, server_name=server_name, insecure=insecure, resumed=resumed)

    def chain_summary(self, chain: list[x509.Certificate]) -> tuple[list[dict[str, object]], dict[str, object] | None]:
        return [describe(cert) for cert in chain], describe_leaf(chain[0]) if chain else None

    def client_summary(self, cert: x509.Certificate, now: datetime | None) -> dict[str, object]:
        return describe_client(cert, now)


_PLAIN_FACTS = _PlainFacts()


class _FreshContexts:
    """The default :class:`ContextSource`: a new context every time."""

    def client(self, credentials: ClientCredentials | None, trust: TrustAnchors | None, *, verify: bool,
               min_version: str, max_version: str, keylog: KeylogSink | None = None) -> SSL.Context:
        return client_context(credentials=credentials, trust=trust, verify=verify, min_version=min_version,
                              max_version=max_version, keylog=keylog)


@dataclass
class PeerConfig:
    """What the peer needs, all loaded already (no file names): secrets are hidden from the repr.

    ``outer`` is the EAP method the peer runs (EAP-TLS 13 or PEAP 25),
    ``inner`` PEAP's phase-2 method (MS-CHAPv2 26 or EAP-TLS 13; None for
    EAP-TLS); :data:`METHODS` lists the pairs. ``credentials`` (from
    :func:`probe.credentials.load_client_credentials`) is the client
    certificate EAP-TLS and PEAP-TLS need; ``trust`` (from
    :func:`probe.credentials.load_trust`) the CA certificates, None for the
    system store. ``tls_max`` applies to EAP-TLS (and the inner EAP-TLS of
    PEAP-TLS) as given; PEAP's outer and inner TLS are capped at 1.2, as
    NPS does. ``outer_identity`` defaults to ``identity`` for EAP-TLS and to
    "anonymous" for PEAP, where the inner identity never leaves the tunnel.
    ``contexts`` shares TLS contexts between peers (None: built per peer); ``facts``
    computes the server chain's validation and summaries (None: every time).
    ``method_name`` is only for reports and messages (default from :data:`METHODS`).
    """

    outer: EapType
    identity: str
    inner: EapType | None = None
    outer_identity: str | None = None
    password: bytes | None = field(default=None, repr=False)
    credentials: ClientCredentials | None = None
    trust: TrustAnchors | None = None
    server_name: str | None = None
    insecure: bool = False
    tls_max: str = "1.3"
    tls_min: str = "1.2"
    framed_mtu: int = 1500
    keylog: KeylogSink | None = field(default=None, repr=False)
    session: Resumption | None = field(default=None, repr=False)
    contexts: ContextSource | None = field(default=None, repr=False)
    method_name: str | None = None
    facts: CertificateFacts | None = field(default=None, repr=False, compare=False)

    @property
    def name(self) -> str:
        """The method's name for messages: ``method_name``, else the registry's, else the types."""
        if self.method_name:
            return self.method_name
        known = METHODS.get((self.outer, self.inner))
        return known or f"EAP type {int(self.outer)}" + (f"/{int(self.inner)}" if self.inner is not None else "")


@dataclass(frozen=True)
class PeerStep:
    """What one server EAP packet did: the response to send (None after Success/Failure) and the news.

    ``state``: "running", "success" or "failure". ``server_refused``: the
    server's own words for refusing us (a TLS alert, E=691, a Result TLV
    Failure), when it said so. ``keys_available``: the MS-MPPE keys the
    Access-Accept must carry are known (:meth:`EapPeer.expected_mppe`).
    """

    reply: bytes | None
    state: State = "running"
    server_refused: str | None = None
    keys_available: bool = False

    @property
    def finished(self) -> bool:
        """The conversation ended (success or failure)."""
        return self.state != "running"

    @property
    def success(self) -> bool:
        return self.state == "success"

    @property
    def failure(self) -> bool:
        return self.state == "failure"


@dataclass(frozen=True)
class Resumption:
    """A TLS session to resume (fast reconnect), from :meth:`EapPeer.session_for_resumption`.

    It carries the context the session was made with, because pyOpenSSL
    resumes a session only on a connection of that same Context; the next
    peer's outer TLS then runs on that context.
    """

    method: tuple[EapType, EapType | None]
    """(outer, inner) of the peer that made it: only the same method may resume it."""
    session: SSL.Session = field(repr=False)
    context: SSL.Context = field(repr=False)


# ---------------------------------------------------------------------------
# One TLS conversation


class TlsLeg:
    """A TLS client over EAP-TLS framing, with server validation before our flight leaves."""

    def __init__(self, context: SSL.Context, *, eap_type: int, framed_mtu: int, resume: SSL.Session | None,
                 server_name: str | None, insecure: bool, facts: CertificateFacts = _PLAIN_FACTS) -> None:
        engine = TlsEngine(context, server=False, session=resume)
        self.tls = EapTlsSession(engine, eap_type=eap_type, framed_mtu=framed_mtu)
        self._server_name = server_name
        self._insecure = insecure
        self._facts = facts
        self._chain: list[x509.Certificate] | None = None  # the chain validated (the report shows the same one)
        self.validation: Validation | None = None
        self.server_refused: str | None = None

    def receive(self, payload: bytes) -> EapTlsStep:
        """One Type-Data from the server; a server alert is acknowledged, anything else wrong raises."""
        try:
            step = self.tls.receive(payload)
        except EapTlsError as exc:
            alert = _server_alert(exc.reason)
            if alert is not None and self.server_refused is None:
                self.server_refused = f"TLS server sent alert: {alert}"
                return EapTlsStep(self.tls.ack())
            raise EapPeerError("tls", exc.reason, reply=exc.reply, state=exc.state or self.position) from None
        self._validate()
        return step

    @property
    def position(self) -> str:
        """Where this TLS conversation is, for error states: "handshake", "server_certificate", "done", ..."""
        state = self.tls.state
        return "idle" if state is SessionState.IDLE else state.value

    def send_app(self, data: bytes) -> bytes:
        """Encrypt tunnel data; the first fragment's Type-Data comes back."""
        try:
            return self.tls.send_app(data)
        except EapTlsError as exc:
            raise EapPeerError("tls", exc.reason, reply=exc.reply, state=exc.state or self.position) from None

    def _validate(self) -> None:
        """Run the certificate checks once, as soon as there is something to check."""
        if self.validation is not None:
            return
        engine = self.tls.engine
        try:
            chain = engine.peer_chain()
            if not chain and not self.tls.handshake_done:
                return
            self.validation = self._facts.validate(chain, engine.verify_problems, server_name=self._server_name,
                                                   insecure=self._insecure, resumed=engine.session_reused)
            self._chain = chain
        except EapTlsError as exc:
            raise EapPeerError("tls", exc.reason, state="server_certificate") from None
        except (ValueError, x509.DuplicateExtension) as exc:  # a certificate only OpenSSL could parse
            raise EapPeerError("tls", f"server certificate cannot be parsed: {exc}",
                               state="server_certificate") from None
        if self.validation.failed:
            raise EapPeerError("tls", self.validation.reason, state="server_certificate")

    def report(self) -> dict[str, object]:
        """Version, cipher, resumption, the server's chain and the validation verdict."""
        engine = self.tls.engine
        try:
            chain = self._chain if self._chain is not None else engine.peer_chain()
            described = self._facts.chain_summary(chain)
        except (EapTlsError, ValueError, x509.DuplicateExtension):
            chain, described = [], ([], None)  # already reported as the error; nothing more to show
        done = self.tls.handshake_done
        return {
            "version": engine.version,
            "cipher": engine.cipher if done else None,
            "resumed": engine.session_reused if done else False,
            "server_cert": described[1],
            "chain": described[0],
            "validation": self.validation.status if self.validation else "not performed",
            "warnings": list(self.validation.warnings) if self.validation else [],
        }


# ---------------------------------------------------------------------------
# Methods


class EapTlsMethod:
    """EAP-TLS (RFC 5216 / RFC 9190) over one :class:`TlsLeg`; also PEAP-TLS's inner method."""

    eap_type = EapType.TLS
    name = "EAP-TLS"

    def __init__(self, leg: TlsLeg) -> None:
        self.leg = leg

    def process(self, data: bytes) -> bytes:
        """Type-Data in, Type-Data out (an EAP-TLS peer always answers)."""
        step = self.leg.receive(data)
        if step.reply is None:
            raise EapPeerError("tls", "EAP-TLS server sent data the peer cannot answer", state=self.leg.position)
        return step.reply

    def step(self, packet: EapPacket) -> bytes:
        """Outer use: the request's Type-Data -> our response's Type-Data."""
        return self.process(packet.data)

    @property
    def succeeded(self) -> bool:
        """The exchange is complete: the server accepted our certificate (RFC 9190: committed)."""
        return self.leg.tls.is_complete

    @property
    def finished(self) -> bool:
        """EAP-Success may now be accepted."""
        return self.succeeded

    primary_auth_done = succeeded

    @property
    def failure(self) -> str | None:
        """The server's TLS alert, when it sent one."""
        return self.leg.server_refused

    @property
    def cryptobinding(self) -> str:
        return "absent"

    def msk(self) -> bytes:
        """MSK from the TLS key block or exporter."""
        try:
            return self.leg.tls.msk()
        except EapTlsError as exc:
            raise EapPeerError("tls", exc.reason, state="keys") from None

    def mppe(self) -> MppeKeys:
        """Server view: Recv-Key = MSK[0:32], Send-Key = MSK[32:64]."""
        return split_mppe_keys(self.msk(), Role.SERVER)

    def close(self) -> None:
        """Keep the session resumable."""
        self.leg.tls.close()


class PeapMethod:
    """PEAPv0: phase 1 over a :class:`TlsLeg`, phase 2 in :class:`probe.eap.peap.Phase2`."""

    eap_type = EapType.PEAP
    name = "PEAP"

    def __init__(self, leg: TlsLeg, inner: InnerMethod, identity: str) -> None:
        self.leg = leg
        self.inner = inner
        self._identity = identity
        self.phase2: Phase2 | None = None

    def step(self, packet: EapPacket) -> bytes:
        """A PEAP request's Type-Data -> ours: handshake, ACK, or encrypted phase-2 answer."""
        step = self.leg.receive(packet.data)
        if step.reply is not None:
            return step.reply
        if not step.app_data:  # an empty PEAP message inside the tunnel: acknowledge it
            return self.leg.tls.ack()
        phase2 = self._phase2()
        try:
            plain = phase2.process(step.app_data, packet)
        except EapPeerError as exc:
            exc.state = f"phase2/{exc.state or phase2.position}"
            if exc.reply is not None:
                exc.reply = self.leg.send_app(exc.reply)
            raise
        return self.leg.send_app(plain)

    def _phase2(self) -> Phase2:
        """Created once the tunnel is up, when the TLS keys exist."""
        if self.phase2 is None:
            try:
                tunnel_key = self.leg.tls.key_material()
            except EapTlsError as exc:
                raise EapPeerError("tls", exc.reason, state="keys") from None
            self.phase2 = Phase2(self.inner, self._identity, tunnel_key, resumed=self.leg.tls.engine.session_reused)
        return self.phase2

    @property
    def finished(self) -> bool:
        """We answered a Result TLV Success: EAP-Success may now be accepted."""
        return self.phase2 is not None and self.phase2.succeeded

    @property
    def primary_auth_done(self) -> bool:
        """The inner method proved the credential."""
        return self.phase2 is not None and self.phase2.primary_auth_done

    @property
    def failure(self) -> str | None:
        """Server alert in phase 1, inner failure, or Result TLV Failure, in words."""
        if self.leg.server_refused:
            return self.leg.server_refused
        return self.phase2.failure if self.phase2 is not None else None

    @property
    def cryptobinding(self) -> str:
        return (self.phase2.cryptobinding if self.phase2 is not None else None) or "absent"

    def mppe(self) -> MppeKeys | None:
        return self.phase2.mppe() if self.phase2 is not None else None

    def close(self) -> None:
        self.leg.tls.close()
        if isinstance(self.inner, EapTlsMethod):
            self.inner.close()


# ---------------------------------------------------------------------------
# The peer


class EapPeer:
    """One EAP conversation as the peer. See the module docstring.

    ``state``: "running", then "success" (EAP-Success after the method
    finished) or "failure" (EAP-Failure, or any :class:`EapPeerError`: every
    error ends the conversation; its ``state`` says where, e.g.
    "eap-tls/server_certificate", "peap/phase2/mschapv2", "peap/phase2/cryptobinding").
    Construction reads no file (the config holds loaded values); a missing
    client certificate or bad TLS settings raise :class:`TlsConfigError`,
    other bad settings ValueError.
    """

    def __init__(self, config: PeerConfig) -> None:
        self.config = config
        self._type = _check_config(config)
        self._contexts_source: ContextSource = config.contexts if config.contexts is not None else _FreshContexts()
        self._outer_context, self._inner_context = self._contexts()
        self._client_cert = config.credentials.cert if config.credentials is not None and _uses_certificate(config) \
            else None
        self._password = _password_text(config.password)
        self.state: State = "running"
        self.notifications: list[str] = []
        self._method: EapTlsMethod | PeapMethod | BareMschapV2Method | TtlsMethod | None = None
        self._starts = 0
        self._identity_requests = 0
        self._last: tuple[bytes, bytes] | None = None
        self.proposed: list[int] = []
        """The outer EAP types the server proposed, in order (a Nak answered each one that is not ours)."""

    def __repr__(self) -> str:
        return f"EapPeer(method={self.config.name!r}, identity={self.config.identity!r}, state={self.state!r})"

    # -- the public surface

    @property
    def outer_identity(self) -> str:
        """What the first Response/Identity (and any outer Identity answer) carries."""
        if self.config.outer_identity is not None:
            return self.config.outer_identity
        return self.config.identity if self._type in (EapType.TLS, EapType.MSCHAPV2) else DEFAULT_ANONYMOUS

    def start(self) -> bytes:
        """The EAP-Response/Identity the NAS forwards in the first Access-Request.

        Identifier 0: the NAS's EAP-Request/Identity is the first EAP packet
        of the link, and the response echoes its identifier; eapol_test's
        first Access-Request carries identifier 0 too. Servers only echo or
        increment it, so no server depends on the value.
        """
        return identity_response(FIRST_IDENTIFIER, self.outer_identity).to_bytes()

    def receive(self, eap: bytes) -> PeerStep:
        """One EAP packet from the server -> our response (None after Success/Failure) and what happened.

        Raises :class:`EapPeerError` (with ``state``) for input we cannot accept.
        """
        if self.state != "running":
            raise EapPeerError("eap", f"the EAP conversation already ended ({self.state})", state="ended")
        if self._last is not None and bytes(eap) == self._last[0]:
            return self._step(self._last[1])  # RFC 3748 4.1: a duplicate request gets the same response again
        try:
            reply = self._receive(bytes(eap))
        except EapPeerError as exc:
            self.state = "failure"
            exc.state = self._where(exc.state)
            raise
        except EapError as exc:
            self.state = "failure"
            raise EapPeerError("eap", str(exc), state=self._where(None)) from None
        self._last = (bytes(eap), reply) if reply is not None else None
        return self._step(reply)

    def _step(self, reply: bytes | None) -> PeerStep:
        """The news after one packet."""
        return PeerStep(reply, self.state, self.failure_detail,
                        self.state == "success" and self._method is not None and self._method.mppe() is not None)

    def _where(self, leaf: str | None) -> str:
        """The error state: the method (outer type) and where inside it, e.g. "peap/phase2/mschapv2"."""
        method = self._method
        if method is None:
            return f"eap/{leaf}" if leaf else "eap"
        if method.leg is None:  # bare EAP-MSCHAPv2
            return f"eap-mschapv2/{leaf or 'mschapv2'}"
        outer = "eap-tls" if isinstance(method, EapTlsMethod) else "ttls" if isinstance(method, TtlsMethod) else "peap"
        return f"{outer}/{leaf or method.leg.position}"

    @property
    def primary_auth_done(self) -> bool:
        """The credential was proven: EAP-TLS complete, or the PEAP inner method succeeded."""
        return self._method is not None and self._method.primary_auth_done

    @property
    def cryptobinding(self) -> str:
        """ "valid", "absent" or "invalid" (EAP-TLS: always "absent")."""
        return self._method.cryptobinding if self._method is not None else "absent"

    @property
    def failure_detail(self) -> str | None:
        """Why the server refused us when it said so cleanly (TLS alert, E=691, Result TLV Failure)."""
        return self._method.failure if self._method is not None else None

    def expected_mppe(self) -> tuple[bytes, bytes] | None:
        """(MS-MPPE-Send-Key, MS-MPPE-Recv-Key) as the server sends them in Access-Accept; None before success."""
        if self.state != "success":
            return None
        return self.derived_mppe()

    @property
    def method_finished(self) -> bool:
        """The method ran to its end (EAP-TLS complete, PEAP Result TLV answered): EAP-Success may come."""
        return self._method is not None and self._method.finished

    def derived_mppe(self) -> tuple[bytes, bytes] | None:
        """The MS-MPPE keys (send, recv) the finished method derived, with or without an EAP-Success.

        None while the method has not finished: then the peer has no keys of its own, and an
        Access-Accept's keys cannot be checked (they are "unverified", not "mismatch").
        Raises EapPeerError if the TLS engine cannot export them.
        """
        if not self.method_finished or self._method is None:
            return None
        keys = self._method.mppe()
        return (keys.send_key, keys.recv_key) if keys is not None else None

    def session_for_resumption(self) -> Resumption | None:
        """The outer TLS session to offer next time (as PeerConfig.session), once we succeeded."""
        if self.state != "success" or self._method is None or self._method.leg is None:
            return None
        session = self._method.leg.tls.engine.session
        if session is None:
            return None
        return Resumption((self.config.outer, self.config.inner), session, self._outer_context)

    def tls_report(self, now: datetime | None = None) -> dict[str, object]:
        """The TLS facts for the Outcome; ``now`` (aware) fills client_cert.days_left.

        Keys: version, cipher, resumed, server_cert, chain, client_cert,
        validation, warnings; PEAP-TLS adds "inner" with the inner TLS facts.
        """
        if self._type == EapType.MSCHAPV2:
            return {}  # no TLS at all
        if self._method is None or self._method.leg is None:
            report: dict[str, object] = {"version": None, "cipher": None, "resumed": False, "server_cert": None,
                                         "chain": [], "validation": "not performed", "warnings": []}
        else:
            report = self._method.leg.report()
            inner = getattr(self._method, "inner", None)
            if isinstance(inner, EapTlsMethod):
                report["inner"] = inner.leg.report()
        facts = self.config.facts or _PLAIN_FACTS
        report["client_cert"] = facts.client_summary(self._client_cert, now) if self._client_cert is not None else None
        return report

    # -- outer EAP

    def _receive(self, eap: bytes) -> bytes | None:
        """Dispatch by Code, then by Type."""
        packet = EapPacket.parse(eap)
        if packet.code is EapCode.SUCCESS:
            self._on_success()
            return None
        if packet.code is EapCode.FAILURE:
            self.state = "failure"
            return None
        if packet.code is not EapCode.REQUEST:
            raise EapPeerError("eap", f"server sent an EAP {packet.code.name}; "
                                      "only Requests, Success and Failure are valid")
        return self._on_request(packet).to_bytes()

    def _on_success(self) -> None:
        """EAP-Success counts only after the method finished (RFC 4137: no success before the method says so)."""
        if self._method is None or not self._method.finished:
            raise EapPeerError("eap", f"EAP-Success before {self.config.name} finished", state="success")
        self.state = "success"
        self._method.close()

    def _on_request(self, packet: EapPacket) -> EapPacket:
        """Identity, Notification, our method, or a Nak towards it."""
        kind = packet.type
        if kind == EapType.IDENTITY:
            self._identity_requests = _bounded(self._identity_requests, MAX_IDENTITY_REQUESTS, "Identity requests")
            return identity_response(packet.identifier, self.outer_identity)
        if kind == EapType.NOTIFICATION:
            _bounded(len(self.notifications), MAX_NOTIFICATIONS, "Notifications")
            self.notifications.append(packet.data.decode("utf-8", "replace"))
            return EapPacket.response(packet.identifier, EapType.NOTIFICATION)
        if self._method is None and kind is not None and kind not in self.proposed \
                and len(self.proposed) < MAX_PROPOSALS_KEPT:
            self.proposed.append(int(kind))
        if kind == self._type:
            return EapPacket.response(packet.identifier, kind, self._method_step(packet))
        if kind == EapType.NAK:
            raise EapPeerError("eap", "EAP-Request of type Nak (3) is invalid")
        if self._method is None:
            return nak(packet.identifier, [self._type])
        raise EapPeerError("eap", f"unexpected EAP type {type_name(packet)} after {self.config.name} started")

    def _method_step(self, packet: EapPacket) -> bytes:
        """Start (or restart) the method on S, then let it answer."""
        if self._type == EapType.MSCHAPV2:  # no Start flag: the first Challenge starts it
            if self._method is None:
                self._method = self._new_method()
            return self._method.step(packet)
        if packet.data[:1] and packet.data[0] & Flags.START:
            self._starts = _bounded(self._starts, MAX_METHOD_STARTS, f"{self.config.name} Start messages")
            self._method = self._new_method()
        elif self._method is None:
            raise EapPeerError("eap", f"{self.config.name} request before its Start message", state="start")
        try:
            return self._method.step(packet)
        except EapPeerError as exc:
            if exc.reply is not None:
                exc.reply = EapPacket.response(packet.identifier, self._type, exc.reply).to_bytes()
            raise

    # -- construction

    def _leg(self, context: SSL.Context, eap_type: int, resume: SSL.Session | None, *, inner: bool = False) -> TlsLeg:
        mtu = self.config.framed_mtu
        if inner:
            mtu = max(MIN_FRAMED_MTU, mtu - INNER_MTU_REDUCTION)
        return TlsLeg(context, eap_type=eap_type, framed_mtu=mtu, resume=resume,
                      server_name=self.config.server_name, insecure=self.config.insecure,
                      facts=self.config.facts or _PLAIN_FACTS)

    def _new_method(self) -> EapTlsMethod | PeapMethod | BareMschapV2Method | TtlsMethod:
        """A fresh method object for each Start (a restart discards the old TLS state)."""
        if self._type == EapType.MSCHAPV2:
            assert self._password is not None
            return BareMschapV2Method(self.config.identity, self._password)
        if self._type == EapType.TLS:
            return EapTlsMethod(self._leg(self._outer_context, EapType.TLS, self._resume_session()))
        if self._type == EapType.TTLS:
            assert self.config.password is not None
            return TtlsMethod(self._leg(self._outer_context, EapType.TTLS, self._resume_session()),
                              self.config.identity, self.config.password, self.config.inner)
        inner: InnerMethod
        if self._inner_context is not None:  # PEAP-TLS
            inner = EapTlsMethod(self._leg(self._inner_context, EapType.TLS, None, inner=True))
        else:
            assert self._password is not None
            inner = MschapV2Peer(self.config.identity, self._password)
        return PeapMethod(self._leg(self._outer_context, EapType.PEAP, self._resume_session()), inner,
                          self.config.identity)

    def _resume_session(self) -> SSL.Session | None:
        """The session to offer on the outer TLS, if any."""
        return self.config.session.session if self.config.session is not None else None

    def _contexts(self) -> tuple[SSL.Context, SSL.Context | None]:
        """Outer and (PEAP-TLS) inner client contexts; PEAP's outer TLS carries no client certificate.

        Both are built even when resuming, so bad settings are reported the same way;
        a resumed outer TLS then runs on the context its session came from.
        """
        c, resume = self.config, self.config.session
        if resume is not None and (c.outer, c.inner) != resume.method:
            theirs = METHODS.get(resume.method, "another method")
            raise ValueError(f"a {theirs} session cannot be resumed by {c.name}")
        if self._type == EapType.TLS:
            outer, inner = self._context(True, c.tls_max), None
        else:
            cap = c.tls_max
            if cap in TLS_VERSIONS:
                cap = min(cap, PEAP_MAX_TLS, key=list(TLS_VERSIONS).index)
            outer = self._context(False, cap)
            inner = self._context(True, cap) if c.inner == EapType.TLS else None
        return (resume.context if resume is not None else outer), inner

    def _context(self, with_credentials: bool, max_version: str) -> SSL.Context:
        """A recording-mode client context: OpenSSL checks the chain, validation.py decides."""
        c = self.config
        return self._contexts_source.client(c.credentials if with_credentials else None, c.trust, verify=False,
                                            min_version=c.tls_min, max_version=max_version, keylog=c.keylog)


def _uses_certificate(config: PeerConfig) -> bool:
    """EAP-TLS, outer or inner, authenticates with the client certificate."""
    return EapType.TLS in (config.outer, config.inner)


def _check_config(config: PeerConfig) -> EapType:
    """Method, credentials and MTU make sense together; returns the outer EAP type."""
    if (config.outer, config.inner) not in METHODS:
        choices = ", ".join(f"{name} ({int(o)}/{int(i) if i is not None else '-'})" for (o, i), name in METHODS.items())
        raise ValueError(f"unknown EAP method {config.name!r} (choose {choices})")
    fragment_size_for_mtu(config.framed_mtu)
    if _uses_certificate(config) and config.credentials is None:
        raise TlsConfigError(f"{config.name} needs a client certificate (client_cert and client_key, or pkcs12)")
    if (EapType.MSCHAPV2 in (config.outer, config.inner) or config.outer == EapType.TTLS) and config.password is None:
        raise ValueError(f"{config.name} needs a password")
    return EapType(config.outer)


def _password_text(password: bytes | None) -> str | None:
    """MS-CHAPv2 hashes the password as text (UTF-16LE of it)."""
    if password is None:
        return None
    try:
        return password.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("the password is not valid UTF-8") from None


def _server_alert(reason: str) -> str | None:
    """The alert's name when the TLS failure is the server refusing us, else None."""
    match = _RECEIVED_ALERT.search(reason)
    return match["alert"].strip() if match else None


def _bounded(count: int, limit: int, what: str) -> int:
    """Count one more; refuse past ``limit`` (a server looping on us)."""
    if count >= limit:
        raise EapPeerError("eap", f"server sent more than {limit} {what}")
    return count + 1
