"""The TLS engine under EAP-TLS and PEAP: pyOpenSSL over memory BIOs, and its contexts.

Pure: no file is read here. Contexts are built from values loaded at the edge
(:mod:`probe.credentials` reads certificate, key, PKCS#12 and CA files into a
:class:`ClientCredentials` and :class:`TrustAnchors`); no cache lives here
either (the edge shares contexts between conversations). Errors about the
settings (:class:`TlsConfigError`) never contain a password.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from OpenSSL import SSL, crypto
# pyOpenSSL has no public call for "was this session resumed?" nor for the
# text of an X509 verify error number; both come from its bundled binding.
from OpenSSL._util import ffi as _ffi
from OpenSSL._util import lib as _lib

from probe.eap.tls_framing import EapTlsError

__all__ = [
    "SESSION_ID_CONTEXT",
    "TLS_VERSIONS",
    "ClientCertMode",
    "ClientCredentials",
    "KeylogSink",
    "TlsConfigError",
    "TlsEngine",
    "TrustAnchors",
    "client_context",
    "server_context",
]


class TlsConfigError(Exception):
    """A certificate, key, CA file or TLS setting cannot be used (local input, not a protocol error).

    The message names the file and the problem and never contains a password.
    """


TLS_VERSIONS: dict[str, int] = {
    "1.0": SSL.TLS1_VERSION,
    "1.1": SSL.TLS1_1_VERSION,
    "1.2": SSL.TLS1_2_VERSION,
    "1.3": SSL.TLS1_3_VERSION,
}

KeylogSink = Callable[[bytes], None]
"""Receives one NSS key log line (no newline), e.g. b"CLIENT_RANDOM <hex> <hex>"."""

ClientCertMode = Literal["none", "request", "require"]

SESSION_ID_CONTEXT = b"radius-probe-eap"
"""Server session-id context: OpenSSL refuses to resume client-authenticated sessions without one."""


@dataclass(frozen=True)
class ClientCredentials:
    """A certificate, its key and the intermediates to send along, loaded and checked to belong together.

    Made by :func:`probe.credentials.load_client_credentials` (also used for a
    server's own certificate). ``origin`` names where they came from, for
    messages; ``cache_key`` identifies the files they were read from (None
    for values built in memory) so the edge can share contexts built on them.
    The key never shows in a repr.
    """

    cert: x509.Certificate
    key: PrivateKeyTypes = field(repr=False)
    chain: tuple[x509.Certificate, ...] = ()
    origin: str = "in memory"
    cache_key: tuple[object, ...] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Key and certificate must belong together."""
        if _public_der(self.cert.public_key()) != _public_der(self.key.public_key()):
            raise TlsConfigError(f"{self.origin}: the private key does not match the certificate")


@dataclass(frozen=True)
class TrustAnchors:
    """CA certificates a peer's chain must verify against; empty ``certs`` with ``system`` is OpenSSL's store.

    Made by :func:`probe.credentials.load_trust`.
    """

    certs: tuple[x509.Certificate, ...] = ()
    system: bool = False
    origin: str = "in memory"
    cache_key: tuple[object, ...] | None = field(default=None, repr=False, compare=False)


SYSTEM_TRUST = TrustAnchors(system=True, origin="the system store", cache_key=("system",))
"""The platform's default CA store (OpenSSL's default verify paths)."""


def client_context(
    *,
    credentials: ClientCredentials | None = None,
    trust: TrustAnchors | None = None,
    verify: bool = True,
    min_version: str = "1.2",
    max_version: str = "1.3",
    keylog: KeylogSink | None = None,
) -> SSL.Context:
    """A TLS client (EAP peer) context, built fresh from loaded values.

    With ``verify`` the server chain must verify against ``trust`` (the
    system store when None); without it the chain is still captured and
    verify problems are recorded on the engine (:attr:`TlsEngine.verify_problems`)
    but the handshake goes on. Name and EKU policy are not checked here.
    """
    ctx = _base_context(SSL.TLS_CLIENT_METHOD, min_version, max_version, keylog)
    if credentials is not None:
        _install_credentials(ctx, credentials)
    trust = trust if trust is not None else SYSTEM_TRUST
    _install_trust(ctx, trust, advertise=False)
    ctx.set_verify(SSL.VERIFY_PEER, _enforcing_verify if verify else _recording_verify)
    return ctx


def server_context(
    *,
    credentials: ClientCredentials | None = None,
    trust: TrustAnchors | None = None,
    client_cert: ClientCertMode = "require",
    verify: bool = True,
    min_version: str = "1.2",
    max_version: str = "1.3",
    keylog: KeylogSink | None = None,
) -> SSL.Context:
    """A TLS server (EAP server / NPS emulator) context, from loaded values.

    ``client_cert``: "none" (PEAP-MSCHAPv2 phase 1), "request" or "require"
    (EAP-TLS). With ``verify`` a client certificate must chain to ``trust``;
    without it any client certificate is accepted and only captured. The CA
    names are advertised in CertificateRequest, as NPS does.
    """
    if client_cert not in ("none", "request", "require"):
        raise TlsConfigError(f"client_cert must be none, request or require, got {client_cert!r}")
    ctx = _base_context(SSL.TLS_SERVER_METHOD, min_version, max_version, keylog)
    if credentials is None:
        raise TlsConfigError("a TLS server needs a certificate and key (cert_file/key_file or pkcs12_file)")
    _install_credentials(ctx, credentials)
    ctx.set_session_id(SESSION_ID_CONTEXT)
    if client_cert == "none":
        ctx.set_verify(SSL.VERIFY_NONE)
        return ctx
    if trust is not None:
        _install_trust(ctx, trust, advertise=True)
    elif verify:
        raise TlsConfigError("verifying client certificates needs a CA file (ca_file)")
    mode = SSL.VERIFY_PEER | SSL.VERIFY_CLIENT_ONCE
    if client_cert == "require":
        mode |= SSL.VERIFY_FAIL_IF_NO_PEER_CERT
    ctx.set_verify(mode, _enforcing_verify if verify else _recording_verify)
    return ctx

def _base_context(method: int, min_version: str, max_version: str, keylog: KeylogSink | None) -> SSL.Context:
    """Protocol versions and the key log hook, common to both roles."""
    low, high = _tls_version(min_version), _tls_version(max_version)
    if low > high:
        raise TlsConfigError(f"TLS min version {min_version} is above max version {max_version}")
    ctx = SSL.Context(method)
    ctx.set_min_proto_version(low)
    ctx.set_max_proto_version(high)
    if low < SSL.TLS1_2_VERSION:
        # OpenSSL 3 refuses TLS 1.0/1.1 (SHA-1 handshake signatures) above security level 0.
        ctx.set_cipher_list(b"DEFAULT:@SECLEVEL=0")
    ctx.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_NO_RENEGOTIATION)
    # An EAP conversation waits a round trip (or an MFA push) between flights: OpenSSL's
    # record buffers (about 17 KB each way) are given back while nothing is buffered.
    ctx.set_mode(SSL.MODE_RELEASE_BUFFERS)
    if keylog is not None:
        ctx.set_keylog_callback(lambda _conn, line: keylog(bytes(line)))
    return ctx


def _tls_version(name: str) -> int:
    """'1.2' -> the OpenSSL constant; anything else is a config error."""
    try:
        return TLS_VERSIONS[name]
    except (KeyError, TypeError):
        raise TlsConfigError(f"unknown TLS version {name!r} (choose {', '.join(TLS_VERSIONS)})") from None



def _public_der(public_key: object) -> bytes:
    """A public key's SubjectPublicKeyInfo DER, to compare a key with a certificate."""
    return public_key.public_bytes(  # type: ignore[attr-defined]  # every key type cryptography loads has it
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _install_credentials(ctx: SSL.Context, credentials: ClientCredentials) -> None:
    """Put the leaf, key and intermediates into the context."""
    try:
        ctx.use_certificate(credentials.cert)
        ctx.use_privatekey(credentials.key)  # type: ignore[arg-type]  # pyOpenSSL types fewer key kinds than it takes
        ctx.check_privatekey()
        for cert in credentials.chain:
            ctx.add_extra_chain_cert(cert)
    except (SSL.Error, TypeError, ValueError) as exc:
        raise TlsConfigError(f"OpenSSL refused the certificate or key: {_ssl_reasons(exc) or type(exc).__name__}") from None




def _install_trust(ctx: SSL.Context, trust: TrustAnchors, *, advertise: bool) -> None:
    """Trust the CA certificates; a server also names them in CertificateRequest."""
    if trust.system:
        ctx.set_default_verify_paths()
    store = ctx.get_cert_store()
    assert store is not None  # a fresh SSL_CTX always has a store
    for cert in trust.certs:
        store.add_cert(crypto.X509.from_cryptography(cert))
        if advertise:
            ctx.add_client_ca(cert)



def _enforcing_verify(conn: SSL.Connection, cert: crypto.X509, errnum: int, depth: int, ok: int) -> bool:
    """Record why verification failed (OpenSSL only says "certificate verify failed"), keep its verdict."""
    _record_verify_problem(conn, cert, errnum, depth, ok)
    return bool(ok)


def _recording_verify(conn: SSL.Connection, cert: crypto.X509, errnum: int, depth: int, ok: int) -> bool:
    """Verification off: record problems for the report, accept the chain anyway."""
    _record_verify_problem(conn, cert, errnum, depth, ok)
    return True


def _record_verify_problem(conn: SSL.Connection, cert: crypto.X509, errnum: int, depth: int, ok: int) -> None:
    """Store "reason (depth N: subject)" on the engine that owns ``conn``."""
    engine = conn.get_app_data()
    if not ok and isinstance(engine, TlsEngine):
        text = _ffi.string(_lib.X509_verify_cert_error_string(errnum)).decode("ascii", "replace")
        try:
            subject = cert.to_cryptography().subject.rfc4514_string()
        except ValueError:  # OpenSSL accepted what cryptography cannot parse: never raise from the callback
            subject = "unparsable certificate"
        engine._verify_problems.append(f"{text} (depth {depth}: {subject})")


def _ssl_reasons(exc: Exception) -> str:
    """The reason strings of an OpenSSL error queue, joined."""
    queue = exc.args[0] if exc.args and isinstance(exc.args[0], list) else []
    reasons = [entry[2] for entry in queue if isinstance(entry, tuple) and len(entry) == 3 and entry[2]]
    return "; ".join(reasons)


# ---------------------------------------------------------------------------
# TLS engine


_ALERT_PREFIXES = ("sslv3 alert ", "tlsv1 alert ", "tlsv13 alert ", "tls alert ")  # OpenSSL 4 says "tls alert"
_READ_CHUNK = 16384


class TlsEngine:
    """One TLS connection driven through memory BIOs (no socket).

    Feed it the other side's TLS bytes, step the handshake, drain what it
    wants to send. Failures raise :class:`EapTlsError` with the reason in words.
    """

    def __init__(self, context: SSL.Context, *, server: bool, session: SSL.Session | None = None) -> None:
        self.is_server = server
        self._conn = SSL.Connection(context, None)
        self._conn.set_app_data(self)
        if server:
            self._conn.set_accept_state()
        else:
            self._conn.set_connect_state()
        if session is not None:
            self.session = session
        self._handshake_done = False
        self._verify_problems: list[str] = []

    # -- bytes in / out

    def feed(self, tls_bytes: bytes) -> None:
        """Give the engine TLS records received from the other side."""
        if tls_bytes:
            self._conn.bio_write(tls_bytes)

    def pending_output(self) -> bytes:
        """Drain every TLS byte the engine wants to send."""
        out = bytearray()
        while True:
            try:
                out += self._conn.bio_read(_READ_CHUNK)
            except SSL.WantReadError:
                return bytes(out)

    # -- handshake

    def handshake_step(self) -> bool:
        """Advance the handshake with what was fed; True once it is complete."""
        if self._handshake_done:
            return True
        try:
            self._conn.do_handshake()
        except SSL.WantReadError:
            return False
        except SSL.Error as exc:
            raise EapTlsError(self._describe(exc)) from None
        self._handshake_done = True
        return True

    @property
    def is_handshake_done(self) -> bool:
        """True once our side finished the handshake (TLS 1.3 client: after sending Finished)."""
        return self._handshake_done

    # -- application data (the PEAP tunnel, the TLS 1.3 commitment message)

    def write_app(self, data: bytes) -> None:
        """Encrypt ``data`` into records (collect them with :meth:`pending_output`)."""
        if not self._handshake_done:
            raise EapTlsError("cannot send tunnel data before the TLS handshake is complete")
        view = memoryview(data)
        try:
            while view:
                written = self._conn.send(view)
                view = view[written:]
        except SSL.Error as exc:
            raise EapTlsError(self._describe(exc)) from None

    def read_app(self) -> bytes:
        """Decrypt all application data fed so far (post-handshake messages are consumed too)."""
        out = bytearray()
        while True:
            try:
                out += self._conn.recv(_READ_CHUNK)
            except SSL.WantReadError:
                return bytes(out)
            except SSL.ZeroReturnError:
                raise EapTlsError(f"{self._other} closed the TLS connection (close_notify)") from None
            except SSL.Error as exc:
                raise EapTlsError(self._describe(exc)) from None

    # -- results

    def export_keying_material(self, label: bytes, length: int, context: bytes | None = None) -> bytes:
        """RFC 5705 / RFC 8446 7.5 exporter."""
        if not self._handshake_done:
            raise EapTlsError("no keying material before the TLS handshake is complete")
        return self._conn.export_keying_material(label, length, context)

    @property
    def version(self) -> str | None:
        """Negotiated protocol, e.g. "TLSv1.2"; None before the handshake."""
        return self._conn.get_protocol_version_name() if self._handshake_done else None

    @property
    def cipher(self) -> str | None:
        """Negotiated cipher suite (OpenSSL name)."""
        return self._conn.get_cipher_name()

    @property
    def client_random(self) -> bytes | None:
        """ClientHello.random (32 bytes) once known."""
        return self._conn.client_random()

    @property
    def server_random(self) -> bytes | None:
        """ServerHello.random (32 bytes) once known."""
        return self._conn.server_random()

    @property
    def verify_problems(self) -> tuple[str, ...]:
        """Every verify failure seen, e.g. "unable to get local issuer certificate (depth 0)"."""
        return tuple(self._verify_problems)

    def peer_chain(self) -> list[x509.Certificate]:
        """The other side's certificates, leaf first (also on the server, where OpenSSL omits the leaf)."""
        try:
            chain = list(self._conn.get_peer_cert_chain(as_cryptography=True) or [])
            leaf = self._conn.get_peer_certificate(as_cryptography=True) if self.is_server else None
        except ValueError as exc:
            raise EapTlsError(f"{self._other} certificate cannot be parsed: {exc}", state="handshake") from None
        if self.is_server:
            if leaf is not None and (not chain or chain[0] != leaf):
                chain.insert(0, leaf)
        return chain

    # -- resumption

    @property
    def session(self) -> SSL.Session | None:
        """The session to offer next time (TLS 1.3: only after the server's tickets were read)."""
        return self._conn.get_session()

    @session.setter
    def session(self, value: SSL.Session) -> None:
        """Offer a saved session; must be set before the handshake starts."""
        self._conn.set_session(value)

    @property
    def session_reused(self) -> bool:
        """True when the handshake resumed a session instead of a full exchange."""
        return bool(_lib.SSL_session_reused(self._conn._ssl))  # type: ignore[attr-defined]  # private, untyped handle

    def close(self) -> None:
        """Mark the connection as cleanly shut down, WITHOUT sending close_notify.

        OpenSSL removes a session from its cache (and marks it not resumable)
        when a connection is freed without a shutdown, and EAP never sends
        close_notify. Call this once the TLS layer is no longer needed.
        """
        self._conn.set_shutdown(SSL.SENT_SHUTDOWN | SSL.RECEIVED_SHUTDOWN)

    # -- error words

    @property
    def _other(self) -> str:
        """Who the other side is, for messages."""
        return "client" if self.is_server else "server"

    def _describe(self, exc: SSL.Error) -> str:
        """Turn an OpenSSL error queue into a sentence."""
        reasons = _ssl_reasons(exc)
        if not reasons:
            return f"TLS failure: {exc.__class__.__name__}"
        first = reasons.split("; ")[0]
        for prefix in _ALERT_PREFIXES:
            if first.startswith(prefix):
                return f"{self._other} sent alert: {first[len(prefix):]}"
        if first == "certificate verify failed" and self._verify_problems:
            return f"certificate verify failed: {self._verify_problems[0]}"
        return f"TLS handshake failed: {reasons}"
