"""EAP-TLS: the role-agnostic session (RFC 5216, RFC 9190 for TLS 1.3) over its lower layers.

sans-IO: no sockets, no clock, no threads, no files. Bytes in, bytes out. The
same code serves the probe (EAP peer, TLS client) and the NPS emulator (EAP
server, TLS server): every rule exists once and the role only picks the direction.

Layers, bottom up, one module each:

* :mod:`probe.eap.tls_framing`: :func:`parse_payload`, :class:`Fragmenter`,
  :class:`Reassembler` work on the EAP-TLS Type-Data (Flags, optional TLS
  Message Length, data).
* :mod:`probe.eap.tls_engine`: :class:`TlsEngine`, one ``OpenSSL.SSL.Connection``
  over memory BIOs, and the context builders, from values loaded at the edge
  (:mod:`probe.credentials`).
* here, :class:`EapTlsSession`: eats one incoming Type-Data, answers with the
  next Type-Data to send (an ACK, the next fragment, the next TLS flight) and
  knows when the handshake and the EAP-TLS exchange are complete.

The names of the lower layers are re-exported here for callers of the old
single module.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from probe.eap.packet import EapType
from probe.eap.tls_engine import (
    SESSION_ID_CONTEXT,
    SYSTEM_TRUST,
    TLS_VERSIONS,
    ClientCertMode,
    ClientCredentials,
    KeylogSink,
    TlsConfigError,
    TlsEngine,
    TrustAnchors,
    client_context,
    server_context,
)
from probe.eap.tls_framing import (
    DEFAULT_FRAMED_MTU,
    DEFAULT_MAX_MESSAGE,
    FRAMING_OVERHEAD,
    LENGTH_FIELD,
    MAX_FRAMED_MTU,
    MIN_FRAMED_MTU,
    VERSION_MASK,
    EapTlsError,
    Flags,
    Fragmenter,
    Reassembler,
    TlsPayload,
    check_version,
    ack_payload,
    fragment_size_for_mtu,
    parse_payload,
    start_payload,
)

__all__ = [
    "DEFAULT_FRAMED_MTU", "DEFAULT_MAX_MESSAGE", "FRAMING_OVERHEAD", "LENGTH_FIELD", "MAX_FRAMED_MTU",
    "MIN_FRAMED_MTU", "SESSION_ID_CONTEXT", "SYSTEM_TRUST", "TLS_VERSIONS", "VERSION_MASK",
    "ClientCertMode", "ClientCredentials", "EapTlsError", "EapTlsSession", "EapTlsStep", "Flags",
    "Fragmenter", "KeylogSink", "Reassembler", "SessionState", "TlsConfigError", "TlsEngine", "TlsPayload",
    "TrustAnchors", "ack_payload", "client_context", "fragment_size_for_mtu", "parse_payload",
    "server_context", "start_payload",
]

# ---------------------------------------------------------------------------
# The EAP-TLS session


class SessionState(enum.Enum):
    """Where an :class:`EapTlsSession` is."""

    IDLE = "idle"
    """Server: before :meth:`EapTlsSession.start`. Peer: waiting for the Start."""
    HANDSHAKE = "handshake"
    WAIT_COMMITMENT = "wait_commitment"
    """EAP-TLS peer, TLS 1.3: handshake done, waiting for the server's 0x00 commitment (RFC 9190 2.5)."""
    WAIT_FINAL = "wait_final"
    """EAP-TLS server: sent its last flight, waiting for the peer's empty response."""
    TUNNEL = "tunnel"
    """PEAP and other tunnels: handshake done, application data flows."""
    DONE = "done"
    """EAP-TLS: keys are ready; the next packet is EAP-Success (or Failure)."""
    FAILED = "failed"


COMMITMENT_MESSAGE = b"\x00"
"""RFC 9190 2.5: one byte of application data, the server's promise of no more handshake messages."""

TLS12_MSK_LABEL = b"client EAP encryption"
TLS13_MSK_LABEL = b"EXPORTER_EAP_TLS_Key_Material"
TLS13_METHOD_ID_LABEL = b"EXPORTER_EAP_TLS_Method-Id"
KEY_MATERIAL_LENGTH = 128
"""MSK (64 bytes) followed by EMSK (64 bytes)."""


@dataclass(frozen=True)
class EapTlsStep:
    """What to do after one incoming Type-Data.

    ``reply`` is the Type-Data to send now (ACK, next fragment, next flight or
    final empty message). None means the TLS layer has nothing to say and the
    caller acts:

    * EAP-TLS server: the exchange is complete, send EAP-Success;
    * tunnel (PEAP), either role: ``app_data`` arrived, answer it through
      :meth:`EapTlsSession.send_app`;
    * tunnel server with empty ``app_data``: the peer acknowledged the end of
      the handshake (or sent an empty response): begin or continue phase 2.

    A peer always gets a ``reply`` except when tunnel data arrived.
    """

    reply: bytes | None
    app_data: bytes = b""


class EapTlsSession:
    """The EAP-TLS exchange for either role, over one :class:`TlsEngine`.

    ``eap_type`` 13 (EAP-TLS) ends in DONE with the RFC 5216 / RFC 9190 final
    messages; any other type (PEAP 25) ends the handshake in TUNNEL, where
    application data is handed to the caller. ``version`` goes into the low
    flag bits of everything we send (PEAP's version; 0 for EAP-TLS).
    """

    def __init__(
        self,
        engine: TlsEngine,
        *,
        eap_type: int = EapType.TLS,
        framed_mtu: int = DEFAULT_FRAMED_MTU,
        version: int = 0,
        max_message_size: int = DEFAULT_MAX_MESSAGE,
    ) -> None:
        self.engine = engine
        self.eap_type = eap_type
        self.version = check_version(version)
        self._fragmenter = Fragmenter(fragment_size_for_mtu(framed_mtu), version)
        self._reassembler = Reassembler(max_message_size)
        self._state = SessionState.IDLE
        self._failure: str | None = None  # why the session failed, for later messages
        self._is_tls_method = eap_type == EapType.TLS

    @property
    def state(self) -> SessionState:
        """Current state."""
        return self._state

    @property
    def is_server(self) -> bool:
        """The role comes from the engine."""
        return self.engine.is_server

    @property
    def handshake_done(self) -> bool:
        """The TLS handshake finished on our side."""
        return self.engine.is_handshake_done

    @property
    def is_complete(self) -> bool:
        """EAP-TLS finished: keys are final and EAP-Success may be sent (server) or accepted (peer)."""
        return self._state is SessionState.DONE

    def ack(self) -> bytes:
        """An ACK / empty response with our version bits."""
        return ack_payload(self.version)

    # -- driving

    def start(self) -> bytes:
        """Server: the EAP-TLS/PEAP Start Type-Data that opens the exchange."""
        self._require(self.is_server, "only the server sends Start")
        self._require_state(SessionState.IDLE)
        self._state = SessionState.HANDSHAKE
        return start_payload(self.version)

    def receive(self, payload: bytes) -> EapTlsStep:
        """Process the other side's Type-Data (EAP header stripped) and say what to send next."""
        if self._state is SessionState.FAILED:
            why = f": {self._failure}" if self._failure else ""
            raise EapTlsError(f"the EAP-TLS session has already failed{why}", state=self._state.value)
        before = self._state
        try:
            return self._receive(payload)
        except EapTlsError as exc:
            raise self._fail(exc, before) from None

    def send_app(self, data: bytes) -> bytes:
        """Tunnel: encrypt ``data`` and return the first fragment to send."""
        self._require_state(SessionState.TUNNEL)
        self._require(not self._fragmenter.pending, "previous message still has fragments to send")
        before = self._state
        try:
            self.engine.write_app(data)
        except EapTlsError as exc:
            raise self._fail(exc, before) from None
        return self._send(self.engine.pending_output())

    def close(self) -> None:
        """Keep the TLS session resumable once it is no longer used (see :meth:`TlsEngine.close`)."""
        self.engine.close()

    # -- keys

    def key_material(self) -> bytes:
        """128 bytes: MSK || EMSK (RFC 5216 2.3 for TLS <= 1.2, RFC 9190 2.3 for TLS 1.3).

        TLS 1.3 uses the EAP type as exporter context (0x0D for EAP-TLS; RFC
        9427 does the same for PEAP). For TLS 1.2 PEAPv0 without
        cryptobinding the label is the same as EAP-TLS's.
        """
        if self.engine.version == "TLSv1.3":
            return self.engine.export_keying_material(TLS13_MSK_LABEL, KEY_MATERIAL_LENGTH, bytes((self.eap_type,)))
        return self.engine.export_keying_material(TLS12_MSK_LABEL, KEY_MATERIAL_LENGTH)

    def session_id(self) -> bytes:
        """EAP Session-Id: Type || randoms (RFC 5216 2.3) or Type || exporter Method-Id (RFC 9190 2.3)."""
        self._require(self.handshake_done, "no Session-Id before the TLS handshake is complete")
        type_code = bytes((self.eap_type,))
        if self.engine.version == "TLSv1.3":
            return type_code + self.engine.export_keying_material(TLS13_METHOD_ID_LABEL, 64, b"")
        return type_code + (self.engine.client_random or b"") + (self.engine.server_random or b"")

    def msk(self) -> bytes:
        """The 64-byte Master Session Key (MS-MPPE-Recv-Key = MSK[0:32], Send-Key = MSK[32:64])."""
        return self.key_material()[:64]

    def emsk(self) -> bytes:
        """The 64-byte Extended MSK."""
        return self.key_material()[64:]

    # -- internals

    def _receive(self, payload: bytes) -> EapTlsStep:
        """Dispatch one incoming Type-Data by what we are waiting for."""
        message = parse_payload(payload)
        if self._fragmenter.pending:
            if not message.is_ack:
                raise EapTlsError("expected an ACK for our fragment, got a message with data or flags")
            return EapTlsStep(self._fragmenter.next_fragment())
        if message.flags & Flags.START:
            return self._on_start()
        if self._state is SessionState.IDLE:
            raise EapTlsError("expected a Start message first" if not self.is_server else "call start() first")
        tls = self._reassembler.add(message)
        if tls is None:
            return EapTlsStep(self.ack())
        if not tls:
            return self._on_empty()
        self.engine.feed(tls)
        if self._state is SessionState.HANDSHAKE:
            return self._on_handshake_flight()
        return self._on_post_handshake()

    def _on_start(self) -> EapTlsStep:
        """Peer: the server's Start opens the handshake with our ClientHello."""
        if self.is_server or self._state is not SessionState.IDLE:
            raise EapTlsError("unexpected EAP-TLS Start in the middle of the exchange")
        self._state = SessionState.HANDSHAKE
        self.engine.handshake_step()
        return EapTlsStep(self._send(self.engine.pending_output()))

    def _on_empty(self) -> EapTlsStep:
        """An empty message that is not an ACK for us: the final response, or the tunnel's turn."""
        if self._state is SessionState.WAIT_FINAL:
            self._state = SessionState.DONE
            self.close()
            return EapTlsStep(None)
        if self._state is SessionState.TUNNEL:
            return EapTlsStep(None)
        raise EapTlsError("unexpected empty EAP-TLS message")

    def _on_handshake_flight(self) -> EapTlsStep:
        """A complete handshake flight from the other side."""
        done = self.engine.handshake_step()
        out = self.engine.pending_output()
        if not done:
            if not out:
                raise EapTlsError("the TLS flight was incomplete: the handshake needs more data")
            return EapTlsStep(self._send(out))
        if not self._is_tls_method:
            return self._enter_tunnel(out)
        if self.is_server:
            return self._server_finished(out)
        return self._peer_finished(out)

    def _enter_tunnel(self, out: bytes) -> EapTlsStep:
        """Tunnel methods: handshake done; any data that came with the last flight goes to the caller."""
        self._state = SessionState.TUNNEL
        app = self.engine.read_app()
        if out and app:
            raise EapTlsError("tunnel data arrived while our last handshake flight was still unsent")
        if out:
            return EapTlsStep(self._send(out))
        if app:
            return EapTlsStep(None, app)
        return EapTlsStep(None if self.is_server else self.ack())

    def _server_finished(self, out: bytes) -> EapTlsStep:
        """EAP-TLS server: handshake done after the peer's last flight."""
        if self.engine.version == "TLSv1.3":
            self.engine.write_app(COMMITMENT_MESSAGE)
            out += self.engine.pending_output()
        if not out:  # TLS 1.2 resumption: the peer's Finished was the last word
            self._state = SessionState.DONE
            self.close()
            return EapTlsStep(None)
        self._state = SessionState.WAIT_FINAL
        return EapTlsStep(self._send(out))

    def _peer_finished(self, out: bytes) -> EapTlsStep:
        """EAP-TLS peer: handshake done; TLS 1.3 still needs the commitment message."""
        committed = self.engine.version != "TLSv1.3" or self._take_commitment()
        self._state = SessionState.DONE if committed else SessionState.WAIT_COMMITMENT
        if committed:
            self.close()
        return EapTlsStep(self._send(out))

    def _take_commitment(self) -> bool:
        """Read application data; True when it is the 0x00 commitment, error for anything else."""
        app = self.engine.read_app()
        if not app:
            return False
        if app != COMMITMENT_MESSAGE:
            raise EapTlsError(f"expected the TLS 1.3 commitment message 0x00, got {len(app)} bytes of application data")
        return True

    def _on_post_handshake(self) -> EapTlsStep:
        """Data after the handshake: tunnel data, the commitment, or an alert (raised by the engine)."""
        if self._state is SessionState.DONE:
            raise EapTlsError("unexpected EAP-TLS data after the exchange completed")
        if self._state is SessionState.TUNNEL:
            app = self.engine.read_app()
            if not app and not self.is_server:  # e.g. TLS 1.3 session tickets only: acknowledge them
                return EapTlsStep(self.ack())
            return EapTlsStep(None, app)
        if self._state is SessionState.WAIT_COMMITMENT:
            if self._take_commitment():
                self._state = SessionState.DONE
                self.close()
            return EapTlsStep(self.ack())
        app = self.engine.read_app()  # raises when the data is an alert
        raise EapTlsError(f"unexpected TLS data ({len(app)} bytes of application data) after the handshake")

    def _send(self, message: bytes) -> bytes:
        """Start sending a TLS message: its first fragment (an empty message when there is nothing)."""
        return self._fragmenter.start(message)

    def _fail(self, exc: EapTlsError, before: SessionState) -> EapTlsError:
        """Enter FAILED; offer any alert our engine produced as the reply."""
        self._state = SessionState.FAILED
        self._failure = exc.reason
        alert = self.engine.pending_output()
        reply = TlsPayload(Flags.LENGTH, self.version, len(alert), alert).to_bytes() if alert else None
        return EapTlsError(exc.reason, state=before.value, reply=reply)

    def _require_state(self, expected: SessionState) -> None:
        """Calls made in the wrong state are programming errors, reported with the state."""
        if self._state is not expected:
            raise EapTlsError(f"not allowed in state {self._state.value} (needs {expected.value})",
                              state=self._state.value)

    def _require(self, condition: bool, reason: str) -> None:
        """Guard for role and sequencing rules."""
        if not condition:
            raise EapTlsError(reason, state=self._state.value)
