"""The edge where TLS credentials and trust anchors are read from files, once, and cached.

``probe/eap`` is pure: it never opens a file and keeps no cache. Everything it
needs from disk is loaded here into immutable values:

* :func:`load_client_credentials` -> :class:`ClientCredentials` (certificate,
  key, intermediates) from a PEM certificate + key (optionally encrypted) or a
  PKCS#12 bundle; also used for a server's own certificate;
* :func:`load_trust` -> :class:`TrustAnchors` (CA certificates) from a PEM file,
  or the system store for None.

Loading an RSA key runs cryptography's consistency check (tens of ms) and a
PKCS#12 key derivation costs as much: a probe or load test that authenticates
over and over must not pay it each time. So loads are cached, keyed on each
file's identity and change (device, inode, size, mtime_ns) and a keyed
hash of the password (the salt lives only in this process); an edited or
replaced file misses. The caches are bounded (oldest entry dropped first).
The key costs one ``stat`` per file (no path resolution), so an authentication
pays microseconds for it.

:class:`CertificateCache` validates and summarises each distinct server chain once.
:class:`ContextCache` shares the TLS client contexts built on those loaded
values (a context is safe to share: verify problems are kept per connection),
keyed on the values' cache keys and the TLS settings. Errors
(:class:`TlsConfigError`) name the file and the problem, never a password.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from OpenSSL import SSL

from probe.eap.validation import Validation, describe, describe_client, describe_leaf, validate_server
from probe.eap.tls_engine import (
    SYSTEM_TRUST,
    ClientCertMode,
    ClientCredentials,
    KeylogSink,
    TlsConfigError,
    TrustAnchors,
    client_context,
    server_context,
)

__all__ = [
    "CACHE_SIZE",
    "CERTIFICATES",
    "CONTEXTS",
    "CertificateCache",
    "ClientCredentials",
    "ContextCache",
    "TlsConfigError",
    "TrustAnchors",
    "clear_caches",
    "client_context_from_files",
    "load_client_credentials",
    "load_trust",
    "server_context_from_files",
]

CACHE_SIZE = 64
"""Entries per cache: a probe file names a handful of credential sets; a load test one."""

_SALT = os.urandom(32)  # passwords in cache keys are keyed hashes, useless outside this process

FileKey = tuple[int, int, int, int] | None
_V = TypeVar("_V")


class _Bounded(dict[tuple[object, ...], _V]):
    """A dict that drops its oldest entry past ``CACHE_SIZE``; ``hits``/``misses`` for tests."""

    def __init__(self) -> None:
        super().__init__()
        self.hits = 0
        self.misses = 0

    def lookup(self, key: tuple[object, ...] | None) -> _V | None:
        value = self.get(key) if key is not None else None
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    def remember(self, key: tuple[object, ...] | None, value: _V) -> _V:
        if key is None:
            return value
        if key not in self and len(self) >= CACHE_SIZE:
            self.pop(next(iter(self)))
        self[key] = value
        return value


_CREDENTIALS: _Bounded[ClientCredentials] = _Bounded()
_TRUST: _Bounded[TrustAnchors] = _Bounded()


def clear_caches() -> None:
    """Forget every loaded value, shared context and chain summary (tests)."""
    for cache in (_CREDENTIALS, _TRUST, CONTEXTS._contexts):
        cache.clear()
        cache.hits = cache.misses = 0
    CERTIFICATES.clear()


def _file_key(path: str | Path | None) -> FileKey:
    """(device, inode, size, mtime_ns) of a file; raises OSError when it cannot be stat'ed.

    One ``stat`` (about 2 us) and no path resolution (``Path.resolve`` walks every
    component: about 20 us a file, paid on every authentication): the device and inode
    name the file whatever path reached it (relative, through a symlink), and a file
    edited in place or replaced (a renamed-over secret, a swapped symlink) changes size,
    mtime or inode, so it misses.
    """
    if path is None:
        return None
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _password(secret: str | bytes | None) -> bytes | None:
    """Passwords may be given as text or bytes."""
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def _secret_digest(secret: str | bytes | None) -> bytes | None:
    """A keyed hash of a password, for a cache key (None stays None: no password differs from an empty one)."""
    raw = _password(secret)
    return None if raw is None else hmac.new(_SALT, raw, hashlib.sha256).digest()


def _read(path: str | Path, what: str) -> bytes:
    """Read a whole file; the error names it."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise TlsConfigError(f"{what} {path}: cannot read ({exc.strerror or exc})") from None


# ---------------------------------------------------------------------------
# Client (or server) credentials


def load_client_credentials(
    cert: str | Path | None = None,
    key: str | Path | None = None,
    key_password: str | bytes | None = None,
    pkcs12: str | Path | None = None,
    pkcs12_password: str | bytes | None = None,
) -> ClientCredentials | None:
    """PEM certificate (leaf first, intermediates after) + key, or a PKCS#12 bundle; None when neither is given.

    Cached per unchanged file set and password. Raises :class:`TlsConfigError`.
    """
    if pkcs12 is not None:
        if cert is not None or key is not None:
            raise TlsConfigError("give either a PKCS#12 file or a certificate and key, not both")
    elif cert is None and key is None:
        return None
    elif cert is None or key is None:
        raise TlsConfigError("a certificate needs its key: give both cert_file and key_file")
    try:
        files = (_file_key(cert), _file_key(key), _file_key(pkcs12))
    except OSError:
        cache_key = None  # let the loader report the unreadable file
    else:
        cache_key = (*files, _secret_digest(pkcs12_password if pkcs12 is not None else key_password))
    cached = _CREDENTIALS.lookup(cache_key)
    if cached is not None:
        return cached
    if pkcs12 is not None:
        loaded = _load_pkcs12(pkcs12, pkcs12_password, cache_key)
    else:
        assert cert is not None and key is not None
        loaded = _load_pem_pair(cert, key, key_password, cache_key)
    return _CREDENTIALS.remember(cache_key, loaded)


def _load_pem_pair(cert_file: str | Path, key_file: str | Path, key_password: str | bytes | None,
                   cache_key: tuple[object, ...] | None) -> ClientCredentials:
    """A PEM certificate file and a PEM private key, checked to belong together."""
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
    return ClientCredentials(certs[0], key, tuple(certs[1:]), f"key file {key_file}", cache_key)


def _load_pkcs12(path: str | Path, password: str | bytes | None,
                 cache_key: tuple[object, ...] | None) -> ClientCredentials:
    """A PKCS#12 bundle with a key, its certificate and optional intermediates."""
    blob = _read(path, "PKCS#12 file")
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(blob, _password(password))
    except ValueError:
        raise TlsConfigError(f"PKCS#12 file {path}: cannot open it (wrong password, or not a PKCS#12 file)") from None
    if key is None or cert is None:
        raise TlsConfigError(f"PKCS#12 file {path}: needs both a private key and its certificate")
    return ClientCredentials(cert, key, tuple(extra), f"PKCS#12 file {path}", cache_key)


def _parse_pem_certs(blob: bytes, origin: str) -> list[x509.Certificate]:
    """All certificates of a PEM file; none is an error."""
    try:
        return x509.load_pem_x509_certificates(blob)
    except ValueError:
        raise TlsConfigError(f"{origin}: not a PEM certificate file (no readable CERTIFICATE block)") from None


# ---------------------------------------------------------------------------
# Trust anchors


def load_trust(ca_file: str | Path | None) -> TrustAnchors:
    """The CA certificates of a PEM file (cached per unchanged file), or the system store for None."""
    if ca_file is None:
        return SYSTEM_TRUST
    try:
        cache_key: tuple[object, ...] | None = (_file_key(ca_file),)
    except OSError:
        cache_key = None
    cached = _TRUST.lookup(cache_key)
    if cached is not None:
        return cached
    certs = _parse_pem_certs(_read(ca_file, "CA file"), f"CA file {ca_file}")
    return _TRUST.remember(cache_key, TrustAnchors(tuple(certs), False, f"CA file {ca_file}", cache_key))


# ---------------------------------------------------------------------------
# Shared contexts


class ContextCache:
    """TLS client contexts shared between conversations, keyed on the loaded values and settings.

    Satisfies :class:`probe.eap.peer.ContextSource`. Values built in memory
    (no ``cache_key``) and contexts with a key log sink are built fresh every
    time (a key log callback belongs to one caller).
    """

    def __init__(self) -> None:
        self._contexts: _Bounded[SSL.Context] = _Bounded()

    def client(self, credentials: ClientCredentials | None, trust: TrustAnchors | None, *, verify: bool,
               min_version: str, max_version: str, keylog: KeylogSink | None = None) -> SSL.Context:
        """A client context for these values; shared when they came from files and no key log is wanted."""
        cred_key = None if credentials is None else credentials.cache_key
        trust_key = None if trust is None else trust.cache_key
        shareable = keylog is None and (credentials is None or cred_key is not None) and \
            (trust is None or trust_key is not None)
        key = ("client", cred_key, trust_key, verify, min_version, max_version) if shareable else None
        cached = self._contexts.lookup(key)
        if cached is not None:
            return cached
        ctx = client_context(credentials=credentials, trust=trust, verify=verify, min_version=min_version,
                             max_version=max_version, keylog=keylog)
        return self._contexts.remember(key, ctx)


CONTEXTS = ContextCache()
"""The process-wide shared client contexts (what the probe's make_method hands the peer)."""


# ---------------------------------------------------------------------------
# Server chains: validated and summarised once per distinct chain


class CertificateCache:
    """The server chain's validation and report summaries, once per distinct chain.

    Satisfies :class:`probe.eap.peer.CertificateFacts`. Both are pure functions of
    their inputs: the chain (cryptography certificates hash and compare by their DER
    bytes, so the key is the chain's bytes), OpenSSL's recorded verify problems (where
    expiry, which depends on the clock, already shows), the server name, --insecure
    and whether the session was resumed. So a cached answer is the answer; a renewed
    certificate is another key. Bounded like the other caches; summaries are handed
    out as fresh copies (an Outcome may be edited by whoever holds it).
    """

    def __init__(self) -> None:
        self._validations: _Bounded[Validation] = _Bounded()
        self._summaries: _Bounded[tuple[tuple[dict[str, object], ...], dict[str, object] | None]] = _Bounded()
        self._clients: _Bounded[dict[str, object]] = _Bounded()

    def validate(self, chain: list[x509.Certificate], verify_problems: tuple[str, ...], *,
                 server_name: str | None, insecure: bool, resumed: bool) -> Validation:
        key = (tuple(chain), tuple(verify_problems), server_name, insecure, resumed)
        cached = self._validations.lookup(key)
        if cached is None:
            cached = self._validations.remember(key, validate_server(
                chain, verify_problems, server_name=server_name, insecure=insecure, resumed=resumed))
        return cached

    def chain_summary(self, chain: list[x509.Certificate]) -> tuple[list[dict[str, object]], dict[str, object] | None]:
        key = tuple(chain)
        cached = self._summaries.lookup(key)
        if cached is None:
            cached = self._summaries.remember(
                key, (tuple(describe(cert) for cert in chain), describe_leaf(chain[0]) if chain else None))
        described, leaf = cached
        return [dict(entry) for entry in described], _copy_leaf(leaf)

    def client_summary(self, cert: x509.Certificate, now: datetime | None) -> dict[str, object]:
        """Our own certificate's summary: subject and not_after once per certificate, days_left from ``now``."""
        key = (cert,)
        fixed = self._clients.lookup(key)
        if fixed is None:
            fixed = self._clients.remember(key, describe_client(cert, None))
        days = (cert.not_valid_after_utc - now).days if now is not None else None
        return {**fixed, "days_left": days}

    def clear(self) -> None:
        for cache in (self._validations, self._summaries, self._clients):
            cache.clear()
            cache.hits = cache.misses = 0


def _copy_leaf(leaf: dict[str, object] | None) -> dict[str, object] | None:
    """A fresh copy of a server_cert summary (its san_dns list too)."""
    if leaf is None:
        return None
    names = leaf.get("san_dns")
    return {**leaf, "san_dns": list(names)} if isinstance(names, list) else dict(leaf)


CERTIFICATES = CertificateCache()
"""The process-wide cache of server chain validations and summaries (what make_method hands the peer)."""


# ---------------------------------------------------------------------------
# File-based builders (tests, tools): load at the edge, then build


def client_context_from_files(
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
    """A TLS client context from files (the old ``probe.eap.tls.client_context`` signature)."""
    credentials = load_client_credentials(cert_file, key_file, key_password, pkcs12_file, pkcs12_password)
    trust = load_trust(ca_file)
    return CONTEXTS.client(credentials, trust, verify=verify, min_version=min_version, max_version=max_version,
                           keylog=keylog)


def server_context_from_files(
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
    """A TLS server context from files (the old ``probe.eap.tls.server_context`` signature); never shared."""
    credentials = load_client_credentials(cert_file, key_file, key_password, pkcs12_file, pkcs12_password)
    trust = load_trust(ca_file) if ca_file is not None and client_cert != "none" else None
    return server_context(credentials=credentials, trust=trust, client_cert=client_cert, verify=verify,
                          min_version=min_version, max_version=max_version, keylog=keylog)
