"""EAP-TLS transport: framing (RFC 5216 3.1), a memory-BIO TLS engine, and the
role-agnostic session that drives both (RFC 5216, RFC 9190 for TLS 1.3).

sans-IO: no sockets, no clock, no threads. Bytes in, bytes out. The same code
serves the probe (EAP peer, TLS client) and the NPS emulator (EAP server, TLS
server): every rule exists once and the role only picks the direction.

Layers, bottom up:

* framing: :func:`parse_payload`, :class:`Fragmenter`, :class:`Reassembler`
  work on the EAP-TLS Type-Data (Flags, optional TLS Message Length, data).
  PEAP (type 25) uses the same framing with its version in the low 3 flag bits.
* :class:`TlsEngine`: one ``OpenSSL.SSL.Connection`` over memory BIOs.
* :class:`EapTlsSession`: eats one incoming Type-Data, answers with the next
  Type-Data to send (an ACK, the next fragment, the next TLS flight) and knows
  when the handshake and the EAP-TLS exchange are complete.

Context builders (:func:`client_context`, :func:`server_context`) read the
certificate and key files; their errors (:class:`TlsConfigError`) name the file
and the problem, never a password.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12
from OpenSSL import SSL, crypto
# pyOpenSSL has no public call for "was this session resumed?" nor for the
# text of an X509 verify error number; both come from its bundled binding.
from OpenSSL._util import ffi as _ffi
from OpenSSL._util import lib as _lib

from probe.eap.packet import EapError, EapType

# ---------------------------------------------------------------------------
# Errors


class EapTlsError(EapError):
    """The EAP-TLS exchange failed; ``reason`` says why in words.

    ``state`` is the :class:`SessionState` value the session was in (None for
    errors raised by the framing helpers or the engine on their own).
    ``reply`` is a Type-Data payload worth sending before giving up (a TLS
    alert our side generated) or None.
    """

    def __init__(self, reason: str, *, state: str | None = None, reply: bytes | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.state = state
        self.reply = reply


class TlsConfigError(Exception):
    """A certificate, key, CA file or TLS setting cannot be used.

    The message names the file and the problem and never contains a password.
    """


# ---------------------------------------------------------------------------
# Framing (RFC 5216 section 3.1)


class Flags(enum.IntFlag):
    """EAP-TLS flag bits; PEAP keeps its version in the low three bits."""

    LENGTH = 0x80
    MORE = 0x40
    START = 0x20


VERSION_MASK = 0x07
"""PEAP version bits (RFC draft-josefsson-pppext-eap-tls-eap, [MS-PEAP] 2.2.2)."""

LENGTH_FIELD = 4
"""Size of the TLS Message Length field present when L is set."""

DEFAULT_MAX_MESSAGE = 64 * 1024
"""Largest reassembled TLS message we accept: a certificate flight is a few KiB."""

FRAMING_OVERHEAD = 14
"""Bytes of a Framed-MTU not available to TLS data in one fragment.

Same rule as FreeRADIUS's rlm_eap_tls: 4 EAPOL header (the MTU is the link's)
+ 4 EAP header + 1 Type + 1 Flags + 4 TLS Message Length. Every fragment is
sized as if L were present, so one rule fits first and later fragments alike.
"""

MIN_FRAMED_MTU = 100
"""Smaller MTUs leave under 90 bytes per fragment: a handshake would take dozens of rounds."""

MAX_FRAMED_MTU = 3072
"""An EAP packet must fit one RADIUS packet (4096 bytes) with its EAP-Message
attribute headers, the Message-Authenticator, State and the NAS attributes."""

DEFAULT_FRAMED_MTU = 1500


def fragment_size_for_mtu(framed_mtu: int) -> int:
    """TLS data bytes per fragment for a Framed-MTU (Framed-MTU - 14).

    1500 gives 1486 (hostapd's peer default is 1398 for a 1400-byte
    fragment_size); 1344, the value advised for NPS, gives 1330.
    """
    if isinstance(framed_mtu, bool) or not isinstance(framed_mtu, int):
        raise ValueError(f"Framed-MTU must be an integer, got {framed_mtu!r}")
    if not MIN_FRAMED_MTU <= framed_mtu <= MAX_FRAMED_MTU:
        raise ValueError(
            f"Framed-MTU {framed_mtu} is outside {MIN_FRAMED_MTU}..{MAX_FRAMED_MTU} "
            f"(an EAP-TLS fragment must hold useful data and the EAP packet must fit in a RADIUS packet)"
        )
    return framed_mtu - FRAMING_OVERHEAD


@dataclass(frozen=True)
class TlsPayload:
    """One decoded EAP-TLS Type-Data: flags, PEAP version bits, announced length, data."""

    flags: Flags
    version: int
    tls_length: int | None
    data: bytes

    @property
    def is_ack(self) -> bool:
        """An ACK (or final empty message): no L/M/S flag and no data."""
        return not self.flags and not self.data

    def to_bytes(self) -> bytes:
        """Encode back to Type-Data (L decides whether the length field is written)."""
        head = bytes((int(self.flags) | self.version,))
        if self.flags & Flags.LENGTH:
            head += (self.tls_length or 0).to_bytes(LENGTH_FIELD, "big")
        return head + self.data


def parse_payload(data: bytes) -> TlsPayload:
    """Decode EAP-TLS Type-Data. Reserved flag bits are ignored, as RFC 5216 asks."""
    if not data:
        raise EapTlsError("EAP-TLS message without a Flags byte")
    flags = Flags(data[0] & (Flags.LENGTH | Flags.MORE | Flags.START))
    version = data[0] & VERSION_MASK
    if not flags & Flags.LENGTH:
        return TlsPayload(flags, version, None, bytes(data[1:]))
    if len(data) < 1 + LENGTH_FIELD:
        raise EapTlsError(f"EAP-TLS L flag set but only {len(data) - 1} of 4 TLS Message Length bytes present")
    tls_length = int.from_bytes(data[1:5], "big")
    return TlsPayload(flags, version, tls_length, bytes(data[5:]))


def ack_payload(version: int = 0) -> bytes:
    """An EAP-TLS ACK / empty message: flags 0 (plus PEAP version bits)."""
    return bytes((_check_version(version),))


def start_payload(version: int = 0) -> bytes:
    """The server's Start message: S flag (plus PEAP version bits), no data."""
    return bytes((Flags.START | _check_version(version),))


def _check_version(version: int) -> int:
    """PEAP versions live in three bits."""
    if not 0 <= version <= VERSION_MASK:
        raise ValueError(f"PEAP version {version} does not fit in 3 bits")
    return version


class Fragmenter:
    """Splits one outgoing TLS message into EAP-TLS fragments.

    The first fragment of every non-empty message carries L (NPS requires the
    TLS Message Length on PEAP phase-1 messages; RFC 5216 allows it on
    unfragmented ones); later fragments do not. Every fragment but the last
    carries M. The caller sends the first fragment, then one more per ACK.
    """

    def __init__(self, fragment_size: int, version: int = 0) -> None:
        if fragment_size < 1:
            raise ValueError(f"fragment_size must be positive, got {fragment_size}")
        self.fragment_size = fragment_size
        self.version = _check_version(version)
        self._message = b""
        self._offset = 0

    @property
    def pending(self) -> bool:
        """True while fragments remain that await the other side's ACK."""
        return self._offset < len(self._message)

    def start(self, message: bytes) -> bytes:
        """Begin sending ``message``; returns its first fragment (an ACK-like empty message if empty)."""
        if self.pending:
            raise RuntimeError("previous message still has fragments to send")
        if not message:
            return ack_payload(self.version)
        self._message = message
        self._offset = 0
        return self._take(Flags.LENGTH)

    def next_fragment(self) -> bytes:
        """The next fragment, to send once the ACK for the previous one arrived."""
        if not self.pending:
            raise RuntimeError("no fragments left to send")
        return self._take(Flags(0))

    def _take(self, flags: Flags) -> bytes:
        """Cut the next piece and frame it."""
        chunk = self._message[self._offset:self._offset + self.fragment_size]
        self._offset += len(chunk)
        if self.pending:
            flags |= Flags.MORE
        return TlsPayload(flags, self.version, len(self._message), chunk).to_bytes()


class Reassembler:
    """Joins incoming fragments into one TLS message, within a size cap.

    Strict where it protects us: an announced length above the cap, more data
    than announced, a total that differs from the announcement, or an empty
    fragment that makes no progress all raise :class:`EapTlsError` before
    anything is buffered. Lenient where RFC 5216 costs us nothing: a first
    fragment with M but without L is accepted (the cap still bounds it), and
    L may be repeated on later fragments as long as it does not change.
    """

    def __init__(self, max_message_size: int = DEFAULT_MAX_MESSAGE) -> None:
        if max_message_size < 1:
            raise ValueError(f"max_message_size must be positive, got {max_message_size}")
        self.max_message_size = max_message_size
        self._buffer = bytearray()
        self._expected: int | None = None
        self._in_progress = False

    @property
    def in_progress(self) -> bool:
        """True after a fragment with M until the last fragment arrives."""
        return self._in_progress

    def add(self, payload: TlsPayload) -> bytes | None:
        """Take one fragment; return the whole message when complete, None when an ACK is due."""
        self._check_length(payload)
        if not payload.data and (self._in_progress or payload.flags & Flags.MORE):
            raise EapTlsError("empty EAP-TLS fragment in the middle of a fragmented message")
        received = len(self._buffer) + len(payload.data)
        if received > self.max_message_size:
            raise EapTlsError(f"fragmented TLS message exceeds the {self.max_message_size}-byte limit")
        if self._expected is not None and received > self._expected:
            raise EapTlsError(f"fragments carry {received} bytes, more than the announced {self._expected}")
        self._buffer += payload.data
        if payload.flags & Flags.MORE:
            self._in_progress = True
            return None
        return self._finish()

    def _check_length(self, payload: TlsPayload) -> None:
        """Validate an L field against the cap and any earlier announcement."""
        if payload.tls_length is None:
            return
        if payload.tls_length > self.max_message_size:
            raise EapTlsError(
                f"announced TLS message length {payload.tls_length} exceeds the {self.max_message_size}-byte limit"
            )
        if self._expected is not None and payload.tls_length != self._expected:
            raise EapTlsError(
                f"TLS Message Length changed from {self._expected} to {payload.tls_length} between fragments"
            )
        if self._expected is None:
            self._expected = payload.tls_length

    def _finish(self) -> bytes:
        """Hand out the message and reset; the total must match what L announced."""
        message, expected = bytes(self._buffer), self._expected
        self._buffer = bytearray()
        self._expected = None
        self._in_progress = False
        if expected is not None and len(message) != expected:
            raise EapTlsError(f"TLS message is {len(message)} bytes but {expected} were announced")
        return message


# ---------------------------------------------------------------------------
# TLS configuration


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
class _Credentials:
    """A certificate, its key and the intermediates to send along."""

    cert: x509.Certificate
    key: PrivateKeyTypes
    chain: tuple[x509.Certificate, ...]


def client_context(
    *,
    cert_file: str | Path | None = None,
    key_file: str | Path | None = None,
    key_password: str | bytes | None = None,
    pkcs12_file: str | Path | None = None,
    pkcs12_password: str | bytes | None = None,
    ca_file: str | Path | None = None,
    verify: bool = True,
    min_version: str = "1.2",
    max_version: str = "1.3",
    keylog: KeylogSink | None = None,
) -> SSL.Context:
    """A TLS client (EAP peer) context.

    Client credentials come from PEM files (``cert_file`` may hold the chain,
    leaf first) or a PKCS#12 bundle, or are absent. With ``verify`` the server
    chain must verify against ``ca_file`` (the system store when None); without
    it the chain is still captured and verify problems are recorded on the
    engine (:attr:`TlsEngine.verify_problems`) but the handshake goes on. Name
    and EKU policy are not checked here.

    Without a keylog sink the context is built once per unchanged set of files
    and settings and then shared: verify problems are kept per connection, so
    sharing is safe, and it saves a millisecond or more per authentication.
    """
    cache_key = None
    if keylog is None:
        files = _cache_key((cert_file, key_file, pkcs12_file, ca_file),
                           (_password(key_password) or b"") + b"\0" + (_password(pkcs12_password) or b""))
        cache_key = None if files is None else ("client", files, verify, min_version, max_version)
        if cache_key is not None and cache_key in _CLIENT_CONTEXTS:
            return _CLIENT_CONTEXTS[cache_key]
    ctx = _base_context(SSL.TLS_CLIENT_METHOD, min_version, max_version, keylog)
    credentials = _load_credentials(cert_file, key_file, key_password, pkcs12_file, pkcs12_password)
    if credentials is not None:
        _install_credentials(ctx, credentials)
    if ca_file is not None:
        _install_ca(ctx, ca_file, advertise=False)
    else:  # the system store: OpenSSL verifies (or, without verify, records problems) against it
        ctx.set_default_verify_paths()
    ctx.set_verify(SSL.VERIFY_PEER, _enforcing_verify if verify else _recording_verify)
    if cache_key is not None:
        _remember(_CLIENT_CONTEXTS, cache_key, ctx)
    return ctx


def server_context(
    *,
    cert_file: str | Path | None = None,
    key_file: str | Path | None = None,
    key_password: str | bytes | None = None,
    pkcs12_file: str | Path | None = None,
    pkcs12_password: str | bytes | None = None,
    ca_file: str | Path | None = None,
    client_cert: ClientCertMode = "require",
    verify: bool = True,
    min_version: str = "1.2",
    max_version: str = "1.3",
    keylog: KeylogSink | None = None,
) -> SSL.Context:
    """A TLS server (EAP server / NPS emulator) context.

    ``client_cert``: "none" (PEAP-MSCHAPv2 phase 1), "request" or "require"
    (EAP-TLS). With ``verify`` a client certificate must chain to ``ca_file``;
    without it any client certificate is accepted and only captured. The CA
    names are advertised in CertificateRequest, as NPS does.
    """
    if client_cert not in ("none", "request", "require"):
        raise TlsConfigError(f"client_cert must be none, request or require, got {client_cert!r}")
    ctx = _base_context(SSL.TLS_SERVER_METHOD, min_version, max_version, keylog)
    credentials = _load_credentials(cert_file, key_file, key_password, pkcs12_file, pkcs12_password)
    if credentials is None:
        raise TlsConfigError("a TLS server needs a certificate and key (cert_file/key_file or pkcs12_file)")
    _install_credentials(ctx, credentials)
    ctx.set_session_id(SESSION_ID_CONTEXT)
    if client_cert == "none":
        ctx.set_verify(SSL.VERIFY_NONE)
        return ctx
    if ca_file is not None:
        _install_ca(ctx, ca_file, advertise=True)
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
    if keylog is not None:
        ctx.set_keylog_callback(lambda _conn, line: keylog(bytes(line)))
    return ctx


def _tls_version(name: str) -> int:
    """'1.2' -> the OpenSSL constant; anything else is a config error."""
    try:
        return TLS_VERSIONS[name]
    except (KeyError, TypeError):
        raise TlsConfigError(f"unknown TLS version {name!r} (choose {', '.join(TLS_VERSIONS)})") from None


def _read(path: str | Path, what: str) -> bytes:
    """Read a whole file; the error names it."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise TlsConfigError(f"{what} {path}: cannot read ({exc.strerror or exc})") from None


def _password(secret: str | bytes | None) -> bytes | None:
    """Passwords may be given as text or bytes."""
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def client_certificate(
    cert_file: str | Path | None,
    key_file: str | Path | None,
    key_password: str | bytes | None,
    pkcs12_file: str | Path | None,
    pkcs12_password: str | bytes | None,
) -> x509.Certificate | None:
    """Our leaf certificate, from the same (cached) load the TLS context uses: for the report."""
    credentials = _load_credentials(cert_file, key_file, key_password, pkcs12_file, pkcs12_password)
    return credentials.cert if credentials is not None else None


_CREDENTIALS_CACHE: dict[tuple[object, ...], _Credentials] = {}
_CREDENTIALS_CACHE_SIZE = 64
_CACHE_KEY_SALT = os.urandom(32)  # passwords in cache keys are keyed hashes, useless outside this process
_CLIENT_CONTEXTS: dict[tuple[object, ...], SSL.Context] = {}  # see client_context


def _cache_key(files: tuple[str | Path | None, ...], password: str | bytes | None) -> tuple[object, ...] | None:
    """Files by identity and change (path, inode, size, mtime) plus a digest of the password."""
    key: list[object] = []
    for f in files:
        if f is None:
            key.append(None)
            continue
        try:
            st = os.stat(f)
        except OSError:
            return None  # let the loader report the unreadable file
        key.append((str(Path(f).resolve()), st.st_ino, st.st_size, st.st_mtime_ns))
    digest = hmac.new(_CACHE_KEY_SALT, _password(password) or b"", hashlib.sha256).digest()
    return (*key, digest)


def _load_credentials(
    cert_file: str | Path | None,
    key_file: str | Path | None,
    key_password: str | bytes | None,
    pkcs12_file: str | Path | None,
    pkcs12_password: str | bytes | None,
) -> _Credentials | None:
    """Load PEM cert+key or a PKCS#12 bundle, once per unchanged file set.

    Loading an RSA key runs cryptography's key consistency check (tens of ms); a
    probe or load test that authenticates over and over must not pay it each time.
    """
    cache_key = _cache_key((cert_file, key_file, pkcs12_file), pkcs12_password if pkcs12_file else key_password)
    if cache_key is not None and cache_key in _CREDENTIALS_CACHE:
        return _CREDENTIALS_CACHE[cache_key]
    credentials = _load_credentials_uncached(cert_file, key_file, key_password, pkcs12_file, pkcs12_password)
    if cache_key is not None and credentials is not None:
        _remember(_CREDENTIALS_CACHE, cache_key, credentials)
    return credentials


def _remember(cache: dict[tuple[object, ...], Any], key: tuple[object, ...], value: object) -> None:
    """Insert into a bounded cache, dropping the oldest entry when it is full."""
    if len(cache) >= _CREDENTIALS_CACHE_SIZE:
        cache.pop(next(iter(cache)))
    cache[key] = value


def _load_credentials_uncached(
    cert_file: str | Path | None,
    key_file: str | Path | None,
    key_password: str | bytes | None,
    pkcs12_file: str | Path | None,
    pkcs12_password: str | bytes | None,
) -> _Credentials | None:
    """Load PEM cert+key or a PKCS#12 bundle (not both), checking that key and cert belong together."""
    if pkcs12_file is not None:
        if cert_file is not None or key_file is not None:
            raise TlsConfigError("give either a PKCS#12 file or a certificate and key, not both")
        credentials = _load_pkcs12(pkcs12_file, pkcs12_password)
        origin = f"PKCS#12 file {pkcs12_file}"
    elif cert_file is None and key_file is None:
        return None
    elif cert_file is None or key_file is None:
        raise TlsConfigError("a certificate needs its key: give both cert_file and key_file")
    else:
        credentials = _load_pem_pair(cert_file, key_file, key_password)
        origin = f"key file {key_file}"
    if _public_der(credentials.cert.public_key()) != _public_der(credentials.key.public_key()):
        raise TlsConfigError(f"{origin}: the private key does not match the certificate")
    return credentials


def _load_pem_pair(cert_file: str | Path, key_file: str | Path, key_password: str | bytes | None) -> _Credentials:
    """A PEM certificate file (leaf first, intermediates after) and a PEM private key."""
    certs = _parse_pem_certs(_read(cert_file, "certificate file"), f"certificate file {cert_file}")
    key_pem = _read(key_file, "key file")
    try:
        key = serialization.load_pem_private_key(key_pem, _password(key_password))
    except TypeError:
        if key_password is None:
            raise TlsConfigError(f"key file {key_file}: the key is encrypted and no password was given") from None
        raise TlsConfigError(f"key file {key_file}: a password was given but the key is not encrypted") from None
    except ValueError:
        raise TlsConfigError(
            f"key file {key_file}: not a usable PEM private key, or the password is wrong"
        ) from None
    except UnsupportedAlgorithm:
        raise TlsConfigError(f"key file {key_file}: unsupported private key type") from None
    return _Credentials(certs[0], key, tuple(certs[1:]))


def _load_pkcs12(path: str | Path, password: str | bytes | None) -> _Credentials:
    """A PKCS#12 bundle with a key, its certificate and optional intermediates."""
    blob = _read(path, "PKCS#12 file")
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(blob, _password(password))
    except ValueError:
        raise TlsConfigError(f"PKCS#12 file {path}: cannot open it (wrong password, or not a PKCS#12 file)") from None
    if key is None or cert is None:
        raise TlsConfigError(f"PKCS#12 file {path}: needs both a private key and its certificate")
    return _Credentials(cert, key, tuple(extra))


def _parse_pem_certs(blob: bytes, origin: str) -> list[x509.Certificate]:
    """All certificates of a PEM file; none is an error."""
    try:
        return x509.load_pem_x509_certificates(blob)
    except ValueError:
        raise TlsConfigError(f"{origin}: not a PEM certificate file (no readable CERTIFICATE block)") from None


def _public_der(public_key: object) -> bytes:
    """A public key's SubjectPublicKeyInfo DER, to compare a key with a certificate."""
    return public_key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _install_credentials(ctx: SSL.Context, credentials: _Credentials) -> None:
    """Put the leaf, key and intermediates into the context."""
    try:
        ctx.use_certificate(credentials.cert)
        ctx.use_privatekey(credentials.key)  # type: ignore[arg-type]
        ctx.check_privatekey()
        for cert in credentials.chain:
            ctx.add_extra_chain_cert(cert)
    except (SSL.Error, TypeError, ValueError) as exc:
        raise TlsConfigError(f"OpenSSL refused the certificate or key: {_ssl_reasons(exc) or type(exc).__name__}") from None


def _install_ca(ctx: SSL.Context, ca_file: str | Path, *, advertise: bool) -> None:
    """Trust the CA certificates of ``ca_file``; a server also names them in CertificateRequest."""
    certs = _parse_pem_certs(_read(ca_file, "CA file"), f"CA file {ca_file}")
    store = ctx.get_cert_store()
    assert store is not None  # a fresh SSL_CTX always has a store
    for cert in certs:
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
        return bool(_lib.SSL_session_reused(self._conn._ssl))  # type: ignore[attr-defined]

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
        self.version = _check_version(version)
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
