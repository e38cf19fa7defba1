"""``serve --web-config FILE``: TLS and basic authentication for the HTTP side.

The file is the Prometheus exporter-toolkit web configuration (the one a
blackbox_exporter or node_exporter user already has)::

    tls_server_config:
      cert_file: server.pem          # relative paths are relative to this file
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert   # NoClientCert (default), VerifyClientCertIfGiven
      client_ca_file: clients-ca.pem
      min_version: TLS12             # TLS10..TLS13 (default TLS12)
      max_version: TLS13
      cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]   # TLS 1.2 suites (Go names)
      prefer_server_cipher_suites: true
    http_server_config:
      headers: {Strict-Transport-Security: max-age=31536000}
    basic_auth_users:
      prometheus: $2y$10$...         # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':\\n')

What this implementation does not do is refused with a one-line error rather than
silently ignored: ``RequestClientCert`` and ``RequireAnyClientCert`` (Python's ssl
verifies every client certificate it asks for), ``curve_preferences`` and
``client_allowed_sans``.  Every error names the file, the key and the value.

The file is read once at start (a changed file needs a restart, not SIGHUP).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import re
import ssl
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import bcrypt
import yaml

from .inputs import UsageError


class WebConfigError(UsageError):
    """The web configuration file is wrong: exit 3 with this one-line message."""


CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
UNSUPPORTED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert")
TLS_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
                "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
# Go's crypto/tls names (what exporter-toolkit accepts) -> OpenSSL names; TLS 1.2 and lower only:
# as in Go, the TLS 1.3 suites are not configurable.
CIPHER_SUITES = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
}
# exporter-toolkit's allowed response headers, with the values it allows (None: any)
HEADERS: dict[str, tuple[str, ...] | None] = {
    "Strict-Transport-Security": None,
    "Content-Security-Policy": None,
    "X-XSS-Protection": None,
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
}
TOP_KEYS = ("tls_server_config", "http_server_config", "basic_auth_users")
TLS_KEYS = ("cert_file", "key_file", "client_auth_type", "client_ca_file", "cipher_suites", "curve_preferences",
            "min_version", "max_version", "prefer_server_cipher_suites", "client_allowed_sans")
HTTP_KEYS = ("headers", "http2")
BCRYPT_HASH = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")


@dataclass(frozen=True)
class TlsSettings:
    cert_file: Path
    key_file: Path
    client_auth_type: str = "NoClientCert"
    client_ca_file: Path | None = None
    min_version: str = "TLS12"
    max_version: str = "TLS13"
    cipher_suites: tuple[str, ...] = ()
    prefer_server_cipher_suites: bool = False


@dataclass(frozen=True)
class WebConfig:
    """A loaded web configuration; ``context`` is the server's TLS context (None: plain HTTP)."""

    path: str
    tls: TlsSettings | None = None
    context: ssl.SSLContext | None = field(default=None, repr=False, compare=False)
    users: dict[str, bytes] = field(default_factory=dict, repr=False)
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def secured(self) -> bool:
        """TLS or basic authentication (or both): something stands between the port and /probe."""
        return self.tls is not None or bool(self.users)


def load_web_config(path: str) -> WebConfig:
    """Read and check ``path``; WebConfigError (one line: file, key, value) on any problem."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WebConfigError(f"--web-config {path}: cannot read it: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise WebConfigError(f"{path}: not valid YAML{where}") from None
    if document is None:
        document = {}
    problem = _Problems(path)
    top = problem.mapping("", document)
    problem.known("", top, TOP_KEYS)
    tls = _tls(problem, top.get("tls_server_config"), Path(path).parent)
    headers = _headers(problem, top.get("http_server_config"))
    users = _users(problem, top.get("basic_auth_users"))
    context = _context(problem, tls) if tls is not None else None
    return WebConfig(path=path, tls=tls, context=context, users=users, headers=headers)


class _Problems:
    """Builds the one-line errors: ``FILE: KEY: VALUE problem``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, key: str, value: Any, problem: str) -> WebConfigError:
        shown = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
        return WebConfigError(f"{self.path}: {key or 'the file'}: {shown} {problem}")

    def mapping(self, key: str, value: Any) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(key, value, "must be a mapping")
        for k in value:
            if not isinstance(k, str):
                raise self.fail(key, k, "is not a valid key (keys are strings)")
        return value

    def known(self, where: str, mapping: dict[str, Any], keys: tuple[str, ...]) -> None:
        for key in mapping:
            if key not in keys:
                prefix = f"{where}." if where else ""
                raise WebConfigError(f"{self.path}: {prefix}{key}: unknown key (known: {', '.join(keys)})")

    def string(self, key: str, value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(key, value, "must be a non-empty string")
        return value


def _tls(problem: _Problems, value: Any, base: Path) -> TlsSettings | None:
    if value is None:
        return None
    where = "tls_server_config"
    tls = problem.mapping(where, value)
    problem.known(where, tls, TLS_KEYS)

    def path_of(key: str) -> Path | None:
        if tls.get(key) in (None, ""):
            return None
        p = Path(problem.string(f"{where}.{key}", tls[key]))
        return p if p.is_absolute() else base / p

    cert, key = path_of("cert_file"), path_of("key_file")
    if cert is None:
        raise problem.fail(f"{where}.cert_file", tls.get("cert_file"), "is missing (the server certificate)")
    if key is None:
        raise problem.fail(f"{where}.key_file", tls.get("key_file"), "is missing (the server certificate's key)")
    auth = tls.get("client_auth_type") or "NoClientCert"
    if auth in UNSUPPORTED_CLIENT_AUTH:
        raise problem.fail(f"{where}.client_auth_type", auth,
                           "is not supported (Python's ssl verifies every client certificate it asks for): use "
                           "VerifyClientCertIfGiven or RequireAndVerifyClientCert with client_ca_file")
    if auth not in CLIENT_AUTH:
        raise problem.fail(f"{where}.client_auth_type", auth, f"is not one of {', '.join(CLIENT_AUTH)}")
    client_ca = path_of("client_ca_file")
    if client_ca is None and auth != "NoClientCert":
        raise problem.fail(f"{where}.client_ca_file", tls.get("client_ca_file"),
                           f"is missing: client_auth_type {auth} verifies client certificates against it")
    if client_ca is not None and auth == "NoClientCert":
        raise problem.fail(f"{where}.client_auth_type", auth,
                           "with client_ca_file set would never check a client certificate: set "
                           "VerifyClientCertIfGiven or RequireAndVerifyClientCert")
    versions = []
    for name, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
        v = tls.get(name) or default
        if v not in TLS_VERSIONS:
            raise problem.fail(f"{where}.{name}", v, f"is not one of {', '.join(TLS_VERSIONS)}")
        versions.append(v)
    if TLS_VERSIONS[versions[0]] > TLS_VERSIONS[versions[1]]:
        raise problem.fail(f"{where}.min_version", versions[0], f"is above max_version {versions[1]}")
    suites = tls.get("cipher_suites") or []
    if not isinstance(suites, list):
        raise problem.fail(f"{where}.cipher_suites", suites, "must be a list of cipher suite names")
    for suite in suites:
        if suite not in CIPHER_SUITES:
            raise problem.fail(f"{where}.cipher_suites", suite,
                               "is not a supported TLS 1.2 cipher suite (Go names, e.g. "
                               "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256; TLS 1.3 suites are not configurable)")
    for unsupported in ("curve_preferences", "client_allowed_sans"):
        if tls.get(unsupported):
            raise problem.fail(f"{where}.{unsupported}", tls[unsupported], "is not supported by radius-probe: "
                               "remove it")
    prefer = tls.get("prefer_server_cipher_suites", False)
    if not isinstance(prefer, bool):
        raise problem.fail(f"{where}.prefer_server_cipher_suites", prefer, "must be true or false")
    return TlsSettings(cert_file=cert, key_file=key, client_auth_type=auth, client_ca_file=client_ca,
                       min_version=versions[0], max_version=versions[1], cipher_suites=tuple(suites),
                       prefer_server_cipher_suites=prefer)


def _context(problem: _Problems, tls: TlsSettings) -> ssl.SSLContext:
    where = "tls_server_config"
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.minimum_version = TLS_VERSIONS[tls.min_version]
        context.maximum_version = TLS_VERSIONS[tls.max_version]
    except (ValueError, ssl.SSLError) as exc:
        raise problem.fail(f"{where}.min_version", tls.min_version, f"is refused by this OpenSSL ({exc})") from None
    _check_pem(problem, tls)
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise problem.fail(f"{where}.key_file", str(tls.key_file),
                           f"does not belong to cert_file {str(tls.cert_file)!r} ({_reason(exc)})") from None
    if tls.client_ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(tls.client_ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise problem.fail(f"{where}.client_ca_file", str(tls.client_ca_file),
                               f"cannot be loaded ({_reason(exc)})") from None
    context.verify_mode = CLIENT_AUTH[tls.client_auth_type]
    if tls.cipher_suites:
        try:
            context.set_ciphers(":".join(CIPHER_SUITES[s] for s in tls.cipher_suites))
        except ssl.SSLError:
            raise problem.fail(f"{where}.cipher_suites", ", ".join(tls.cipher_suites),
                               "are all refused by this OpenSSL") from None
    if tls.prefer_server_cipher_suites:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    return context


def _check_pem(problem: _Problems, tls: TlsSettings) -> None:
    """Say which file is wrong (OpenSSL's "PEM lib" names neither)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    where = "tls_server_config"
    data = {}
    for which in ("cert_file", "key_file"):
        path: Path = getattr(tls, which)
        try:
            data[which] = path.read_bytes()
        except OSError as exc:
            raise problem.fail(f"{where}.{which}", str(path), f"cannot be read ({exc.strerror})") from None
    try:
        x509.load_pem_x509_certificates(data["cert_file"])
    except ValueError:
        raise problem.fail(f"{where}.cert_file", str(tls.cert_file), "holds no PEM certificate") from None
    try:
        serialization.load_pem_private_key(data["key_file"], password=None)
    except (ValueError, TypeError):
        raise problem.fail(f"{where}.key_file", str(tls.key_file),
                           "holds no unencrypted PEM private key") from None


def _reason(exc: BaseException) -> str:
    return getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc).splitlines()[0]


def _headers(problem: _Problems, value: Any) -> dict[str, str]:
    where = "http_server_config"
    http = problem.mapping(where, value)
    problem.known(where, http, HTTP_KEYS)
    if "http2" in http and not isinstance(http["http2"], bool):
        raise problem.fail(f"{where}.http2", http["http2"], "must be true or false")  # HTTP/1.1 only either way
    headers = problem.mapping(f"{where}.headers", http.get("headers"))
    out = {}
    for name, text in headers.items():
        canonical = next((h for h in HEADERS if h.lower() == name.lower()), None)
        if canonical is None:
            raise WebConfigError(f"{problem.path}: {where}.headers.{name}: this header can not be configured "
                                 f"(allowed: {', '.join(HEADERS)})")
        text = problem.string(f"{where}.headers.{name}", text)
        allowed = HEADERS[canonical]
        if allowed is not None and text.lower() not in allowed:
            raise problem.fail(f"{where}.headers.{name}", text, f"is not one of {', '.join(allowed)}")
        out[canonical] = text
    return out


def _users(problem: _Problems, value: Any) -> dict[str, bytes]:
    where = "basic_auth_users"
    users = problem.mapping(where, value)
    out = {}
    for name, hashed in users.items():
        if ":" in name or not name:
            raise problem.fail(where, name, "is not a valid user name (no ':' in basic auth user names)")
        match = BCRYPT_HASH.fullmatch(hashed) if isinstance(hashed, str) else None
        if match is None or not 4 <= int(match.group(1)) <= 31:
            # the value is a password hash: say what is wrong, not what it is
            raise WebConfigError(f"{problem.path}: {where}.{name}: the value is not a bcrypt hash "
                                 "($2y$/$2b$/$2a$, cost 04-31, 60 characters; htpasswd -nBC 10 USER)")
        out[name] = hashed.encode()
    return out


# ---------------------------------------------------------------------------
# Checking logins


class BasicAuth:
    """bcrypt verification of ``basic_auth_users``.

    An unknown user is checked against a dummy hash of the highest configured cost, so it
    costs the same as a wrong password.  Successful logins are remembered (keyed by an HMAC
    under a per-process key, never the password itself) for ``cache_s`` seconds, at most
    ``cache_size`` of them, so a scrape every few seconds does not burn a bcrypt each time.
    """

    MAX_PASSWORD = 72  # bcrypt's limit: longer passwords are refused (after the same work)

    def __init__(self, users: dict[str, bytes], *, cache_size: int = 64, cache_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.users = dict(users)
        cost = max((int(h[4:6]) for h in self.users.values()), default=10)
        self._dummy = bcrypt.hashpw(os.urandom(16).hex().encode(), bcrypt.gensalt(rounds=cost))
        self._key = os.urandom(32)
        self._ok: OrderedDict[bytes, float] = OrderedDict()
        self.cache_size, self.cache_s, self._clock = cache_size, cache_s, clock

    def verify(self, user: str, password: bytes) -> bool:
        hashed = self.users.get(user)
        target = hashed if hashed is not None else self._dummy
        key = hmac.new(self._key, user.encode("utf-8", "surrogateescape") + b"\0" + target + b"\0" + password,
                       hashlib.sha256).digest()
        now = self._clock()
        seen = self._ok.get(key)
        if seen is not None and now - seen < self.cache_s:
            return True
        ok = bcrypt.checkpw(password[:self.MAX_PASSWORD], target)
        ok = ok and hashed is not None and len(password) <= self.MAX_PASSWORD
        if ok:
            self._ok[key] = now
            self._ok.move_to_end(key)
            while len(self._ok) > self.cache_size:
                self._ok.popitem(last=False)
        return ok


@dataclass
class _Failures:
    count: int
    last: float


class LoginThrottle:
    """Failed logins per remote address: the n-th failure in a row is answered after
    ``base_s * 2**(n-1)`` seconds, at most ``cap_s``; an address with failures logs in one
    attempt at a time (``hold``/``release``; the serve middleware answers 429 to the others).

    Memory is bounded: at most ``max_entries`` addresses (the least recently failing are
    forgotten first) and an address is forgotten ``forget_s`` after its last failure.
    """

    def __init__(self, *, base_s: float = 0.25, cap_s: float = 8.0, max_entries: int = 4096,
                 forget_s: float = 900.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.base_s, self.cap_s, self.max_entries, self.forget_s = base_s, cap_s, max_entries, forget_s
        self._clock = clock
        self._table: OrderedDict[str, _Failures] = OrderedDict()
        self.busy: dict[str, int] = {}  # suspect addresses with logins in flight (entries live with requests)

    def __len__(self) -> int:
        return len(self._table)

    def failures(self, remote: str) -> int:
        entry = self._table.get(remote)
        if entry is None or self._clock() - entry.last > self.forget_s:
            return 0
        return entry.count

    def failed(self, remote: str) -> tuple[int, float]:
        """Record a failure; (failures in a row, seconds to hold the answer)."""
        now = self._clock()
        count = self.failures(remote) + 1
        self._table[remote] = _Failures(count, now)
        self._table.move_to_end(remote)
        self._expire(now)
        return count, min(self.cap_s, self.base_s * 2 ** min(count - 1, 32))

    def hold(self, remote: str) -> None:
        self.busy[remote] = self.busy.get(remote, 0) + 1

    def release(self, remote: str) -> None:
        left = self.busy.pop(remote, 1) - 1
        if left > 0:
            self.busy[remote] = left

    def succeeded(self, remote: str) -> None:
        self._table.pop(remote, None)

    def _expire(self, now: float) -> None:
        while len(self._table) > self.max_entries:
            self._table.popitem(last=False)
        while self._table:
            oldest = next(iter(self._table.values()))
            if now - oldest.last <= self.forget_s:
                break
            self._table.popitem(last=False)


BCRYPT_THREADS = 2  # bcrypt checks at once (each costs tens of milliseconds of CPU)


class Gatekeeper:
    """What the aiohttp middleware asks: may this request in?"""

    def __init__(self, users: dict[str, bytes], throttle: LoginThrottle | None = None) -> None:
        self.auth = BasicAuth(users) if users else None
        self.throttle = throttle or LoginThrottle()
        self._slots = asyncio.Semaphore(BCRYPT_THREADS)

    async def verify(self, user: str, password: bytes) -> bool:
        assert self.auth is not None
        async with self._slots:
            return await asyncio.to_thread(self.auth.verify, user, password)


def parse_basic(header: str) -> tuple[str, bytes] | None:
    """``Basic base64(user:password)`` -> (user, password), or None when malformed."""
    import base64
    import binascii

    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        raw = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = raw.partition(b":")
    if not sep:
        return None
    return user.decode("utf-8", "replace"), password
